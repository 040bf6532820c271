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

// Inliner is an optional interface of a [Handler] whose Handle returns at
// once for some events: no I/O, no sleeping, no waiting on other goroutines
// (Publish included), no long computation. For an event Inline reports
// true, Handle runs on the stream's receiving goroutine instead of a worker,
// which saves a hand-off; but the stream reads no further requests, cancels
// included, until Handle returns, so a blocking Handle stalls the stream.
// Everything else (answer, concurrency limit, context, panic isolation,
// draining) is as for other events. Inline must be fast and must not keep
// or modify ev; a panic in Inline counts as false.
type Inliner interface {
	Inline(ev *eventv1.Event) bool
}
