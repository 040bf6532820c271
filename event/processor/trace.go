package processor

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The sink sends each event's W3C trace context in the request, because the
// long-lived Process stream is one RPC shared by many events. The SDK puts
// it back into the handler's context, as the remote parent span, so a
// handler using OpenTelemetry continues the client's trace; and it wraps each
// handler call in a span from the global TracerProvider (a no-op unless the
// program installs one with otel.SetTracerProvider).

const tracerName = "github.com/eventproc/eventproc/event/processor"

var w3c propagation.TraceContext

type traceContextKey struct{}

// TraceContext returns the W3C trace context (keys such as "traceparent"
// and "tracestate") that the sink sent with the event being handled, or nil
// when there is none. ctx must be, or derive from, the context passed to
// [Handler.Handle]. The map must not be modified.
func TraceContext(ctx context.Context) map[string]string {
	tc, _ := ctx.Value(traceContextKey{}).(map[string]string)
	return tc
}

// withTraceContext returns ctx carrying tc for TraceContext and, when tc
// holds a valid traceparent, as the OpenTelemetry remote span context.
func withTraceContext(ctx context.Context, tc map[string]string) context.Context {
	if len(tc) == 0 {
		return ctx
	}
	ctx = w3c.Extract(ctx, propagation.MapCarrier(tc))
	return context.WithValue(ctx, traceContextKey{}, tc)
}

// startSpan starts the span around one handler call.
func startSpan(ctx context.Context, ev *eventv1.Event) (context.Context, trace.Span) {
	return otel.Tracer(tracerName).Start(ctx, "eventproc.process "+ev.GetType().String(),
		trace.WithSpanKind(trace.SpanKindServer))
}

// endSpan records the outcome of a handler call and ends its span.
func endSpan(span trace.Span, resp *eventv1.ProcessResponse) {
	if e := resp.GetError(); e != nil {
		span.SetStatus(codes.Error, e.GetMessage())
	}
	span.End()
}
