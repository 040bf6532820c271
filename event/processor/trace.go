package processor

import "context"

type traceContextKey struct{}

// TraceContext returns the W3C trace context (keys such as "traceparent"
// and "tracestate") that the sink sent with the event being handled, or nil
// when there is none. ctx must be, or derive from, the context passed to
// [Handler.Handle]. The map must not be modified.
func TraceContext(ctx context.Context) map[string]string {
	tc, _ := ctx.Value(traceContextKey{}).(map[string]string)
	return tc
}

// withTraceContext returns ctx carrying tc for TraceContext.
func withTraceContext(ctx context.Context, tc map[string]string) context.Context {
	if len(tc) == 0 {
		return ctx
	}
	return context.WithValue(ctx, traceContextKey{}, tc)
}
