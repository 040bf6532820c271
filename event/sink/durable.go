package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

// Durable routes (docs/design.md, "Durable events"): an event of a durable
// type is stored in a JetStream work-queue stream and answered
// OUTCOME_STORED; every sink pulls from one durable consumer per type and
// delivers over the processor streams, at least once.

// Defaults of DurableConfig.
const (
	DefaultMaxDeliver      = 5
	DefaultDurableMaxBytes = 256 << 20
	DefaultDeadMaxBytes    = 64 << 20
	DefaultRetryDelay      = time.Second
	DefaultDedupWindow     = 2 * time.Minute
)

// maxRetryDelay caps the backoff between deliveries of one event.
const maxRetryDelay = time.Minute

// Names in the store. Subjects end in the type's enum name.
const (
	durableStream  = "EVENTPROC_DURABLE"
	durableSubject = "eventproc.durable."
	deadStream     = "EVENTPROC_DEAD"
	deadSubject    = "eventproc.dead."
	consumerPrefix = "eventproc-"
)

// Metadata keys the sink adds to a durable event it delivers, so that
// handlers can be idempotent: how many times it was delivered (1 the first
// time) and when it was first stored (RFC 3339, UTC).
const (
	MetadataDelivery = "eventproc-delivery"
	MetadataAccepted = "eventproc-accepted"
)

// Headers of a dead letter (a message in the dead-letter stream).
const (
	HeaderDeadReason   = "Eventproc-Dead-Reason"
	HeaderDeadCode     = "Eventproc-Dead-Code"
	HeaderDeliveries   = "Eventproc-Deliveries"
	HeaderAccepted     = "Eventproc-Accepted"
	HeaderSequence     = "Eventproc-Sequence"
	headerIdempotentOf = "Eventproc-Idempotency-Hash"
)

// DurableConfig configures durable routes ([Route.Durable]) and the NATS
// JetStream store they use. The zero value of every field but Conn is a
// sane default.
type DurableConfig struct {
	// Conn is a connection to NATS with JetStream (package
	// internal/natsembed makes one). Required when a route is durable;
	// while it is not connected, durable routes are not ready and their
	// events are answered UNAVAILABLE at once. The sink does not close it.
	Conn *nats.Conn
	// Replicas is the number of replicas of the streams the sink creates:
	// 1 on a single server, 3 on a cluster.
	Replicas int
	// MaxDeliver is how many times an event is delivered before it moves
	// to the dead-letter stream.
	MaxDeliver int
	// MaxBytes caps the durable stream: beyond, events are refused with
	// RESOURCE_EXHAUSTED (HTTP 429). DeadMaxBytes caps the dead-letter
	// stream, which drops its oldest letters beyond.
	MaxBytes, DeadMaxBytes int64
	// RetryDelay is the delay before the second delivery of an event that
	// failed with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED;
	// it doubles with each further delivery, up to a minute.
	RetryDelay time.Duration
	// DedupWindow is how long an idempotency key is remembered.
	DedupWindow time.Duration
}

func (d *DurableConfig) withDefaults(durable bool) error {
	if durable && d.Conn == nil {
		return fmt.Errorf("%w: a durable route needs a NATS connection (Durable.Conn)", ErrInvalidConfig)
	}
	if d.Replicas == 0 {
		d.Replicas = 1
	}
	for _, n := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"Durable.MaxBytes", &d.MaxBytes, DefaultDurableMaxBytes},
		{"Durable.DeadMaxBytes", &d.DeadMaxBytes, DefaultDeadMaxBytes},
		{"Durable.RetryDelay", (*int64)(&d.RetryDelay), int64(DefaultRetryDelay)},
		{"Durable.DedupWindow", (*int64)(&d.DedupWindow), int64(DefaultDedupWindow)},
	} {
		switch {
		case *n.v < 0:
			return fmt.Errorf("%w: %s must not be negative", ErrInvalidConfig, n.name)
		case *n.v == 0:
			*n.v = n.def
		}
	}
	switch {
	case d.MaxDeliver < 0 || d.Replicas < 0:
		return fmt.Errorf("%w: Durable.MaxDeliver and Durable.Replicas must not be negative", ErrInvalidConfig)
	case d.MaxDeliver == 0:
		d.MaxDeliver = DefaultMaxDeliver
	}
	return nil
}

// storeAnswer is how the store answered an event of a durable route.
type storeAnswer struct {
	id        string
	sequence  uint64
	duplicate bool
}

