package sink

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// A Process stream is one RPC shared by many events, so the sink copies each
// request's W3C trace context into ProcessRequest.trace_context.

var w3c propagation.TraceContext

// traceContext returns the W3C trace context of the request behind ctx: the
// current span when the server is instrumented, else the traceparent and
// tracestate the client sent (gRPC metadata, or HTTP headers forwarded by
// the gateway). It returns nil, allocating nothing, when there is none.
func traceContext(ctx context.Context) map[string]string {
	if trace.SpanContextFromContext(ctx).IsValid() {
		m := make(map[string]string, 2)
		w3c.Inject(ctx, propagation.MapCarrier(m))
		return m
	}
	tp := metadata.ValueFromIncomingContext(ctx, "traceparent")
	if len(tp) == 0 {
		return nil
	}
	m := map[string]string{"traceparent": tp[0]}
	if ts := metadata.ValueFromIncomingContext(ctx, "tracestate"); len(ts) > 0 {
		m["tracestate"] = ts[0]
	}
	return m
}
