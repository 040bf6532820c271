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
//	                          when consumed, 202 when a broadcast route took it;
//	                          or CloudEvents 1.0: binary (ce- headers),
//	                          structured (application/cloudevents+json) or
//	                          batch (application/cloudevents-batch+json), see
//	                          cloudevents.go and Options.CloudEventTypes
//	GET  /v1/events:subscribe?types=TYPE_HELLO&types=goodbye[&last_event_id=N][&format=cloudevents]
//	                          the events processors publish: Server-Sent Events
//	                          for clients that accept text/event-stream, else
//	                          newline-delimited JSON in grpc-gateway's format;
//	                          as CloudEvents with format=cloudevents
//	GET  /v1/types            the event types, and which have a route
//	GET  /openapi.json        the API as OpenAPI 3 (internal/openapigen),
//	                          without authentication
//	GET  /healthz, /readyz    liveness; readiness (every route has a live
//	                          processor stream), with every route's status
//	GET  /, /console.js, ...  the browser console, embedded
//	GET  /metrics             Options.Metrics, when set
//	GET  /v1/stats            a JSON snapshot of the sink's metrics, which the
//	                          console charts (Options.Stats, when set)
//	GET  /v1/deadletters?type=T[&after=SEQ][&limit=N]
//	                          a durable route's dead letters, when the
//	                          backend keeps them (DeadLetterBackend)
//	POST /v1/deadletters:replay  {"type":T,"sequences":[...]}: stores them
//	                          again for delivery
//
// Every error is its gRPC status as JSON, with the HTTP status grpc-gateway
// maps its code to (405 with Allow for a wrong method, 413 for a body over
// Options.MaxBodyBytes, 408 for a body that sends nothing for
// Options.BodyReadTimeout; an empty body or data after the event is 400):
//
//	{"code":3,"message":"invalid JSON event: ...","details":[]}
//
// A deadline comes from a Grpc-Timeout header (gRPC's syntax: 500m, 2S) or
// a Request-Timeout header (500ms, 2s, or seconds); traceparent and
// tracestate go to the backend as gRPC metadata. The README ("What every
// request gets", "Pub/sub") describes every answer and format in full, and
// docs/design.md (The HTTP front) how it is built on grpc-gateway.
package httpapi
