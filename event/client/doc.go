// Package client sends events to an eventproc sink from Go, over
// SinkService.Stream: many Send calls, from any number of goroutines, share
// one long-lived bidirectional stream, and each gets its own answer.
//
// It correlates answers with callers by event id, sends the events that
// wait together in one message (StreamRequest.batch) and reads answers in
// batches, bounds what is in flight, and carries each caller's deadline to
// the sink; see docs/design.md, The Go client.
//
//	conn, err := grpc.NewClient("localhost:8081",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	...
//	c := client.New(conn, client.Options{})
//	defer c.Close()
//	resp, err := c.Send(ctx, &eventv1.Event{Type: eventv1.Type_TYPE_HELLO,
//		Payload: structpb.NewStringValue("hi")})
//
// # Semantics
//
// [Client.Send] answers as the unary SinkService.Send would: the processor's
// SendResponse, or the sink's error as a gRPC status error with the same
// code. One event's error leaves the other events and the stream alone.
// Errors the client finds itself use the codes the sink would have used:
// INVALID_ARGUMENT for an event that cannot be encoded, RESOURCE_EXHAUSTED
// for one larger than [Options.MaxMessageBytes], DEADLINE_EXCEEDED and
// CANCELLED for the caller's context.
//
// An event without an id gets one from the client; the caller's event is
// never modified. Ids must be unique among the events in flight on the
// Client: Send refuses a second one with ALREADY_EXISTS.
//
// The caller's deadline travels with the event (StreamRequest.timeout);
// without one the sink's default timeout applies. A caller whose context
// ends returns at once, but its event keeps its place among the
// [Options.MaxInFlight] until the sink answers it: a stream cannot call
// back one event.
//
// The stream is opened without the caller's context, so its metadata and
// trace context are not sent (StreamRequest has no field for them); use the
// unary SinkService.Send for events that must carry their own.
//
// # Failures
//
// The stream is opened by the first Send, and again by the first Send after
// it broke. When it breaks, every event in flight on it fails with the
// stream's status (UNAVAILABLE when the sink went away). The client never
// resends: a processor may already have them.
//
// # Concurrency and bounds
//
// A Client is safe for concurrent use. It runs two goroutines while its
// stream is open, one writing and one reading. At most
// [Options.MaxInFlight] events are in flight (waiting to be sent, or sent
// and not yet answered); Send waits for room, within its context.
package client
