package sink

import (
	"errors"
	"fmt"
	"unicode/utf8"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/encoding"
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
var protoCodec = encoding.GetCodecV2(grpcproto.Name)

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
}

// ProcessResponse field numbers.
const (
	fieldID       protowire.Number = 1
	fieldReply    protowire.Number = 2
	fieldConsumed protowire.Number = 3
	fieldError    protowire.Number = 4
	fieldPublish  protowire.Number = 5
	// SendResponse.event, the field a relayed reply becomes.
	fieldSendEvent protowire.Number = 1
)

var eventDescriptor = (&eventv1.Event{}).ProtoReflect().Descriptor()

// parse reads an encoded ProcessResponse the way proto.Unmarshal would
// (fields in any order, the last of a oneof wins, a repeated message field
// merges, unknown fields are skipped), except that a reply event is only
// checked, not decoded. b is not retained.
func (f *frame) parse(b []byte) error {
	*f = frame{}
	var ev []byte // the reply event's bytes; aliases b unless merged
	merged := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		b = b[n:]
		switch {
		case num == fieldID && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f.id, b = v, b[n:]
			continue
		case num == fieldConsumed && typ == protowire.VarintType:
			_, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			f.kind, ev, f.status, f.publish = frameConsumed, nil, nil, nil
			continue
		case typ != protowire.BytesType || num < fieldReply || num > fieldPublish || num == fieldConsumed:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:] // unknown, or a known field with another wire type: proto skips it too
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case fieldReply:
			if err := checkMessage(v, eventDescriptor, 0); err != nil {
				return fmt.Errorf("reply event: %w", err)
			}
			if f.kind == frameReply { // a message field seen twice merges: concatenate
				if !merged {
					ev, merged = append([]byte(nil), ev...), true
				}
				ev = append(ev, v...)
			} else {
				ev, merged = v, false
			}
			f.kind, f.status, f.publish = frameReply, nil, nil
		case fieldError:
			if f.kind != frameError {
				f.status = new(spb.Status)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, f.status); err != nil {
				return fmt.Errorf("error status: %w", err)
			}
			f.kind, ev, f.publish = frameError, nil, nil
		case fieldPublish:
			if f.kind != framePublish {
				f.publish = new(eventv1.Event)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, f.publish); err != nil {
				return fmt.Errorf("published event: %w", err)
			}
			f.kind, ev, f.status = framePublish, nil, nil
		}
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
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd == nil {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return fmt.Errorf("%s: %w", fd.FullName(), errInvalidUTF8)
			}
		case protoreflect.MessageKind:
			if err := checkMessage(v, fd.Message(), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
