package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestMetrics: /metrics serves the sink's counters in Prometheus text
// format, with the Go runtime and process metrics operators expect.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixture(t, ctx)
	if resp, body := f.sink.post(ctx, `{"type":"TYPE_HELLO","payload":"counted"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	resp, body := f.sink.get(ctx, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{
		`eventproc_events_total{code="OK",type="TYPE_HELLO"} 1`,
		`eventproc_event_duration_seconds_count{type="TYPE_HELLO"} 1`,
		`eventproc_streams_live{target=`,
		`eventproc_subscribers 0`,
		`eventproc_connections_open{listener="http"} `,
		`eventproc_connections_open{listener="grpc"} `,
		`eventproc_connections_refused_total`,
		`eventproc_http_requests_cut_total{reason="body_read_timeout"} 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.sink.url+"/metrics", nil)
	if resp, _ := f.sink.do(ctx, req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", resp.StatusCode)
	}
}
