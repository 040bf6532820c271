package sink

import (
	"context"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Send implements [eventv1.SinkServiceServer]: it routes req's event like
// [Sink.Dispatch], but relays a reply event without decoding it: the
// response's Event field is nil and the event travels, as the processor
// encoded it, in the response's unknown fields, which gRPC's proto codec
// writes out unchanged, so a gRPC client receives the event itself. Code
// that needs the reply as an Event — an in-process grpc-gateway encoding
// JSON, for one — calls Dispatch instead.
func (s *Sink) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return s.dispatchCounted(ctx, req.GetEvent(), false)
}
