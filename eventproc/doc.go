// Command eventproc is the event sink: it serves the event.v1.SinkService
// API over gRPC and over HTTP/JSON, and routes every event by its type to
// the processors of that type's route (see package
// github.com/eventproc/eventproc/event/sink).
//
//	eventproc --route hello=localhost:9090 --route goodbye=dns:///procs:9090,10.0.0.7:9090
//
// # Flags and environment
//
// Every flag can also be set by an environment variable; a flag on the
// command line wins over its variable. A bad value stops the program with a
// message naming the flag or variable.
//
//	--http-addr ADDR           EVENTPROC_HTTP_ADDR           HTTP/JSON listen address (":8080")
//	--grpc-addr ADDR           EVENTPROC_GRPC_ADDR           gRPC listen address (":8081")
//	--route TYPE=TARGET[,...]  EVENTPROC_ROUTES              a route; repeatable, at least one; the
//	                                                         variable separates routes with ';' or spaces
//	--broadcast TYPE           EVENTPROC_BROADCAST           make TYPE's route broadcast; repeatable
//	--timeout DURATION         EVENTPROC_TIMEOUT             deadline when the client gives none ("10s")
//	--max-body-bytes N         EVENTPROC_MAX_BODY_BYTES      largest HTTP body and gRPC message (1048576)
//	--streams-per-target N     EVENTPROC_STREAMS_PER_TARGET  Process streams per target (0: GOMAXPROCS, ≥2)
//	--max-pending N            EVENTPROC_MAX_PENDING         requests in flight per stream (0: 1024)
//	--log-format text|json     EVENTPROC_LOG_FORMAT          log format on stderr ("text")
//	--log-level LEVEL          EVENTPROC_LOG_LEVEL           debug, info, warn or error ("info")
//	--shutdown-grace DURATION  EVENTPROC_SHUTDOWN_GRACE      time in-flight requests get at shutdown ("10s")
//
// TYPE is an event type name with or without its TYPE_ prefix, in any case
// (hello, TYPE_HELLO). Durations are Go durations (500ms, 1.5s) or plain
// seconds. Once listening, the program logs "grpc listening on ADDR" and
// "http listening on ADDR" with the real addresses, so port 0 is usable.
//
// # gRPC API
//
// event.v1.SinkService, the standard health service (SERVING for "" and
// "event.v1.SinkService" while every route has a live processor), and
// server reflection, so grpcurl works without proto files. A request larger
// than --max-body-bytes fails with RESOURCE_EXHAUSTED.
//
// # HTTP API
//
// The HTTP API is grpc-gateway registered in-process (no gRPC hop):
//
//	POST /v1/events   the body is one event as JSON, e.g.
//	                  {"type":"TYPE_HELLO","payload":{"any":"JSON"},"metadata":{"k":"v"}}
//	GET  /healthz     200 "ok" while the process runs (liveness)
//	GET  /readyz      200 when every route has a live processor stream, else
//	                  503 (also from the start of shutdown); the body is
//	                  {"ready":bool,"routes":[...per-route and per-target status...]}
//
// POST /v1/events answers:
//
//	200  the processor replied; the body is the reply event
//	204  the processor consumed the event; empty body
//	202  a broadcast route accepted the event; empty body
//
// Unknown JSON fields, unknown enum names, malformed JSON, an empty body and
// anything after the event are refused with 400. Errors are gRPC statuses
// mapped to HTTP by grpc-gateway and always have a JSON body
//
//	{"code":<gRPC code number>,"message":"what is wrong","details":[]}
//
// with these statuses:
//
//	400 INVALID_ARGUMENT    bad JSON, missing or unknown type, bad timeout header
//	404 NOT_FOUND           unknown path (or a processor's NOT_FOUND)
//	405                     wrong method (with an Allow header)
//	413 RESOURCE_EXHAUSTED  body over --max-body-bytes, with or without Content-Length
//	429 RESOURCE_EXHAUSTED  too many requests pending for the type's processors
//	501 UNIMPLEMENTED       a valid type without a route
//	503 UNAVAILABLE         no live processor for the type, or its stream broke
//	504 DEADLINE_EXCEEDED   no answer before the deadline
//
// and whatever status a processor fails an event with (for example 404 or
// 400), which affects that event only.
//
// # Deadlines
//
// An HTTP client sets its deadline with the Grpc-Timeout header (gRPC's
// format: an integer and a unit H, M, S, m, u or n, e.g. "Grpc-Timeout:
// 500m" for 500 ms) or the Request-Timeout header (a Go duration or a
// number of seconds, e.g. "Request-Timeout: 1.5s"); with both, the earlier
// deadline applies. A gRPC client's deadline applies as is. Without one,
// --timeout applies. The deadline travels with the event to the processor.
//
// # Tracing
//
// The W3C trace context of a request (traceparent and tracestate HTTP
// headers, or gRPC metadata) travels with its event to the processor.
//
// # Shutdown
//
// On SIGINT or SIGTERM, /readyz and the health service turn not ready, both
// servers stop accepting connections, long-lived streaming calls (health
// Watch, Subscribe) end, and requests in flight get --shutdown-grace to
// finish; connections still open after that are closed. Then the processor
// streams close and the program exits 0. A second signal kills it at once.
package main
