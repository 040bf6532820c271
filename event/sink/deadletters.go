package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// Dead letters can be listed and replayed (docs/design.md, "Dead
// letters"): both are asked of Config.Authorize as ActionReplay on the
// type, and both read the dead-letter stream directly, in sequence order.

// Bounds of a listing.
const (
	DefaultDeadLetterLimit = 100
	MaxDeadLetterLimit     = 1000
)

// DeadLetter is an event of a durable route that could not be delivered.
type DeadLetter struct {
	// Sequence is its place in the dead-letter stream: what
	// [Sink.ReplayDeadLetters] takes, and what a listing resumes after.
	Sequence uint64
	// Event is the event as stored, with the id and time the sink gave it.
	Event *eventv1.Event
	// Code and Reason say why it was given up: the processor's or the
	// sink's error, or DEADLINE_EXCEEDED when its deliveries went
	// unanswered.
	Code   codes.Code
	Reason string
	// Deliveries is how many times it was delivered.
	Deliveries int
	// Accepted is when it was first stored, DeadAt when it was given up.
	Accepted, DeadAt time.Time
	// StoredSequence was its sequence in the durable stream.
	StoredSequence uint64
}

// Replayed is a dead letter stored again for delivery.
type Replayed struct {
	// DeadSequence was its sequence in the dead-letter stream, from which
	// it is deleted; Sequence is its new one in the durable stream.
	DeadSequence, Sequence uint64
	// Duplicate: it had been replayed already (within the idempotency
	// window), and was stored then, under Sequence.
	Duplicate bool
}

// deadLetterRoute checks that the caller may replay t's dead letters and
// that t's route is durable.
func (s *Sink) deadLetterRoute(ctx context.Context, t eventv1.Type) (*route, error) {
	if err := s.authorize(ctx, ActionReplay, t); err != nil {
		return nil, err
	}
	r, ok := s.routes[t]
	if !ok || !r.durable {
		return nil, status.Errorf(codes.NotFound, "%s has no durable route, so no dead letters", t)
	}
	if s.kv.Load() == nil || s.cfg.Durable.Conn.Status() != nats.CONNECTED {
		return nil, status.Errorf(codes.Unavailable, "durable store unavailable; retry later")
	}
	return r, nil
}

// DeadLetters lists up to limit (0: DefaultDeadLetterLimit; at most
// MaxDeadLetterLimit) dead letters of type t after sequence after, oldest
// first. Errors are status errors: PERMISSION_DENIED when Config.Authorize
// refuses ActionReplay, NOT_FOUND for a type without a durable route,
// UNAVAILABLE when the store is.
func (s *Sink) DeadLetters(ctx context.Context, t eventv1.Type, after uint64, limit int) ([]DeadLetter, error) {
	r, err := s.deadLetterRoute(ctx, t)
	if err != nil {
		return nil, err
	}
	switch {
	case limit < 0 || limit > MaxDeadLetterLimit:
		return nil, status.Errorf(codes.InvalidArgument, "limit must be between 1 and %d", MaxDeadLetterLimit)
	case limit == 0:
		limit = DefaultDeadLetterLimit
	}
	str, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return nil, storeError(ctx, t, err)
	}
	var out []DeadLetter
	for seq := after + 1; len(out) < limit; {
		m, err := str.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(deadSubject+r.name))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, storeError(ctx, t, err)
		}
		out = append(out, deadLetterOf(m))
		seq = m.Sequence + 1
	}
	return out, nil
}

// deadLetterOf reads a message of the dead-letter stream.
func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	d := DeadLetter{Sequence: m.Sequence, Reason: m.Header.Get(HeaderDeadReason), DeadAt: m.Time.UTC(), Code: codes.Unknown}
	ev := new(eventv1.Event)
	if err := vtcodec.Unmarshal(m.Data, ev); err == nil {
		d.Event = ev
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(`"` + codeName(m.Header.Get(HeaderDeadCode)) + `"`)); err == nil {
		d.Code = c
	}
	d.Deliveries, _ = strconv.Atoi(m.Header.Get(HeaderDeliveries))
	d.Accepted, _ = time.Parse(time.RFC3339Nano, m.Header.Get(HeaderAccepted))
	d.StoredSequence, _ = strconv.ParseUint(m.Header.Get(HeaderSequence), 10, 64)
	return d
}

// codeName turns a code's String ("DeadlineExceeded") into its JSON name
// ("DEADLINE_EXCEEDED"), which codes.Code unmarshals.
func codeName(s string) string {
	b := make([]byte, 0, len(s)+4)
	for i := range len(s) {
		c := s[i]
		if c >= 'A' && c <= 'Z' && i > 0 {
			b = append(b, '_')
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// ReplayDeadLetters stores the dead letters of type t with the given
// sequences again for delivery, as new events with their delivery count
// reset, and deletes them from the dead letters; without sequences, the
// oldest MaxDeadLetterLimit of the type. A sequence that is not a dead
// letter of t is NOT_FOUND, and nothing after it is replayed; a replay
// that is retried within the idempotency window is stored once. Errors are
// those of [Sink.DeadLetters].
func (s *Sink) ReplayDeadLetters(ctx context.Context, t eventv1.Type, sequences []uint64) ([]Replayed, error) {
	r, err := s.deadLetterRoute(ctx, t)
	if err != nil {
		return nil, err
	}
	if len(sequences) > MaxDeadLetterLimit {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d dead letters at once", MaxDeadLetterLimit)
	}
	if len(sequences) == 0 {
		all, err := s.DeadLetters(ctx, t, 0, MaxDeadLetterLimit)
		if err != nil {
			return nil, err
		}
		for _, d := range all {
			sequences = append(sequences, d.Sequence)
		}
	}
	str, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return nil, storeError(ctx, t, err)
	}
	out := make([]Replayed, 0, len(sequences))
	for _, seq := range sequences {
		m, err := str.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && m.Subject != deadSubject+r.name {
			return out, status.Errorf(codes.NotFound, "no dead letter of %s with sequence %d (%d replayed before it)", t, seq, len(out))
		}
		if err != nil {
			return out, storeError(ctx, t, err)
		}
		msg := &nats.Msg{Subject: durableSubject + r.name, Data: m.Data}
		// A replay retried after a crash between the two steps is stored once.
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID("replay-"+strconv.FormatUint(seq, 10)))
		if err != nil {
			s.durm.inc(cStoreErrors, r.name, opPublish)
			return out, storeError(ctx, t, err)
		}
		if err := str.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, storeError(ctx, t, fmt.Errorf("replayed as %d, but not deleted from the dead letters: %w", ack.Sequence, err))
		}
		s.durm.inc(cReplayed, r.name)
		s.cfg.Logger.Info("dead letter replayed", "type", r.name, "dead_sequence", seq, "sequence", ack.Sequence, "duplicate", ack.Duplicate)
		out = append(out, Replayed{DeadSequence: seq, Sequence: ack.Sequence, Duplicate: ack.Duplicate})
	}
	return out, nil
}
