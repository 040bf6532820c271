package sink

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/wire"
)

// The Stream ingress passes the client's event to the processor without
// decoding it either (see relay.go for the way back). It reads each
// StreamRequest into an emptypb.Empty, so protobuf keeps the whole encoding
// as unknown fields, checks the event as proto.Unmarshal would (wire.Check),
// reads the three fields the sink needs — id, type, whether time is set —
// and hands the processor the event's bytes as ProcessRequest field 2, with
// an id and a time appended when the client left them out (for a proto3
// scalar or message field the last occurrence wins or merges, so appending
// is how an encoded message is amended).

// StreamRequest and Event field numbers.
const (
	fieldStreamEvent   protowire.Number = 1
	fieldStreamTimeout protowire.Number = 2
	fieldStreamBatch   protowire.Number = 3

	fieldEventID   protowire.Number = 1
	fieldEventType protowire.Number = 2
	fieldEventTime protowire.Number = 6

	fieldProcessEvent protowire.Number = 2
)

// streamedEvent is one StreamRequest as the ingress reads it.
type streamedEvent struct {
	body    []byte // the event's encoding; nil when the request has none
	id      string
	typ     eventv1.Type
	hasTime bool
	timeout *durationpb.Duration
	// batched is set when the request has StreamRequest.batch entries,
	// which parseStreamRequest skips; see eachStreamRequest.
	batched bool
	// tooDeep is set when the event is nested too deeply for a processor
	// to decode it (errTooDeep).
	tooDeep bool
}

// parseStreamRequest reads an encoded StreamRequest. The returned body
// aliases b.
func parseStreamRequest(b []byte) (streamedEvent, error) { return parseRequest(b, true) }

// parseSendRequest reads an encoded SendRequest the same way: its one field
// is the event, numbered as StreamRequest's.
func parseSendRequest(b []byte) (streamedEvent, error) { return parseRequest(b, false) }

// parseRequest reads a StreamRequest, or when not stream a SendRequest, to
// which StreamRequest's timeout and batch fields are unknown fields.
func parseRequest(b []byte, stream bool) (streamedEvent, error) {
	var r streamedEvent
	merged := false
	for len(b) > 0 {
		fld, rest, err := wire.Next(b)
		if err != nil {
			return r, err
		}
		b = rest
		if fld.Type != protowire.BytesType || !stream && fld.Num != fieldSendEvent {
			continue
		}
		// Each occurrence must be valid on its own, as for proto.Unmarshal.
		switch fld.Num {
		case fieldStreamBatch:
			r.batched = true
		case fieldStreamEvent:
			if merged, err = r.addEvent(fld.Bytes, merged); err != nil {
				return r, err
			}
		case fieldStreamTimeout:
			if r.timeout == nil {
				r.timeout = new(durationpb.Duration)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fld.Bytes, r.timeout); err != nil {
				return r, fmt.Errorf("timeout: %w", err)
			}
		}
	}
	if r.body != nil {
		r.scanEvent()
	}
	return r, nil
}

// addEvent checks one occurrence of the event field, v, and adds it to the
// event's body (see appendMerged). It checks v at the depth the processor
// will meet it: an event it could not decode would break the processor
// stream other events share. Too deep for that but not for the message it
// came in, the event is answered INVALID_ARGUMENT (tooDeep), as Dispatch's
// would be.
func (r *streamedEvent) addEvent(v []byte, merged bool) (bool, error) {
	err := wire.CheckAt(v, eventDescriptor, eventDepth)
	if errors.Is(err, wire.ErrDepth) {
		if err = wire.Check(v, eventDescriptor); err == nil {
			r.tooDeep = true
		}
	}
	if err != nil {
		return merged, fmt.Errorf("event: %w", err)
	}
	r.body, merged = appendMerged(r.body, v, merged)
	return merged, nil
}

// errBatchShape is the error for a StreamRequest that breaks the rules of
// StreamRequest.batch.
var errBatchShape = errors.New("a StreamRequest with a batch must have no event or timeout of its own, nor its entries a batch")

