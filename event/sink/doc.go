// Package sink is the heart of eventproc: it routes events by type to
// backend processors over long-lived, multiplexed gRPC streams and relays
// their answers.
//
// # Shape
//
// A [Sink] is built once from a validated [Config]. Its routing table maps
// each [eventv1.Type] to a route: one or more processor targets, each served
// by a small pool of ProcessorService.Process streams. Every stream carries
// many requests at once, correlated by an id unique on that stream.
//
// Every entry — the in-process [Sink.Send] (which the HTTP gateway calls),
// SinkService.Send and SinkService.Stream over gRPC ([Sink.Register]) —
// takes the same path: check the event, ask [Config.Authorize], route it,
// fill in its id and time, and send it to the least loaded live stream,
// once more elsewhere if no processor can have seen it.
//
//	entry ──► check, authorize, route ──► least-loaded live stream ──► writer goroutine ──► processor
//	  ▲                                                                                    │
//	  └──────────── pending[id] ◄── reader goroutine ◄─────────────────────────────────────┘
//
// Events and replies pass through the sink encoded, never decoded, in
// envelopes generated from internal/relay/v1.
//
// A durable route ([Route.Durable]) takes the same path up to the send: its
// event is stored in NATS JetStream ([DurableConfig]) and answered
// OUTCOME_STORED, and every sink's delivery loop pulls stored events from
// one consumer per type shared by all sinks and sends them to the route's
// processors like any other event, acking, retrying with backoff or moving
// them to the dead-letter stream as the processor answers.
//
// Every event the sink emits has an id and a time: those an entry hands it
// get them before a processor sees them, and a processor's reply or
// published event that lacks them gets a fresh id and the time of the
// answer or publication.
//
// # Concurrency
//
// Exactly one goroutine sends on a gRPC stream and one receives from it.
// Callers register a request in the stream's pending map and hand it to the
// writer over a bounded channel. Whoever removes a request from the pending
// map (the reader with a reply, the caller giving up or its deadline, or the
// stream failing) owns its answer, so every request gets exactly one answer
// and a reply can never reach the wrong caller.
//
// Nothing queues without bound: each stream admits at most
// [Config.MaxPendingPerStream] requests, and past that the sink answers
// RESOURCE_EXHAUSTED at once.
//
// # Lifecycle
//
// [New] validates the configuration and starts nothing. [Sink.Run] opens
// the streams, re-opens them with capped exponential backoff when they break
// (using no CPU while a processor is unreachable), and blocks until its
// context ends. All exported methods are safe for concurrent use.
package sink
