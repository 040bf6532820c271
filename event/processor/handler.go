package processor

import (
	"context"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Handler handles one event. It returns the reply event, or nil and a nil
// error when it consumed the event without a reply, or an error that fails
// this event only (see the package documentation for how errors map to
// gRPC statuses).
//
// Handle is called concurrently from many goroutines. ctx is done when the
// request's deadline passes, when the sink cancels it or when its stream
// ends; long work should watch it. A handler must not keep or modify ev
// after it returns, except by returning it as the reply.
type Handler interface {
	Handle(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error)
}

// HandlerFunc adapts an ordinary function to a [Handler].
type HandlerFunc func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error)

// Handle calls f(ctx, ev).
func (f HandlerFunc) Handle(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
	return f(ctx, ev)
}
