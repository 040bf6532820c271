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
//	Send ──► route(type) ──► least-loaded live stream ──► writer goroutine ──► processor
//	  ▲                                                                            │
//	  └──────────── pending[id] ◄── reader goroutine ◄─────────────────────────────┘
//
// # Concurrency
//
// Exactly one goroutine sends on a gRPC stream and one receives from it.
// Callers hand requests to the writer over a bounded channel after
// registering them in the stream's pending map, then wait for their own
// reply or their context, whichever comes first. Whoever removes a request
// from the pending map (the reader with a reply, the caller giving up, or the
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