// storeEvent publishes sub's event to the durable stream and finishes sub
// with the store's answer when it arrives: OUTCOME_STORED once stored,
// UNAVAILABLE at once when the store is unreachable, RESOURCE_EXHAUSTED
// when it is full. The publish is asynchronous (at most maxStoring in
// flight from the sink; past that, storeEvent waits for room until sub's
// deadline), so that neither a synchronous caller nor a Stream event holds
// a goroutine in a round trip to the store: the answer finishes sub from
// the connection's reader (storeAcked, storeFailed), or sub's deadline or
// caller does (abandon).
func (s *Sink) storeEvent(sub *submission) {
	nc := s.cfg.Durable.Conn
	if st := nc.Status(); st != nats.CONNECTED {
		s.durm.inc(cStoreErrors, sub.route.name, opPublish)
		sub.finish(answer{err: status.Errorf(codes.Unavailable, "durable store unavailable (NATS connection %s); retry later", st)})
		return
	}
	msg := &nats.Msg{Subject: durableSubject + sub.typ.String(), Data: sub.event}
	if sub.idem != nil {
		ctx, cancel := context.WithDeadline(sub.ctx, sub.deadline)
		err := s.claim(ctx, sub)
		cancel()
		if err != nil {
			if status.Code(err) != codes.FailedPrecondition {
				s.durm.inc(cStoreErrors, sub.route.name, opIdempotency)
			}
			sub.finish(answer{err: err})
			return
		}
		// Stored once within the window, however often it is sent.
		msg.Header = nats.Header{jetstream.MsgIDHeader: []string{sub.idem.key}}
		msg.Data = sub.event // claim may have changed the id
	}
	s.storing.add(msg, sub)
	sub.mu.Lock()
	gone := sub.gone // abandoned before it was registered
	sub.mu.Unlock()
	if gone != nil {
		if s.storing.take(msg) != nil {
			sub.finish(answer{err: gone})
		}
		return
	}
	wait := time.Until(sub.deadline)
	if wait <= 0 {
		wait = time.Millisecond
	}
	if _, err := s.pub.PublishMsgAsync(msg, jetstream.WithStallWait(wait)); err != nil {
		s.storeFailed(msg, err, false)
	}
}

// storeAcked finishes the submission whose event msg was stored.
func (s *Sink) storeAcked(msg *nats.Msg, ack *jetstream.PubAck) {
	sub := s.storing.take(msg)
	if sub == nil {
		return // abandoned
	}
	s.durm.storedOne(sub.route.name, ack.Duplicate)
	sub.finish(answer{stored: &storeAnswer{id: sub.id, sequence: ack.Sequence, duplicate: ack.Duplicate}})
}

// storeFailed finishes the submission whose event msg got no PubAck: it
// was not sent (sent false), or the store answered with an error, or the
// answer was lost.
func (s *Sink) storeFailed(msg *nats.Msg, err error, sent bool) {
	sub := s.storing.take(msg)
	if sub == nil {
		return // abandoned
	}
	s.durm.inc(cStoreErrors, sub.route.name, opPublish)
	switch {
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		err = status.Errorf(codes.DeadlineExceeded, "durable store for %s had %d events in flight until the deadline", sub.typ, maxStoring)
	case sent && !notStored(err):
		// The event reached the store, and its answer did not come back
		// (a connection lost, a leader changing): it may be stored. Not
		// UNAVAILABLE, which says it was not.
		err = status.Errorf(codes.DeadlineExceeded, "durable store did not confirm the event for %s (%v): it may have "+
			"been stored; send it again with the same Idempotency-Key to store it once", sub.typ, err)
	default:
		err = storeError(sub.ctx, sub.typ, err)
	}
	sub.finish(answer{err: err})
}

// notStored reports whether a publish error says the event was not stored:
// no stream listened, or the stream refused it.
func notStored(err error) bool {
	_, refused := errors.AsType[*jetstream.APIError](err)
	return refused || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// maxStoring bounds the events the sink publishes to the store and awaits
// the answer for.
const maxStoring = 4096

// storingSet is the submissions whose event was published to the store
// and is not answered yet, by message: whoever takes one finishes it.
type storingSet struct {
	mu   sync.Mutex
	subs map[*nats.Msg]*submission
}

func (p *storingSet) add(m *nats.Msg, sub *submission) {
	p.mu.Lock()
	if p.subs == nil {
		p.subs = make(map[*nats.Msg]*submission)
	}
	p.subs[m] = sub
	sub.storing = m
	p.mu.Unlock()
}

func (p *storingSet) take(m *nats.Msg) *submission {
	p.mu.Lock()
	defer p.mu.Unlock()
	sub := p.subs[m]
	if sub != nil {
		delete(p.subs, m)
		sub.storing = nil
	}
	return sub
}

// takeSub takes sub if it waits for the store, and reports whether it did.
func (p *storingSet) takeSub(sub *submission) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := sub.storing
	if m == nil {
		return false
	}
	delete(p.subs, m)
	sub.storing = nil
	return true
}

