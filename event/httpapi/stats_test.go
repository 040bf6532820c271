package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestStats sends known events through a real sink and processor and
// checks that GET /v1/stats reports them as the registry counts them:
// events per type and code, the latency histogram, subscribers and the
// live streams per target.
func TestStats(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	addr := startProcessor(t, processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if ev.GetMetadata()["fail"] == "true" {
			return nil, status.Error(codes.FailedPrecondition, "asked to fail")
		}
		return ev, nil
	}))
	reg := prometheus.NewRegistry()
	sk, err := sink.New(sink.Config{
		Routes:           []sink.Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}}},
		StreamsPerTarget: 2,
		Metrics:          reg,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sk.Run(context.Background()) }()
	t.Cleanup(func() {
		sk.Close()
		<-done
	})
	if err := sk.WaitReady(ctx); err != nil {
		t.Fatalf("sink never ready: %v", err)
	}
	api := newAPI(t, sk, Options{Stats: reg})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	s := &testServer{t: t, api: api, url: srv.URL, srv: srv}

	sub, err := sk.SubscribeEvents(ctx, []eventv1.Type{eventv1.Type_TYPE_HELLO}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	post := func(body string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if resp, got := s.do(ctx, req); resp.StatusCode != want {
			t.Fatalf("POST %s: %d %s, want %d", body, resp.StatusCode, got, want)
		}
	}
	for range 3 {
		post(`{"type":"TYPE_HELLO"}`, http.StatusOK)
	}
	for range 2 {
		post(`{"type":"TYPE_HELLO","metadata":{"fail":"true"}}`, http.StatusBadRequest)
	}
	post(`{"type":"TYPE_GOODBYE"}`, http.StatusNotImplemented)

	resp, body := s.get(ctx, statsPath)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %d %s %q", statsPath, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var got statsSnapshot
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET %s: %v in %s", statsPath, err, body)
	}

	if len(got.Types) != 2 || got.Types[0].Type != "TYPE_HELLO" || got.Types[1].Type != "unrouted" {
		t.Fatalf("types %+v, want TYPE_HELLO and unrouted", got.Types)
	}
	hello, unrouted := got.Types[0], got.Types[1]
	wantEvents := map[string]map[string]uint64{
		"TYPE_HELLO": {"OK": 3, "FAILED_PRECONDITION": 2},
		"unrouted":   {"UNIMPLEMENTED": 1},
	}
	for _, ts := range got.Types {
		if !equalCounts(ts.Events, wantEvents[ts.Type]) {
			t.Errorf("%s events %v, want %v", ts.Type, ts.Events, wantEvents[ts.Type])
		}
	}
	// The histogram is the registry's, as /metrics would show it.
	l := hello.Latency
	if l == nil || l.Count != 5 || l.Sum <= 0 || len(l.Bounds) != len(l.Counts) || len(l.Bounds) == 0 {
		t.Fatalf("TYPE_HELLO latency %+v, want 5 observations in buckets", l)
	}
	if last := l.Counts[len(l.Counts)-1]; last > l.Count {
		t.Errorf("last bucket %d above the count %d", last, l.Count)
	}
	for i := 1; i < len(l.Bounds); i++ {
		if l.Bounds[i] <= l.Bounds[i-1] || l.Counts[i] < l.Counts[i-1] {
			t.Errorf("bucket %d (%g: %d) after (%g: %d): want increasing bounds, cumulative counts",
				i, l.Bounds[i], l.Counts[i], l.Bounds[i-1], l.Counts[i-1])
		}
	}
	if unrouted.Latency != nil {
		t.Errorf("unrouted latency %+v, want none", unrouted.Latency)
	}
	if got.Subscribers != 1 {
		t.Errorf("subscribers %g, want 1", got.Subscribers)
	}
	if len(got.Targets) != 1 || got.Targets[0].Target != addr || got.Targets[0].StreamsLive != 2 || got.Targets[0].Inflight != 0 {
		t.Errorf("targets %+v, want %s with 2 live streams, none in flight", got.Targets, addr)
	}
	if got.Time.IsZero() {
		t.Error("no time")
	}
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startProcessor serves h on loopback until the test ends and returns its
// address.
func startProcessor(t *testing.T, h processor.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- processor.NewServer(h, processor.Options{Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, lis)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	return lis.Addr().String()
}

// TestStatsOptional: without Options.Stats there is no /v1/stats; a
// registry that fails outright is answered 500.
func TestStatsOptional(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	resp, body := serve(t, &stubBackend{}).get(ctx, statsPath)
	checkError(t, resp, body, http.StatusNotFound, 5, "no such path")

	api := newAPI(t, &stubBackend{}, Options{Stats: failingGatherer{}})
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, statsPath, nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "registry broke") {
		t.Errorf("GET %s with a failing registry: %d %s, want 500 naming the error", statsPath, rec.Code, rec.Body)
	}
}

type failingGatherer struct{}

func (failingGatherer) Gather() ([]*dto.MetricFamily, error) {
	return nil, errors.New("registry broke")
}
