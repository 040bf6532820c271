// Package processor is the SDK for writing eventproc processors: backends
// that implement eventv1.ProcessorService and answer the events the sink
// routes to them.
//
// A processor is a [Handler] plus a [Server]:
//
//	h := processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
//		return ev, nil // echo
//	})
//	srv := processor.NewServer(h, processor.Options{MaxConcurrency: 256, Logger: slog.Default()})
//	err := srv.Serve(ctx, lis) // blocks until ctx is done, then stops gracefully
//
// # Answers
//
// A handler answers each event in one of three ways:
//   - a non-nil reply event: it goes back to the client (ProcessResponse.reply);
//   - nil, nil: the event was consumed without a reply (ProcessResponse.consumed);
//   - an error: the event fails (ProcessResponse.error) with the error's
//     status ([google.golang.org/grpc/status.Error] chooses the code);
//     context errors become DEADLINE_EXCEEDED or CANCELED, any other error
//     UNKNOWN with its text, as grpc-go does for unary handlers.
//
// A failure affects that one event only. A handler that panics fails its
// event with INTERNAL; the panic is logged, never sent to the client.
//
// # Concurrency
//
// The sink multiplexes many events over a few long-lived Process streams.
// Handlers run on worker goroutines each stream keeps, or, for an
// [Inliner], on the stream's receiving goroutine. They are called
// concurrently, in any order, and must be safe for concurrent use; the
// order of answers is not defined.
//
// At most Options.MaxConcurrency handlers run at once across all streams of
// a Server. At the limit the Server stops reading requests, so the sink
// feels backpressure through gRPC flow control, not an unbounded queue.
//
// The handler's context is cancelled when the sink cancels the request,
// when the stream ends, and when the request's timeout (measured from its
// receipt) expires; [TraceContext] gives the client's W3C trace context.
// A request that has already expired is answered DEADLINE_EXCEEDED without
// calling the handler.
//
// [Server.Publish] sends an event of the processor's own to every connected
// sink, once per sink, from any goroutine (including handlers).
//
// # Shutdown
//
// [Server.Serve] stops when its context is done: health turns NOT_SERVING,
// new streams and requests are refused with UNAVAILABLE, in-flight handlers
// finish and their answers are sent, then each stream ends with OK. What
// still runs after Options.ShutdownGrace is cut off (streams end with
// UNAVAILABLE, the gRPC server stops hard), so Serve returns even while
// sinks hold streams open.
package processor
