package processor

import (
	"context"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Each request carries its event's W3C trace context (docs/design.md, Trace
// context). The SDK makes it the handler context's remote parent and, once
// the program installs a TracerProvider (otel.SetTracerProvider), wraps each
// handler call in a span; the default provider's spans would record
// nothing, so none are started until then.

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

// serverSpan are the options of every handler span, a variable so that the
// variadic call does not allocate.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// startSpan starts a handler call's span; without a provider: ctx and nil.
func startSpan(ctx context.Context, ev *eventv1.Event) (context.Context, trace.Span) {
	tracer := currentTracer()
	if tracer == nil {
		return ctx, nil
	}
	return tracer.Start(ctx, spanName(ev.GetType()), serverSpan...)
}

// endSpan records the outcome of a handler call and ends its span, if any.
func endSpan(span trace.Span, resp *eventv1.ProcessResponse) {
	if span == nil {
		return
	}
	if e := resp.GetError(); e != nil {
		span.SetStatus(codes.Error, e.GetMessage())
	}
	span.End()
}

// spanNames are the span names of the event types known at build time.
var spanNames = func() map[eventv1.Type]string {
	m := make(map[eventv1.Type]string, len(eventv1.Type_name))
	for v := range eventv1.Type_name {
		t := eventv1.Type(v)
		m[t] = "eventproc.process " + t.String()
	}
	return m
}()

// spanName names the span of an event of type t.
func spanName(t eventv1.Type) string {
	if name, ok := spanNames[t]; ok {
		return name
	}
	return "eventproc.process " + t.String()
}

// tracerFor is the tracer of one TracerProvider.
type tracerFor struct {
	provider trace.TracerProvider
	tracer   trace.Tracer // nil for OpenTelemetry's default provider
}

// lastTracer caches the tracer of the global TracerProvider seen last:
// otel.Tracer takes a global lock on every call while none is installed.
var lastTracer atomic.Pointer[tracerFor]

// currentTracer returns the global provider's tracer; nil for the default one.
func currentTracer() trace.Tracer {
	tp := otel.GetTracerProvider()
	// Only providers of comparable types are cached, so == cannot panic.
	if c := lastTracer.Load(); c != nil && c.provider == tp {
		return c.tracer
	}
	var tracer trace.Tracer
	if !isDefaultProvider(tp) {
		tracer = tp.Tracer(tracerName)
	}
	if typ := reflect.TypeOf(tp); typ != nil && typ.Comparable() {
		lastTracer.Store(&tracerFor{provider: tp, tracer: tracer})
	}
	return tracer
}

// isDefaultProvider reports whether tp is OpenTelemetry's global default,
// which otel.GetTracerProvider returns until otel.SetTracerProvider is called.
func isDefaultProvider(tp trace.TracerProvider) bool {
	typ := reflect.TypeOf(tp)
	return typ != nil && typ.Kind() == reflect.Pointer &&
		typ.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global" && typ.Elem().Name() == "tracerProvider"
}
