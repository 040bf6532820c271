package sink

import (
	"context"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Send implements [eventv1.SinkServiceServer]: it routes req's event with
// [Sink.Dispatch].
func (s *Sink) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return s.Dispatch(ctx, req.GetEvent())
}