// eachStreamRequest reads an encoded StreamRequest and calls fn with each
// event it carries: the request itself, or each entry of its batch in
// order. It stops at the first entry that is not a valid StreamRequest, or
// breaks the rules of batch (errBatchShape), and at fn's first error. The
// streamedEvent passed to fn, and the body in it, are valid only during
// the call; the body aliases b.
func eachStreamRequest(b []byte, fn func(*streamedEvent) error) error {
	r, err := parseStreamRequest(b)
	if err != nil || !r.batched {
		if err != nil {
			return err
		}
		return fn(&r)
	}
	if r.body != nil || r.timeout != nil {
		return errBatchShape
	}
	for len(b) > 0 {
		fld, rest, _ := wire.Next(b) // read already
		b = rest
		if fld.Num != fieldStreamBatch || fld.Type != protowire.BytesType {
			continue
		}
		e, err := parseStreamRequest(fld.Bytes)
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		if e.batched {
			return errBatchShape
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// appendMerged adds the bytes v of a message field seen again to those
// seen before (encoded messages concatenated merge), copying on the first
// merge so the result no longer aliases the input.
func appendMerged(prev, v []byte, merged bool) ([]byte, bool) {
	switch {
	case prev == nil:
		if v == nil {
			v = []byte{} // present, if empty
		}
		return v, false
	case !merged:
		return append(append(make([]byte, 0, len(prev)+len(v)), prev...), v...), true
	default:
		return append(prev, v...), true
	}
}

// scanEvent reads the id, type and presence of time of a checked event.
func (r *streamedEvent) scanEvent() {
	b := r.body
	var id []byte
	for len(b) > 0 {
		fld, rest, _ := wire.Next(b) // checked already
		b = rest
		switch {
		case fld.Num == fieldEventID && fld.Type == protowire.BytesType:
			id = fld.Bytes
		case fld.Num == fieldEventType && fld.Type == protowire.VarintType:
			r.typ = eventv1.Type(int32(fld.Int))
		case fld.Num == fieldEventTime && fld.Type == protowire.BytesType:
			r.hasTime = true
		}
	}
	r.id = string(id)
}

// processRequestEvent returns ProcessRequest field 2 holding the event, with
// id and, when the event has no time, now appended: the unknown fields to
// give a ProcessRequest without an Event. It allocates once.
func (r *streamedEvent) processRequestEvent(newID bool, now time.Time) []byte {
	secs, nanos := uint64(now.Unix()), uint64(now.Nanosecond())
	tsLen, extra := 0, 0
	if newID {
		extra += protowire.SizeTag(fieldEventID) + protowire.SizeBytes(len(r.id))
	}
	if !r.hasTime {
		if secs != 0 {
			tsLen += protowire.SizeTag(1) + protowire.SizeVarint(secs)
		}
		if nanos != 0 {
			tsLen += protowire.SizeTag(2) + protowire.SizeVarint(nanos)
		}
		extra += protowire.SizeTag(fieldEventTime) + protowire.SizeBytes(tsLen)
	}
	n := len(r.body) + extra
	out := make([]byte, 0, protowire.SizeTag(fieldProcessEvent)+protowire.SizeBytes(n))
	out = protowire.AppendTag(out, fieldProcessEvent, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(n))
	out = append(out, r.body...)
	if newID {
		out = protowire.AppendTag(out, fieldEventID, protowire.BytesType)
		out = protowire.AppendString(out, r.id)
	}
	if !r.hasTime {
		out = protowire.AppendTag(out, fieldEventTime, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(tsLen))
		if secs != 0 {
			out = protowire.AppendTag(out, 1, protowire.VarintType)
			out = protowire.AppendVarint(out, secs)
		}
		if nanos != 0 {
			out = protowire.AppendTag(out, 2, protowire.VarintType)
			out = protowire.AppendVarint(out, nanos)
		}
	}
	return out
}
