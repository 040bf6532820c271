package sink

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// CodecOption returns the gRPC codec for the server of the sink's service:
// protobuf encoded and decoded by generated code instead of reflection,
// which halves the protobuf share of a unary Send (3.2 → 1.5 µs per
// request on the benchmark machine, docs/performance.md). It accepts and produces what gRPC's default codec
// does (its one difference: unknown fields inside a Timestamp, Duration or
// Value are dropped), writes a relayed reply as it came, and leaves
// messages of other services (health, reflection) to gRPC's codec.
// eventproc builds its server with it.
func CodecOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(vtcodec.Codec{})
}

// Send implements [eventv1.SinkServiceServer]: it routes req's event like
// [Sink.Dispatch], but relays a reply event without decoding it: the
// response's Event field is nil and the event travels, as the processor
// encoded it, in the response's unknown fields, which gRPC's proto codec
// writes out unchanged, so a gRPC client receives the event itself.
// [RelayedEvent] returns those bytes; code that needs the reply as an Event
// calls Dispatch instead.
func (s *Sink) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return s.dispatchCounted(ctx, req.GetEvent(), false)
}

// RelayedEvent returns the encoded reply event that [Sink.Send] relayed in
// resp, as the processor encoded it, and whether resp holds one. The HTTP
// front writes it as JSON without decoding it.
func RelayedEvent(resp *eventv1.SendResponse) ([]byte, bool) {
	if resp.GetEvent() != nil {
		return nil, false
	}
	b := resp.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldSendEvent || typ != protowire.BytesType {
		return nil, false
	}
	ev, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, false
	}
	return ev, true
}
