package sink

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

const (
	// fetchWait is how long one pull waits for events.
	fetchWait = 2 * time.Second
	// maxFetch bounds the events one pull asks for.
	maxFetch = 256
	// storeRetryMax caps the backoff while the store is unreachable.
	storeRetryMax = 2 * time.Second
	// setupCallTimeout is how long a request setting the store up may
	// take at first, doubling on each failed attempt up to
	// setupCallTimeoutMax (see setupStore).
	setupCallTimeout, setupCallTimeoutMax = time.Second, 10 * time.Second
)

// runDurable sets the store up and delivers every durable route's events
// until ctx ends.
func (s *Sink) runDurable(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff, callTimeout := 50*time.Millisecond, setupCallTimeout
	for attempt := 1; ; attempt++ {
		err := s.setupStore(ctx, callTimeout)
		if err == nil {
			s.notify() // durable routes are ready
			break
		}
		if ctx.Err() != nil {
			return
		}
		// Jitter, so that sinks started together stop colliding.
		wait := backoff + rand.N(250*time.Millisecond)
		s.cfg.Logger.Warn("durable store: cannot create its streams; retrying", "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return
		}
		backoff = min(2*backoff, storeRetryMax)
		if attempt >= 3 {
			callTimeout = min(2*callTimeout, setupCallTimeoutMax) // a busy store may need longer
		}
	}
	for _, r := range s.routes {
		if r.durable {
			wg.Go(func() { s.deliverRoute(ctx, r) })
		}
	}
}