// storeAbandoned is the error of an event abandoned while the store had
// not answered it, for err, the context's error.
func storeAbandoned(t eventv1.Type, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Errorf(codes.DeadlineExceeded, "durable store did not answer for %s before the deadline", t)
	}
	return status.FromContextError(err).Err()
}

// storeError turns an error publishing to the store into a status.
func storeError(ctx context.Context, t eventv1.Type, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return status.Errorf(codes.DeadlineExceeded, "durable store did not answer for %s before the deadline", t)
		}
		return status.FromContextError(ctx.Err()).Err()
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && isFull(apiErr) {
		return protocol.RetryLater(fmt.Sprintf("durable store for %s is full: %s", t, apiErr.Description), time.Second)
	}
	return status.Errorf(codes.Unavailable, "durable store unavailable for %s: %v; retry later", t, err)
}

// isFull reports whether the store refused a message for a limit.
func isFull(e *jetstream.APIError) bool {
	d := strings.ToLower(e.Description)
	return strings.Contains(d, "maximum") || strings.Contains(d, "insufficient resources") ||
		strings.Contains(d, "resource limits")
}

// setupStore creates or updates the durable and dead-letter streams and a
// durable consumer per durable route. Each request may take callTimeout:
// when several sinks create the same replicated stream at the same instant,
// nats-server (2.15) answers none of them, and each one's retry then finds
// the stream made, so a short first timeout keeps their start quick.
func (s *Sink) setupStore(ctx context.Context, callTimeout time.Duration) error {
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, callTimeout) }
	d := s.cfg.Durable
	cctx, cancel := call()
	defer cancel()
	if _, err := s.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:        durableStream,
		Description: "eventproc: events of durable routes, until a processor answers them",
		Subjects:    []string{durableSubject + "*"},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    d.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    d.Replicas,
		Duplicates:  d.DedupWindow,
	}); err != nil {
		return fmt.Errorf("stream %s: %w", durableStream, err)
	}
	cctx, cancel = call()
	defer cancel()
	if _, err := s.js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{
		Name:        deadStream,
		Description: "eventproc: dead letters, events of durable routes that could not be delivered, with the reason",
		Subjects:    []string{deadSubject + "*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxBytes:    d.DeadMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    d.Replicas,
	}); err != nil {
		return fmt.Errorf("stream %s: %w", deadStream, err)
	}
	cctx, cancel = call()
	defer cancel()
	kv, err := s.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
		Bucket:      idempotencyBucket,
		Description: "eventproc: idempotency keys of durable events, with a hash of their event and its id",
		TTL:         d.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    d.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", idempotencyBucket, err)
	}
	s.kv.Store(&kv)
	for _, r := range s.routes {
		if !r.durable {
			continue
		}
		cctx, cancel := call()
		_, err := s.js.CreateOrUpdateConsumer(cctx, durableStream, jetstream.ConsumerConfig{
			Durable:       consumerPrefix + r.name,
			Description:   "eventproc: delivery of " + r.name + ", shared by every sink",
			FilterSubject: durableSubject + r.name,
			AckPolicy:     jetstream.AckExplicitPolicy,
			// An event is redelivered when its sink did not answer within
			// the processor deadline (it stopped, say).
			AckWait: s.cfg.Timeout + ackMargin,
			// The sink counts deliveries itself (MaxDeliver), so that an
			// event never stays stuck in the stream.
			MaxDeliver:    -1,
			MaxAckPending: maxAckPending,
			Replicas:      d.Replicas,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("consumer %s: %w", consumerPrefix+r.name, err)
		}
	}
	return nil
}

const (
	// ackMargin is added to the processor deadline for AckWait.
	ackMargin = 5 * time.Second
	// maxAckPending bounds the events of a type delivered and not yet
	// answered, over all sinks.
	maxAckPending = 10000
)

// retryDelay is the delay before delivery n+1 after delivery n failed.
func (d *DurableConfig) retryDelay(n uint64) time.Duration {
	delay := d.RetryDelay
	for i := uint64(1); i < n && delay < maxRetryDelay; i++ {
		delay *= 2
	}
	return min(delay, maxRetryDelay)
}

// retryable reports whether a delivery that failed with c is tried again.
func retryable(c codes.Code) bool {
	return c == codes.Unavailable || c == codes.DeadlineExceeded || c == codes.ResourceExhausted
}

// storeStatus is the state of the store, for readiness: its connection's,
// or "setting up" until its streams and bucket were created.
func (s *Sink) storeStatus() (ok bool, state string) {
	st := s.cfg.Durable.Conn.Status()
	if st == nats.CONNECTED && s.kv.Load() == nil {
		return false, "setting up"
	}
	return st == nats.CONNECTED, strings.ToLower(st.String())
}
