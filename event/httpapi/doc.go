// Package httpapi is the sink's HTTP/JSON API as an [http.Handler], for
// any program that runs a sink: the eventproc binary serves it, and an
// application can serve the same API from its own binary.
//
//	sk, err := sink.New(cfg)               // run it with sk.Run(ctx)
//	api, err := httpapi.New(sk, httpapi.Options{Metrics: promhttp.Handler()})
//	srv := &http.Server{Handler: api}
//	srv.RegisterOnShutdown(api.Shutdown)   // end subscriptions at shutdown
//
// It serves
//
//	POST /v1/events           an event as JSON (protobuf's JSON mapping of
//	                          event.v1.Event); 200 with the reply event, 204
//	                          when consumed, 202 when a broadcast route took it
//	GET  /v1/events:subscribe?types=TYPE_HELLO&types=goodbye[&last_event_id=N]
//	                          the events processors publish: Server-Sent Events
//	                          for clients that accept text/event-stream, else
//	                          newline-delimited JSON in grpc-gateway's format
//	GET  /v1/types            the event types, and which have a route
//	GET  /healthz, /readyz    liveness; readiness (every route has a live
//	                          processor stream), with every route's status
//	GET  /, /console.js, ...  the browser console, embedded
//	GET  /metrics             Options.Metrics, when set
//
// POST /v1/events goes through grpc-gateway, registered in-process (no gRPC
// hop), and is shaped only through the gateway's extension points: a
// marshaler that reads and writes events with the same JSON as protojson,
// faster, and refuses an empty body or anything after the event; a
// forward-response option that picks 204 or 202 by outcome; and error
// handlers that answer every error as its gRPC status in JSON,
//
//	{"code":3,"message":"invalid JSON event: ...","details":[]}
//
// with the HTTP status grpc-gateway maps its code to, 405 with an Allow
// header for a wrong method, and 413 for a body over Options.MaxBodyBytes
// (with or without a Content-Length). A deadline comes from a Grpc-Timeout
// header (gRPC's syntax: 500m, 2S) or a Request-Timeout header (500ms, 2s,
// or seconds); the W3C traceparent and tracestate headers go to the backend
// as gRPC metadata.
//
// The README's "What every request gets" and "Pub/sub" sections describe
// every answer and the subscription formats in full.
package httpapi
