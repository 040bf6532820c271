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
//   - an error: the event fails with the error's gRPC status
//     (ProcessResponse.error). Use [google.golang.org/grpc/status.Error] to
//     choose the code; context errors map to DEADLINE_EXCEEDED or CANCELED;
//     any other error becomes UNKNOWN with the error's text as message, as
//     grpc-go does for plain errors returned by unary handlers.
//
// A failure affects that one event only: the stream and every other event
// go on. A handler that panics fails its event with INTERNAL; the panic
// value and stack are logged, never sent to the client.
//
// # Concurrency
//
// The sink multiplexes many events over a few long-lived Process streams.
// For each stream one goroutine receives. Handlers run on worker
// goroutines the stream keeps (one per handler running at once, reused from
// event to event, so their stacks need not grow again), or, for a handler
// that is also an [Inliner] and says so for an event, on the receiving
// goroutine itself, which saves a hand-off per event. Handlers are
// therefore called concurrently, in any order, and must be safe for
// concurrent use. Sends on a stream never overlap (gRPC forbids it): a
// handler's answer is sent by the goroutine that has it when no other send
// is under way and nothing waits to be sent, and otherwise handed to the
// stream's writer goroutine over a bounded channel, which also sends
// published events; the order of answers is not defined.
//
// At most Options.MaxConcurrency handlers run at once across all streams of
// a Server. When the limit is reached the Server stops reading requests, so
// the sink feels backpressure through gRPC flow control rather than through
// an unbounded queue.
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
// new streams and new requests are refused with UNAVAILABLE, in-flight
// handlers run to completion and their answers are sent, then each stream
// ends with status OK. Whatever is still running after Options.ShutdownGrace
// is cut off: the streams end with UNAVAILABLE and the gRPC server is
// stopped hard. Serve therefore returns even while sinks hold streams open.
package processor
