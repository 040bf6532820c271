// Command eventproc is the event sink: it serves the event.v1.SinkService
// API over gRPC (with health checking and reflection) and over HTTP/JSON,
// and routes every event by its type to the processors of that type's
// route.
//
//	eventproc --route hello=localhost:9090 --route goodbye=dns:///procs:9090,10.0.0.7:9090
//
// `eventproc --help` lists every flag and its environment variable; the
// README's flags table is the same list. A bad value stops the program with
// a message naming the flag or variable. Once listening, the program logs
// "grpc listening on ADDR" and "http listening on ADDR" with the real
// addresses, so port 0 is usable.
//
// The program is the sink library (package event/sink) behind a gRPC server
// and the HTTP API of package event/httpapi, with the process around them:
// configuration, logs, /metrics, the memory limit (--memory-budget), and
// shutdown. On SIGINT or SIGTERM, /readyz and the health service turn not
// ready, both servers stop accepting connections, long-lived streaming
// calls (health Watch, gRPC and HTTP subscriptions, which get an
// UNAVAILABLE error) end, and requests in flight get --shutdown-grace to
// finish; connections still open after that are closed. Then the processor
// streams close and the program exits 0. A second signal kills it at once.
package main
