// Package eventv1 is the eventproc API, generated from event/v1/*.proto
// (run `make generate` after editing them): the [Event] and its [Type] enum,
// [SinkServiceServer] (what clients call: Send, Stream, Subscribe) with its
// grpc-gateway HTTP mapping, and [ProcessorServiceServer] (what processors
// implement: one long-lived bidirectional Process stream carrying many
// correlated requests and answers, and the events a processor publishes).
//
// Only doc.go is written by hand; the other files are generated.
package eventv1
