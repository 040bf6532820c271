package sink

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func TestMetrics(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	reg := prometheus.NewPedanticRegistry()
	s := startSink(t, Config{Routes: helloRoute(addr), Metrics: reg})
	ctx := testCtx(t)
	for range 3 {
		if _, err := send(s, ctx, hello("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = send(s, ctx, &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE})
	_, _ = send(s, ctx, &eventv1.Event{})
	_, _ = send(s, ctx, &eventv1.Event{Type: 9999})
	tests := []struct {
		name   string
		labels string
		want   float64
	}{
		{"eventproc_events_total", `code="OK",type="TYPE_HELLO"`, 3},
		{"eventproc_events_total", `code="Unavailable",type="TYPE_HELLO"`, 0},
		{"eventproc_events_total", `code="Unimplemented",type="unrouted"`, 1},
		{"eventproc_events_total", `code="InvalidArgument",type="unrouted"`, 0},
		{"eventproc_events_total", `code="InvalidArgument",type="unknown"`, 2},
		{"eventproc_streams_live", `target="` + addr + `"`, float64(s.cfg.StreamsPerTarget)},
		{"eventproc_inflight_requests", `target="` + addr + `"`, 0},
		{"eventproc_subscribers", ``, 0},
	}
	got := gather(t, reg)
	for _, tt := range tests {
		key := tt.name + "{" + tt.labels + "}"
		v, ok := got[key]
		if !ok {
			t.Errorf("%s not exported", key)
			continue
		}
		if v != tt.want {
			t.Errorf("%s = %v, want %v", key, v, tt.want)
		}
	}
	if n := got["eventproc_event_duration_seconds_count{type=\"TYPE_HELLO\"}"]; n != 3 {
		t.Errorf("latency observations %v, want 3", n)
	}
}

// gather returns every sample in reg keyed by name{labels}.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// The client's W3C trace context reaches the processor with the event.
func TestTraceContextPropagates(t *testing.T) {
	got := make(chan map[string]string, 1)
	addr, _ := startFake(t, &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		got <- req.GetTraceContext()
		return echo(ctx, req)
	}})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := metadata.NewIncomingContext(testCtx(t), metadata.Pairs("traceparent", tp, "tracestate", "k=v"))
	if _, err := send(s, ctx, hello("x")); err != nil {
		t.Fatal(err)
	}
	tc := <-got
	if tc["traceparent"] != tp || tc["tracestate"] != "k=v" {
		t.Errorf("processor got trace context %v, want traceparent %s and tracestate k=v", tc, tp)
	}
	if _, err := send(s, testCtx(t), hello("x")); err != nil {
		t.Fatal(err)
	}
	if tc := <-got; tc != nil {
		t.Errorf("processor got trace context %v for a request without one", tc)
	}
}
