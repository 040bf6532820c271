package processor_test

import (
	"context"
	"sync"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"go.opentelemetry.io/otel"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recordingProvider is a TracerProvider that records the spans started.
type recordingProvider struct {
	embedded.TracerProvider
	mu    sync.Mutex
	spans []*recordedSpan
}

func (p *recordingProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return recordingTracer{p: p}
}

// spanRecord is what a recordedSpan recorded.
type spanRecord struct {
	name   string
	kind   trace.SpanKind
	parent trace.SpanContext
	status otelcodes.Code
	ended  bool
}

func (p *recordingProvider) recorded() []spanRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []spanRecord
	for _, s := range p.spans {
		s.mu.Lock()
		out = append(out, s.rec)
		s.mu.Unlock()
	}
	return out
}

type recordingTracer struct {
	embedded.Tracer
	p *recordingProvider
}

func (t recordingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	parent := trace.SpanContextFromContext(ctx)
	s := &recordedSpan{rec: spanRecord{name: name, kind: cfg.SpanKind(), parent: parent}}
	s.Span = noop.Span{}
	s.sc = parent.WithSpanID(trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}).WithRemote(false)
	t.p.mu.Lock()
	t.p.spans = append(t.p.spans, s)
	t.p.mu.Unlock()
	return trace.ContextWithSpan(ctx, s), s
}

type recordedSpan struct {
	noop.Span
	sc  trace.SpanContext
	mu  sync.Mutex
	rec spanRecord
}

func (s *recordedSpan) SpanContext() trace.SpanContext { return s.sc }

func (s *recordedSpan) SetStatus(c otelcodes.Code, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.status = c
}

func (s *recordedSpan) End(...trace.SpanEndOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.ended = true
}

// Once a program installs a TracerProvider, every handler call runs in a
// server span of it, child of the sink's trace context; a provider
// installed later takes over.
func TestSpansOfInstalledTracerProvider(t *testing.T) {
	// There is no way back to OpenTelemetry's default provider (it would
	// delegate to the first one installed): leave a no-op one.
	defer otel.SetTracerProvider(noop.NewTracerProvider())
	ctx := testCtx(t)
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if !trace.SpanContextFromContext(ctx).Equal(trace.SpanFromContext(ctx).SpanContext()) ||
			trace.SpanContextFromContext(ctx).SpanID() != (trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}) {
			return nil, status.Error(codes.Internal, "handler does not run in the span")
		}
		if ev.GetId() == "fail" {
			return nil, status.Error(codes.NotFound, "no")
		}
		return ev, nil
	}), processor.Options{})
	st := h.open(t, ctx, "")
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, p := range []*recordingProvider{{}, {}} {
		otel.SetTracerProvider(p)
		for i, id := range []string{"ok", "fail"} {
			req := request(uint64(i+1), id, 0)
			req.TraceContext = map[string]string{"traceparent": traceparent}
			send(t, st, req)
			resp := recv(t, st)
			if want := map[string]codes.Code{"ok": codes.OK, "fail": codes.NotFound}[id]; errorCode(resp) != want {
				t.Errorf("%s: got %v, want code %v", id, resp, want)
			}
		}
		spans := p.recorded()
		if len(spans) != 2 {
			t.Fatalf("provider recorded %d spans, want 2: %+v", len(spans), spans)
		}
		for i, s := range spans {
			if s.name != "eventproc.process TYPE_HELLO" || s.kind != trace.SpanKindServer || !s.ended {
				t.Errorf("span %d = %+v, want an ended server span eventproc.process TYPE_HELLO", i, s)
			}
			if s.parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !s.parent.IsRemote() {
				t.Errorf("span %d parent = %v, want the sink's remote span", i, s.parent)
			}
			if want := []otelcodes.Code{otelcodes.Unset, otelcodes.Error}[i]; s.status != want {
				t.Errorf("span %d status = %v, want %v", i, s.status, want)
			}
		}
	}
	closeAndExpectEnd(t, st)
}
