package sink

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/wire"
)

// checkEncodable fails, with INVALID_ARGUMENT, for an event that protobuf
// cannot encode or a processor could not decode: a string that is not
// UTF-8, or a payload nested deeper than protobuf's decoders allow. Such an
// event would not fail alone: the processor stream it shares with other
// callers' events would break. Only Go callers can build the first (every
// decoder, binary or JSON, rejects it); the second can come from JSON,
// whose decoder counts nesting differently.
func checkEncodable(ev *eventv1.Event) error {
	if !utf8.ValidString(ev.Id) {
		return notUTF8("event.v1.Event.id")
	}
	for k, v := range ev.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return notUTF8("event.v1.Event.metadata")
		}
	}
	return checkValue(ev.Payload, payloadDepth)
}

// payloadDepth is the depth at which protobuf's decoder meets an event's
// payload inside a batch of requests (ProcessRequest, its batch entry, the
// event), with room to spare.
const payloadDepth = 8

// eventDepth is the same depth for the event itself, for encoded events
// (wire.CheckAt): an event the sink relays undecoded is held to the same
// limit as one it decoded.
const eventDepth = payloadDepth - 1

// errTooDeep is the error for an event a processor could not decode for
// its nesting.
var errTooDeep = status.Errorf(codes.InvalidArgument,
	"event payload is nested too deeply: protobuf decodes at most %d levels of messages", wire.MaxDepth)

// checkValue is checkEncodable for a payload value at depth messages.
func checkValue(v *structpb.Value, depth int) error {
	if depth > wire.MaxDepth {
		return errTooDeep
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return notUTF8("google.protobuf.Value.string_value")
		}
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			if err := checkValue(e, depth+2); err != nil { // ListValue, Value
				return err
			}
		}
	case *structpb.Value_StructValue:
		for name, e := range k.StructValue.GetFields() {
			if !utf8.ValidString(name) {
				return notUTF8("google.protobuf.Struct.fields")
			}
			if err := checkValue(e, depth+3); err != nil { // Struct, its map entry, Value
				return err
			}
		}
	}
	return nil
}

func notUTF8(field string) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf("%s: %v", field, wire.ErrInvalidUTF8))
}
