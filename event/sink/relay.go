package sink

import (
	"errors"
	"fmt"
	"github.com/eventproc/eventproc/internal/vtcodec"
	"unicode/utf8"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventv1 "github.com/eventproc/eventproc/event/v1"
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

// relayCodec is the codec of the sink's Process streams: requests are
// encoded by gRPC's proto codec, answers are read into frames.
type relayCodec struct{}

// protoCodec is gRPC's own proto codec, which relayCodec defers to.
var protoCodec = vtcodec.Codec{}

// Name is the content-subtype: the processor sees plain application/grpc+proto.
func (relayCodec) Name() string { return grpcproto.Name }

func (relayCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

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
	if depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	batch := f.batch[:0]
	clear(f.batch)
	*f = frame{}
	var ev []byte // the reply event's bytes; aliases b unless merged
	merged := false
	for len(b) > 0 {
		fld, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case fld.num == fieldID && fld.typ == protowire.VarintType:
			f.id = fld.varint
		case fld.num == fieldConsumed && fld.typ == protowire.VarintType:
			f.kind, ev, f.status, f.publish = frameConsumed, nil, nil, nil
		case fld.typ != protowire.BytesType:
			// Unknown, or a known field with another wire type: proto
			// skips it too.
		case fld.num == fieldReply:
			if err := checkMessage(fld.bytes, eventDescriptor, 0); err != nil {
				return fmt.Errorf("reply event: %w", err)
			}
			if f.kind == frameReply { // a message field seen twice merges: concatenate
				if !merged {
					ev, merged = append([]byte(nil), ev...), true
				}
				ev = append(ev, fld.bytes...)
			} else {
				ev, merged = fld.bytes, false
			}
			f.kind, f.status, f.publish = frameReply, nil, nil
		case fld.num == fieldError:
			if f.kind != frameError {
				f.status = new(spb.Status)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fld.bytes, f.status); err != nil {
				return fmt.Errorf("error status: %w", err)
			}
			f.kind, ev, f.publish = frameError, nil, nil
		case fld.num == fieldPublish:
			if f.kind != framePublish {
				f.publish = new(eventv1.Event)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(fld.bytes, f.publish); err != nil {
				return fmt.Errorf("published event: %w", err)
			}
			f.kind, ev, f.status = framePublish, nil, nil
		case fld.num == fieldBatch:
			batch = append(batch, frame{})
			if err := batch[len(batch)-1].parseDepth(fld.bytes, depth+1); err != nil {
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

// maxDepth is protobuf-go's default recursion limit for decoding.
const maxDepth = 10000

var (
	errInvalidUTF8 = errors.New("string field contains invalid UTF-8")
	errFieldNumber = errors.New("invalid field number")
)

// checkMessage reports whether proto.Unmarshal would reject b as an encoded
// md: malformed wire data, invalid UTF-8 in a string field, or nesting
// deeper than protobuf's limit. It allocates nothing. Fields of an
// unexpected wire type are unknown fields to protobuf and pass, as they do
// there; the messages it checks (Event and the well-known types it uses)
// have no repeated scalar fields, whose packed form it would not look into.
func checkMessage(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	if depth > maxDepth {
		return errors.New("exceeded maximum recursion depth")
	}
	fields := md.Fields()
	for len(b) > 0 {
		fld, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		fd := fields.ByNumber(fld.num)
		if fd == nil || fld.typ != protowire.BytesType {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(fld.bytes) {
				return fmt.Errorf("%s: %w", fd.FullName(), errInvalidUTF8)
			}
		case protoreflect.MessageKind:
			if err := checkMessage(fld.bytes, fd.Message(), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// wireField is one field of an encoded message.
type wireField struct {
	num    protowire.Number
	typ    protowire.Type
	bytes  []byte // the value of a length-delimited field; aliases the input
	varint uint64 // the value of a varint field
}

// nextField reads the field at the start of b, and returns it and the rest
// of b. It fails where proto.Unmarshal would: a malformed tag or value, or
// a field number out of range.
func nextField(b []byte) (wireField, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return wireField{}, nil, protowire.ParseError(n)
	}
	if num > protowire.MaxValidNumber {
		return wireField{}, nil, errFieldNumber
	}
	b = b[n:]
	fld := wireField{num: num, typ: typ}
	switch typ {
	case protowire.BytesType:
		fld.bytes, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		fld.varint, n = protowire.ConsumeVarint(b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return wireField{}, nil, protowire.ParseError(n)
	}
	return fld, b[n:], nil
}
