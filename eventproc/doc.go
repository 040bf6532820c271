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
//	--max-streams-per-conn N   EVENTPROC_MAX_STREAMS_PER_CONN
//	                                                         concurrent gRPC calls per client connection;
//	                                                         more wait in the client (1000)
//	--keepalive DURATION       EVENTPROC_KEEPALIVE           how often each processor is health-checked ("5s")
//	--keepalive-timeout DURATION
//	                           EVENTPROC_KEEPALIVE_TIMEOUT   how long a check may go unanswered ("3s")
//	--debug-addr ADDR          EVENTPROC_DEBUG_ADDR          Go profiler and /debug/vars (off when empty)
//	--history N                EVENTPROC_HISTORY             published events kept per type for resuming
//	                                                         subscribers (1024; 0 keeps none)
//	--subscriber-buffer N      EVENTPROC_SUBSCRIBER_BUFFER   events waiting per subscriber (256)
//	--slow-subscriber POLICY   EVENTPROC_SLOW_SUBSCRIBER     drop (the oldest, reported as missed) or
//	                                                         disconnect, when that buffer is full ("drop")
//	--max-subscribers N        EVENTPROC_MAX_SUBSCRIBERS     live subscriptions before 429 (10000)
//	--sse-heartbeat DURATION   EVENTPROC_SSE_HEARTBEAT       heartbeat interval on SSE streams ("15s")
//	--memory-budget SIZE       EVENTPROC_MEMORY_BUDGET       memory the Go runtime aims to stay within ("48MiB";
//	                                                         off: none; unset, GOMEMLIMIT applies if set)
//	--log-format text|json     EVENTPROC_LOG_FORMAT          log format on stderr ("text")
//	--log-level LEVEL          EVENTPROC_LOG_LEVEL           debug, info, warn or error ("info")
//	--shutdown-grace DURATION  EVENTPROC_SHUTDOWN_GRACE      time in-flight requests get at shutdown ("10s")
//
// TYPE is an event type name with or without its TYPE_ prefix, in any case
// (hello, TYPE_HELLO). Durations are Go durations (500ms, 1.5s) or plain
// seconds. Once listening, the program logs "grpc listening on ADDR" and
// "http listening on ADDR" with the real addresses, so port 0 is usable.
//
// # Memory
//
// --memory-budget is the Go runtime's soft memory limit: the collector runs
// more often as the sink nears it, so that 1,000 keep-alive HTTP clients fit
// in 64 MiB of resident memory. It is never held below a quarter more than
// what the sink needs after a collection, so when the live memory outgrows
// the budget (many more connections or subscribers) the sink goes beyond it
// instead of collecting back to back; at worst it then collects about four
// times as often as with GOGC alone: raise the budget for such loads.
// Unless the environment sets GOGC, the sink sets it under a budget: 400
// while what it needs is a fifth of the budget or less (a collection per
// five times the live heap allocated, not two: 5-20 % less CPU per
// request), falling to the default 100 as it nears half the budget, so
// that with many connections it collects as it would by default. Once the HTTP front has
// been quiet for a second after at least 64 requests or closed
// connections, the sink collects and returns the memory it no longer uses
// to the OS at once (debug.FreeOSMemory), instead of keeping its peak
// resident set for minutes.
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
//	GET  /v1/events:subscribe  the events processors publish, streamed (see
//	                  Subscriptions below)
//	GET  /v1/types    {"types":[{"name":"TYPE_HELLO","number":1,"routed":true},...]}
//	GET  /            the browser console (see Console below); also /index.html
//	GET  /healthz     200 "ok" while the process runs (liveness)
//	GET  /readyz      200 when every route has a live processor stream, else
//	                  503 (also from the start of shutdown); the body is
//	                  {"ready":bool,"routes":[...per-route and per-target status...]}
//	GET  /metrics     Prometheus metrics of the sink, the Go runtime and the process
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
// # Subscriptions
//
// Processors may publish events of their own (the echo processor does with
// --publish); the sink numbers them with a sink-wide sequence number and
// fans them out to subscribers, over gRPC (SinkService.Subscribe) and over
// HTTP:
//
//	GET /v1/events:subscribe?types=TYPE_HELLO&types=goodbye
//
// types is repeatable and may also be comma-separated (types=hello,goodbye);
// names go with or without TYPE_, in any case. last_event_id=N resumes after
// the event with sequence number N: the retained events after it are
// replayed (up to --history per type), then new ones follow, with no gap and
// no duplicate. A Last-Event-ID header, which EventSource sends when it
// reconnects, wins over last_event_id. Other query parameters are refused.
//
// The answer is newline-delimited JSON (Content-Type: application/x-ndjson)
// in grpc-gateway's format for streams, flushed line by line:
//
//	{"result":{"event":{"id":"...","type":"TYPE_HELLO","payload":"hi"},"sequence":"7"}}
//	{"result":{"event":{...},"sequence":"12","missed":"3"}}
//	{"error":{"code":14,"message":"sink is shutting down","details":[]}}
//
// missed counts the matching events lost just before that one (the
// subscriber was too slow, or resumed from beyond the history); error is the
// last line when the sink ends the stream.
//
// A client whose Accept header lists text/event-stream gets Server-Sent
// Events instead (Content-Type: text/event-stream, Cache-Control: no-cache,
// X-Accel-Buffering: no), which a browser's EventSource reads directly:
//
//	retry: 2000
//
//	id: 7
//	event: TYPE_HELLO
//	data: {"id":"...","type":"TYPE_HELLO","payload":"hi"}
//
//	event: missed
//	data: {"missed":3}
//
//	: heartbeat
//
//	event: error
//	data: {"code":14,"message":"sink is shutting down","details":[]}
//
// id is the sequence number, event the type name and data the event as
// JSON. A missed event, without id, comes just before an event when matching
// events were lost before it. A heartbeat comment goes out every
// --sse-heartbeat to keep proxies from closing idle streams (NDJSON, having
// no comments, has none). An error event ends the stream.
//
// Errors found before streaming starts are ordinary JSON errors: 400 for a
// missing or unknown type, a malformed last event id or an unknown
// parameter, 405 for a method other than GET, 429 past --max-subscribers.
// Once streaming, the stream ends with an error event or line when the
// subscriber fell --subscriber-buffer events behind under
// --slow-subscriber disconnect (RESOURCE_EXHAUSTED: resume with the last id
// received) or at shutdown (UNAVAILABLE). A client that takes no bytes for
// 10 seconds is disconnected. The HTTP server has no write timeout, so
// streams last as long as the client stays.
//
// # Console
//
// GET / serves a one-page browser console, embedded in the binary (no
// external scripts, styles or fonts; a strict Content-Security-Policy): it
// sends events of any type with a JSON payload and metadata and shows the
// answer, its HTTP status and latency; subscribes with EventSource and lists
// published events live, newest first, with missed counts and the
// connection state; and shows the routes' health from /readyz, refreshed
// every few seconds.
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
// Watch, gRPC and HTTP subscriptions, which get an UNAVAILABLE error event
// or line) end, and requests in flight get --shutdown-grace to finish;
// connections still open after that are closed. Then the processor streams
// close and the program exits 0. A second signal kills it at once.
package main
