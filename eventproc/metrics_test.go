package main

import (
	"bufio"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"

	eventv1 "github.com/eventproc/eventproc/event/v1"
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

// TestEventsCounted: every answer to an event is counted once in
// eventproc_events_total, over REST and gRPC, under its type when it has a
// route, "unrouted" when it is valid and has none, and "unknown" when the
// sink could not tell its type: a body that is not an event, too large or
// too slow, or a missing or unknown type.
func TestEventsCounted(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixtureWith(t, ctx, "--body-read-timeout", "300ms")
	for _, body := range []string{
		`{"type":"TYPE_HELLO"}`,           // OK, TYPE_HELLO
		`{"type":"TYPE_GOODBYE"}`,         // Unimplemented, unrouted
		`{"type":"TYPE_HELLO",`,           // InvalidArgument, unknown ...
		`{"type":"TYPE_HELLO","bogus":1}`, //
		`{"type":"TYPE_NOPE"}`,            //
		`{"payload":"x"}`,                 //
		`{"type":99}`,                     //
		``,                                //
		`{"type":"TYPE_HELLO","payload":"` + strings.Repeat("x", 5000) + `"}`, // ResourceExhausted (413), unknown
	} {
		if resp, b := f.sink.post(ctx, body); resp.StatusCode == 0 {
			t.Fatalf("post %.40s: %s", body, b)
		}
	}
	// A body that stalls: 408.
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.sink.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if st, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(st, " 408 ") {
		t.Fatalf("stalled body: %q, %v; want 408", st, err)
	}
	// gRPC: no type, a number no type has, a type without a route.
	c := f.sink.sinkClient()
	for _, ev := range []*eventv1.Event{{}, {Type: 99}, {Type: eventv1.Type_TYPE_GOODBYE}, {Type: eventv1.Type_TYPE_HELLO}} {
		_, _ = c.Send(ctx, &eventv1.SendRequest{Event: ev})
	}

	_, body := f.sink.get(ctx, "/metrics")
	got := make(map[string]string)
	for line := range strings.Lines(string(body)) {
		if name, rest, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(name, "eventproc_events_total{") && rest != "0" {
			got[name] = rest
		}
	}
	want := map[string]string{
		`eventproc_events_total{code="OK",type="TYPE_HELLO"}`:             "2",
		`eventproc_events_total{code="Unimplemented",type="unrouted"}`:    "2",
		`eventproc_events_total{code="InvalidArgument",type="unknown"}`:   "8",
		`eventproc_events_total{code="ResourceExhausted",type="unknown"}`: "1",
		`eventproc_events_total{code="DeadlineExceeded",type="unknown"}`:  "1",
	}
	if !maps.Equal(got, want) {
		t.Errorf("non-zero eventproc_events_total = %v, want %v", got, want)
	}
}
