package sink

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Shared pub/sub (docs/design.md, "Pub/sub across sinks"): with
// Config.SharedPubSub, the events processors publish are stored in one
// JetStream stream, a subject per type, keeping the latest --history events
// of each type. Every sink reads the whole stream with an ordered consumer
// into its hub, which numbers events by their stream sequence, so that a
// resume point is valid on every sink. A processor publishes each event
// through every sink it is connected to; the stream stores it once, by its
// event id (Nats-Msg-Id).

// Names in the store. Subjects end in the type's enum name.
const (
	pubsubStream  = "EVENTPROC_PUBSUB"
	pubsubSubject = "eventproc.pubsub."
)

// pubsubDedupWindow is how long the shared stream remembers the ids of the
// events stored, to store once an event a processor publishes through
// several sinks at once. Its copies arrive within moments of each other;
// the index costs the server memory and GC work in proportion to rate ×
// window (at 14k events/s, a 2-minute window halved the sink's throughput
// within 30 s: docs/performance.md), so it is short.
const pubsubDedupWindow = 10 * time.Second

// Backoff between attempts to (re)open the shared stream.
const (
	pubsubRetryMin = 100 * time.Millisecond
	pubsubRetryMax = 5 * time.Second
)

// newSharedPubSub prepares the shared pub/sub; New calls it.
func (s *Sink) newSharedPubSub() error {
	log := s.cfg.Logger
	js, err := jetstream.New(s.cfg.SharedPubSub, jetstream.WithPublishAsyncErrHandler(
		func(_ jetstream.JetStream, m *nats.Msg, err error) {
			log.Warn("published event not stored in the shared pub/sub stream", "subject", m.Subject,
				"id", m.Header.Get(jetstream.MsgIDHeader), "err", err)
		}))
	if err != nil {
		return fmt.Errorf("%w: shared pub/sub: %v", ErrInvalidConfig, err)
	}
	s.ps, s.psReady = js, make(chan struct{})
	return nil
}

// sharedPubSubReady reports whether subscriptions can be served: always
// without shared pub/sub, else once the hub caught up with the stream.
func (s *Sink) sharedPubSubReady() bool {
	if s.psReady == nil {
		return true
	}
	select {
	case <-s.psReady:
		return true
	default:
		return false
	}
}

// historyLimit is the per-type history of the shared stream: the hub's,
// and at least one (JetStream reads zero as no limit).
func (s *Sink) historyLimit() int64 {
	c := s.cfg.PubSub
	switch {
	case c.DisableHistory:
		return 1
	case c.HistorySize == 0:
		return pubsub.DefaultHistorySize
	}
	return int64(c.HistorySize)
}

// publishShared stores a published event in the shared stream, without
// waiting for the store's answer (a failure is logged); the hub gets it
// back from the stream.
func (s *Sink) publishShared(ev *eventv1.Event) {
	data, err := ev.MarshalVT()
	if err != nil {
		s.cfg.Logger.Warn("dropped published event that does not encode", "id", ev.GetId(), "err", err)
		return
	}
	msg := &nats.Msg{Subject: pubsubSubject + ev.GetType().String(), Data: data}
	// Stored once, however many sinks the processor publishes it through.
	if _, err := s.ps.PublishMsgAsync(msg, jetstream.WithMsgID(ev.GetId())); err != nil {
		s.cfg.Logger.Warn("published event not stored in the shared pub/sub stream", "type", ev.GetType(),
			"id", ev.GetId(), "err", err)
	}
}

// fanIn is where runSharedPubSub is in the stream between attempts.
type fanIn struct {
	epoch string // of the stream the hub holds; "" before the first
	next  uint64 // stream sequence expected next
}

// runSharedPubSub copies the shared stream into the hub until ctx ends,
// reopening it after errors with a backoff.
func (s *Sink) runSharedPubSub(ctx context.Context) {
	var (
		at    fanIn
		delay = pubsubRetryMin
	)
	for {
		err := s.fanIn(ctx, &at)
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("shared pub/sub: reading the stream failed; retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, pubsubRetryMax)
	}
}

// fanIn creates the stream if needed and copies it into the hub from
// at.next, until an error. A stream of another epoch (created anew) resets
// the hub and is read from its start.
func (s *Sink) fanIn(ctx context.Context, at *fanIn) error {
	// A short timeout: sinks creating the stream at the same instant get
	// no answer from nats-server (see setupStore); the retry finds it.
	cctx, cancel := context.WithTimeout(ctx, setupCallTimeout)
	defer cancel()
	stream, err := s.ps.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:              pubsubStream,
		Description:       "eventproc: events processors publish, the latest --history of each type, shared by every sink",
		Subjects:          []string{pubsubSubject + "*"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: s.historyLimit(),
		Storage:           jetstream.FileStorage,
		Replicas:          s.cfg.Durable.Replicas,
		Duplicates:        pubsubDedupWindow,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", pubsubStream, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(pubsubSubject+"*"))
	if err != nil {
		return fmt.Errorf("stream %s: %w", pubsubStream, err)
	}
	// Types whose history is full may have lost events before the hub
	// reads them; the others never lost one (limits are per type).
	full := make(map[eventv1.Type]bool)
	if epoch := epochOf(info.Created); epoch != at.epoch {
		if at.epoch != "" {
			s.cfg.Logger.Warn("shared pub/sub: the stream was created anew; subscribers start over",
				"old_epoch", at.epoch, "epoch", epoch)
		}
		s.hub.Reset(epoch)
		at.epoch, at.next = epoch, 0
		for subject, n := range info.State.Subjects {
			if t, ok := eventv1.Type_value[strings.TrimPrefix(subject, pubsubSubject)]; ok && int64(n) >= s.historyLimit() {
				full[eventv1.Type(t)] = true
			}
		}
	}
	last := info.State.LastSeq
	if last == 0 || at.next > last {
		s.caughtUp()
	}
	ocfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if at.next > 0 {
		ocfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: at.next}
	}
	cons, err := s.ps.OrderedConsumer(ctx, pubsubStream, ocfg)
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", pubsubStream, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", pubsubStream, err)
	}
	defer msgs.Stop()
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		ev := new(eventv1.Event)
		if err := ev.UnmarshalVT(m.Data()); err != nil {
			s.cfg.Logger.Warn("shared pub/sub: skipped a message that is not an event", "sequence", seq, "err", err)
		} else {
			typ := ev.GetType()
			switch {
			case full[typ]:
				s.hub.LostBefore(typ, seq)
				delete(full, typ)
			case at.next > 0 && seq > at.next:
				// Evicted before this sink read them, of unknown types.
				for t := range eventv1.Type_name {
					s.hub.LostBefore(eventv1.Type(t), seq)
				}
			}
			s.hub.PublishAt(seq, ev)
		}
		at.next = seq + 1
		if seq >= last || md.NumPending == 0 {
			s.caughtUp()
		}
	}
}

// caughtUp marks the hub as caught up with the stream, once.
func (s *Sink) caughtUp() {
	select {
	case <-s.psReady:
	default:
		close(s.psReady)
		s.notify()
	}
}

// epochOf names a stream's incarnation by its creation time.
func epochOf(created time.Time) string {
	return strconv.FormatInt(created.UnixNano(), 36)
}