// sleep waits for d or ctx, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deliverRoute pulls r's stored events from the type's shared consumer
// and sends them to r's processors, never more in flight from this sink
// than MaxPendingPerStream, and only while a processor stream is live.
func (s *Sink) deliverRoute(ctx context.Context, r *route) {
	credit := make(chan struct{}, s.cfg.MaxPendingPerStream)
	var inflight sync.WaitGroup
	defer inflight.Wait() // every answer acked or nacked before the connection closes
	name := consumerPrefix + r.name
	var cons jetstream.Consumer // looked up again after an error
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if !s.waitLive(ctx, r) {
			return
		}
		// Take credit: one, waiting, then as much as is free.
		select {
		case credit <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < maxFetch {
			select {
			case credit <- struct{}{}:
				n++
			default:
				break more
			}
		}
		got, err := s.fetch(ctx, r, &cons, name, n, credit, &inflight)
		for range n - got {
			<-credit
		}
		if err != nil && ctx.Err() == nil {
			s.durm.inc(cStoreErrors, r.name, opFetch)
			s.cfg.Logger.Warn("durable store: cannot pull events", "type", r.name, "err", err, "retry_in", backoff)
			cons = nil
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, storeRetryMax)
			// The stream or consumer may have gone with the server's store.
			if err := s.setupStore(ctx, setupCallTimeoutMax); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("durable store: cannot create its streams", "err", err)
			}
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// waitLive waits until r has a live processor stream, and reports whether
// ctx is still live.
func (s *Sink) waitLive(ctx context.Context, r *route) bool {
	for {
		s.stateMu.Lock()
		ch := s.changed
		s.stateMu.Unlock()
		if r.pick(nil) != nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// fetch pulls up to n events and starts their delivery; each holds one of
// the credit taken until answered. It returns how many it started. It
// looks the consumer up into *cons when that is nil: once, not once per
// pull (a request to the server each).
func (s *Sink) fetch(ctx context.Context, r *route, cons *jetstream.Consumer, name string, n int, credit chan struct{},
	inflight *sync.WaitGroup) (int, error) {
	if *cons == nil {
		c, err := s.js.Consumer(ctx, durableStream, name)
		if err != nil {
			return 0, err
		}
		*cons = c
	}
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	batch, err := (*cons).Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		inflight.Add(1)
		s.deliver(ctx, r, msg, func() {
			<-credit
			inflight.Done()
		})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) &&
		!errors.Is(err, context.Canceled) {
		return got, err
	}
	return got, nil
}

// delivery receives the answer to a stored event sent to a processor, and
// acks it, retries it later or moves it to the dead letters.
type delivery struct {
	s    *Sink
	typ  string // the route's type name, for the metrics
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	done func()
}

// deliver sends a stored event to r's processors. done is called once it
// was answered and the store told.
func (s *Sink) deliver(ctx context.Context, r *route, msg jetstream.Msg, done func()) {
	d := &delivery{s: s, typ: r.name, msg: msg, done: done}
	meta, err := msg.Metadata()
	if err != nil {
		s.cfg.Logger.Warn("durable store: a message without metadata; terminated", "type", r.name, "err", err)
		_ = msg.Term()
		done()
		return
	}
	d.meta = meta
	if meta.NumDelivered > 1 {
		s.durm.inc(cDeliveredAgain, r.name)
	}
	data := msg.Data()
	h, tooDeep, err := checkEvent(data)
	switch {
	case err != nil || tooDeep:
		go d.dead(codes.InvalidArgument, deadUndecodable, "stored event does not decode")
		return
	case meta.NumDelivered > uint64(s.cfg.Durable.MaxDeliver):
		// Earlier deliveries went unanswered: their sink stopped, or the
		// answer or the ack was lost.
		go d.dead(codes.DeadlineExceeded, deadMaxDeliveries, "delivered "+strconv.FormatUint(meta.NumDelivered-1, 10)+
			" times without an answer")
		return
	}
	// What the handler learns of the delivery, appended as metadata.
	var fill relayv1.EventHeader
	fill.Metadata = map[string]string{
		MetadataDelivery: strconv.FormatUint(meta.NumDelivered, 10),
		MetadataAccepted: meta.Timestamp.UTC().Format(time.RFC3339Nano),
	}
	extra := fill.SizeVT()
	ev := make([]byte, len(data)+extra)
	copy(ev, data)
	_, _ = fill.MarshalToSizedBufferVT(ev[len(data):])

	now := time.Now()
	sub := &submission{s: s, ctx: ctx, to: d, start: now, id: h.id, typ: h.typ, event: ev, route: r,
		deadline: now.Add(s.cfg.Timeout), child: true}
	sub.timer = time.AfterFunc(s.cfg.Timeout, sub.expire)
	sub.first = call{sub: sub}
	sub.send(&sub.first)
}

// receive takes the processor's answer (or the sink's error) to a delivery.
func (d *delivery) receive(sub *submission, a answer) {
	code := a.code()
	switch {
	case code == codes.OK:
		if reply := a.resp.GetReply(); reply != nil {
			// A durable event's reply goes to the subscribers of its type.
			ev := new(eventv1.Event)
			if err := vtcodec.Unmarshal(reply, ev); err == nil {
				d.s.publish(ev)
			}
		}
		d.s.durm.inc(cDelivered, d.typ)
		if err := d.msg.Ack(); err != nil {
			d.s.durm.inc(cStoreErrors, d.typ, opAck)
			d.s.cfg.Logger.Warn("durable store: ack failed; the event will be delivered again", "id", sub.id, "err", err)
		}
		d.done()
	case retryable(code) && d.meta.NumDelivered < uint64(d.s.cfg.Durable.MaxDeliver):
		d.s.durm.inc(cRedelivered, d.typ, codeReason(code))
		_ = d.msg.NakWithDelay(d.s.cfg.Durable.retryDelay(d.meta.NumDelivered))
		d.done()
	default:
		msg, reason := a.errMessage(), codeReason(code)
		if retryable(code) {
			msg = "after " + strconv.FormatUint(d.meta.NumDelivered, 10) + " deliveries: " + msg
			reason = deadMaxDeliveries
		}
		go d.dead(code, reason, msg) // not on the processor stream's reader
	}
}

// errMessage is the message of a failed answer.
func (a answer) errMessage() string {
	if a.err != nil {
		return status.Convert(a.err).Message()
	}
	if e := a.resp.GetError(); e != nil {
		return e.GetMessage()
	}
	return "processor answered without a result"
}

// dead moves the delivered event to the dead-letter stream with the reason,
// then removes it from the durable stream; label is the reason as counted.
func (d *delivery) dead(code codes.Code, label, reason string) {
	defer d.done()
	m := &nats.Msg{Subject: deadSubject + d.msg.Subject()[len(durableSubject):], Data: d.msg.Data(), Header: nats.Header{}}
	m.Header.Set(HeaderDeadCode, code.String())
	m.Header.Set(HeaderDeadReason, reason)
	m.Header.Set(HeaderDeliveries, strconv.FormatUint(d.meta.NumDelivered, 10))
	m.Header.Set(HeaderAccepted, d.meta.Timestamp.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderSequence, strconv.FormatUint(d.meta.Sequence.Stream, 10))
	// Moved again after a crash between the two steps: stored once.
	m.Header.Set(jetstream.MsgIDHeader, "dead-"+strconv.FormatUint(d.meta.Sequence.Stream, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.s.js.PublishMsg(ctx, m); err != nil {
		d.s.durm.inc(cStoreErrors, d.typ, opDeadLetter)
		d.s.cfg.Logger.Warn("durable store: cannot store a dead letter; retrying later", "subject", d.msg.Subject(), "err", err)
		_ = d.msg.NakWithDelay(d.s.cfg.Durable.retryDelay(d.meta.NumDelivered))
		return
	}
	d.s.cfg.Logger.Warn("durable event moved to the dead letters", "subject", d.msg.Subject(),
		"sequence", d.meta.Sequence.Stream, "code", code.String(), "reason", reason)
	d.s.durm.inc(cDead, d.typ, label)
	if err := d.msg.Ack(); err != nil {
		d.s.durm.inc(cStoreErrors, d.typ, opAck)
	}
}
