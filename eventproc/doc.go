// Command eventproc is the event sink: it serves the event.v1.SinkService
// API over gRPC (with health checking and reflection) and over HTTP/JSON,
// and routes every event by its type to the processors of that type's
// route.
//
//	eventproc --route hello=localhost:9090 --route goodbye=dns:///procs:9090,10.0.0.7:9090
//
// `eventproc --help` lists every flag and its environment variable (as
// does the README); a bad value stops the program with a message naming
// it. Once listening, it logs "grpc listening on ADDR" and "http listening
// on ADDR" with the real addresses, so port 0 is usable.
//
// With --tls-cert and --tls-key both ports serve TLS (--tls-client-ca
// requires client certificates), and --processor-tls-* make it dial
// processors over TLS or mutual TLS; the certificate files are read again
// every 5s (package event/tlsfiles), so renewed ones apply to new
// connections without a restart.
//
// With --durable TYPE, events of TYPE are stored in NATS JetStream and
// answered 202, then delivered at least once: by default in a NATS server
// embedded in the process, storing under --data-dir and started only when a
// route is durable, or in an external deployment with --nats-url.
//
// It is package event/sink behind a gRPC server and package event/httpapi,
// with configuration, logs, /metrics, the memory limit and shutdown. On
// SIGINT or SIGTERM, /readyz (503) and the health service turn not ready,
// both servers go on serving for --shutdown-delay and then stop accepting
// connections, long-lived streaming calls (health
// Watch, subscriptions, which get UNAVAILABLE) end, and requests in flight
// get --shutdown-grace to finish before their connections are closed; then
// the processor streams close and the program exits 0. A second signal
// kills it at once.
package main
