package sink

import (
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
	"github.com/eventproc/eventproc/internal/wire"
)

// Relaying replies without decoding them.
//
// A processor's reply event goes back to the client as it came: on gRPC
// (Send and Stream) the sink never decodes and re-encodes it. Decoding a
// ProcessResponse was the largest single cost of the sink's stream path
// (an Event is a map, a Value and a Timestamp: a dozen allocations), and
// encoding it again for the client was the next. So the Process streams use
// relayCodec, which reads each answer into a frame: the request id, the
// result, and the reply event as bytes, checked (well-formed, UTF-8 strings:
// what decoding would have rejected) but not decoded. The gRPC paths put
// those bytes into the client's response as the encoded SendResponse.event
// field (proto's unknown fields are written out verbatim), and only callers
// that need the Event itself — Dispatch, used by the JSON gateway — decode
// it.

// relayCodec is the codec of the sink's Process streams: batches go out
// as the writer encoded them, other requests are encoded by vtcodec, and
// answers are read into frames.
type relayCodec struct{}

// protoCodec is the codec relayCodec defers to.
var protoCodec = vtcodec.Codec{}

// encodedRequest is a ProcessRequest the writer has encoded (a batch:
// see flushBatch), sent as it is.
type encodedRequest []byte

// Name is the content-subtype: the processor sees plain application/grpc+proto.
func (relayCodec) Name() string { return grpcproto.Name }

func (relayCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(encodedRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return protoCodec.Marshal(v)
}

func (relayCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return f.parse(buf.ReadOnlyData())
}

// frameKind is which result a processor's answer carries.
type frameKind uint8

const (
	frameNone frameKind = iota
	frameReply
	frameConsumed
	frameError
	framePublish
)

// frame is a ProcessResponse as the sink reads it.
type frame struct {
	id   uint64
	kind frameKind
	// reply is SendResponse field 1 — tag, length and the reply event's
	// bytes — ready to be appended to a SendResponse as unknown fields;
	// reply[replyAt:] is the event itself.
	reply   []byte
	replyAt int
	status  *spb.Status    // frameError
	publish *eventv1.Event // framePublish
	// batch holds the entries of ProcessResponse.batch, in order.
	batch []frame
}

// ProcessResponse field numbers.
const (
	fieldID       protowire.Number = 1
	fieldReply    protowire.Number = 2
	fieldConsumed protowire.Number = 3
	fieldError    protowire.Number = 4
	fieldPublish  protowire.Number = 5
	fieldBatch    protowire.Number = 6
	// SendResponse.event, the field a relayed reply becomes.
	fieldSendEvent protowire.Number = 1
)

var eventDescriptor = (&eventv1.Event{}).ProtoReflect().Descriptor()

// parse reads an encoded ProcessResponse the way proto.Unmarshal would
// (fields in any order, the last of a oneof wins, a repeated message field
// merges, unknown fields are skipped), except that a reply event is only
// checked, not decoded. b is not retained; f.batch's array is reused.
func (f *frame) parse(b []byte) error { return f.parseDepth(b, 0) }

func (f *frame) parseDepth(b []byte, depth int) error {
	if depth > wire.MaxDepth {
		return wire.ErrDepth
	}
	batch := f.batch[:0]
	clear(f.batch)
	*f = frame{}
	var ev []byte // the reply event's bytes; aliases b unless merged
	merged := false
	for len(b) > 0 {
		fld, rest, err := wire.Next(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case fld.Num == fieldID && fld.Type == protowire.VarintType:
			f.id = fld.Int
		case fld.Num == fieldConsumed && fld.Type == protowire.VarintType:
			f.kind, ev, f.status, f.publish = frameConsumed, nil, nil, nil
		case fld.Type != protowire.BytesType:
			// Unknown, or a known field with another wire type: proto
			// skips it too.
		case fld.Num == fieldReply:
			if err := wire.Check(fld.Bytes, eventDescriptor); err != nil {
				return fmt.Errorf("reply event: %w", err)
			}
			if f.kind == frameReply { // a message field seen twice merges: concatenate
				if !merged {
					ev, merged = append([]byte(nil), ev...), true
				}
				ev = append(ev, fld.Bytes...)
			} else {
				ev, merged = fld.Bytes, false
			}
			f.kind, f.status, f.publish = frameReply, nil, nil
		case fld.Num == fieldError:
			if f.kind != frameError {
				f.status = new(spb.Status)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fld.Bytes, f.status); err != nil {
				return fmt.Errorf("error status: %w", err)
			}
			f.kind, ev, f.publish = frameError, nil, nil
		case fld.Num == fieldPublish:
			if f.kind != framePublish {
				f.publish = new(eventv1.Event)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fld.Bytes, f.publish); err != nil {
				return fmt.Errorf("published event: %w", err)
			}
			f.kind, ev, f.status = framePublish, nil, nil
		case fld.Num == fieldBatch:
			batch = append(batch, frame{})
			if err := batch[len(batch)-1].parseDepth(fld.Bytes, depth+1); err != nil {
				return fmt.Errorf("batch: %w", err)
			}
		}
	}
	if len(batch) > 0 {
		f.batch = batch
	}
	if f.kind == frameReply {
		hdr := protowire.SizeTag(fieldSendEvent) + protowire.SizeVarint(uint64(len(ev)))
		f.reply = make([]byte, 0, hdr+len(ev))
		f.reply = protowire.AppendTag(f.reply, fieldSendEvent, protowire.BytesType)
		f.reply = protowire.AppendVarint(f.reply, uint64(len(ev)))
		f.replyAt = len(f.reply)
		f.reply = append(f.reply, ev...)
	}
	return nil
}

// replyEvent decodes the reply event.
func (f *frame) replyEvent() (*eventv1.Event, error) {
	ev := new(eventv1.Event)
	if err := proto.Unmarshal(f.reply[f.replyAt:], ev); err != nil {
		return nil, err
	}
	return ev, nil
}
