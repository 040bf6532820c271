package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// metricValue returns the value of the metric name with label listener in
// reg; it fails the test when there is none.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, listener string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{listener=%q}", name, listener)
	return 0
}

// waitMetric polls the metric until it has the value want.
func waitMetric(ctx context.Context, t *testing.T, reg prometheus.Gatherer, name, listener string, want float64) {
	t.Helper()
	for {
		got := metricValue(t, reg, name, listener)
		if got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s{listener=%q} = %v, want %v", name, listener, got, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestMaxConns: with a limit of 5, the 6th connection is closed as soon as
// it is accepted, and counted; once one of the 5 closes, a new one is
// accepted. Close is idempotent and counts a connection out once.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const limit = 5
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	lis := newConnMetrics(reg).limitConns("http", raw, limit)
	defer lis.Close()
	// The server: hand each accepted connection to the test, and close it
	// when the client does.
	accepted := make(chan net.Conn, limit)
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				c.Close() // a second Close must not count it out again
			}()
		}
	}()
	defer func() { lis.Close(); <-served }()

	var d net.Dialer
	dial := func() net.Conn {
		t.Helper()
		c, err := d.DialContext(ctx, "tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var clients []net.Conn
	for range limit {
		clients = append(clients, dial())
		select {
		case <-accepted:
		case <-ctx.Done():
			t.Fatalf("connection %d of %d not accepted", len(clients), limit)
		}
	}
	waitMetric(ctx, t, reg, "eventproc_connections_open", "http", limit)

	extra := dial()
	deadline, _ := ctx.Deadline()
	_ = extra.SetReadDeadline(deadline)
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection beyond the limit read %d bytes, want it closed", n)
	}
	waitMetric(ctx, t, reg, "eventproc_connections_refused_total", "http", 1)
	select {
	case <-accepted:
		t.Fatal("the connection beyond the limit was handed to the server")
	default:
	}

	clients[0].Close()
	waitMetric(ctx, t, reg, "eventproc_connections_open", "http", limit-1)
	dial()
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("no connection accepted after one closed")
	}
	waitMetric(ctx, t, reg, "eventproc_connections_open", "http", limit)
	if got := metricValue(t, reg, "eventproc_connections_refused_total", "http"); got != 1 {
		t.Errorf("eventproc_connections_refused_total = %v, want 1", got)
	}
}

// TestHeaderLimits: headers well over maxHeaderBytes are refused on both
// servers (431 over HTTP/1.1; the call fails over gRPC), and headers
// within it pass.
func TestHeaderLimits(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t))
	// net/http reads up to 4 KiB beyond the limit; twice is over on any server.
	big := strings.Repeat("x", 2*maxHeaderBytes)
	for _, tc := range []struct {
		name  string
		value string
		want  int
	}{{"within", big[:maxHeaderBytes/2], http.StatusOK}, {"over", big, http.StatusRequestHeaderFieldsTooLarge}} {
		t.Run("http/"+tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/healthz", nil)
			req.Header.Set("X-Big", tc.value)
			// Not s.do: the sink closes the connection on the unread rest of
			// a header too large, which may reset it before the body is read.
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET /healthz with a %d-byte header: %d, want %d", len(tc.value), resp.StatusCode, tc.want)
			}
		})
	}
	hc := healthpb.NewHealthClient(s.conn)
	if _, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "x-big", big[:maxHeaderBytes/2]), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("gRPC call with a %d-byte header: %v, want it served", maxHeaderBytes/2, err)
	}
	_, err := hc.Check(metadata.AppendToOutgoingContext(ctx, "x-big", big), &healthpb.HealthCheckRequest{})
	if err == nil {
		t.Errorf("gRPC call with a %d-byte header served, want it refused", len(big))
	}
	t.Logf("gRPC call with a %d-byte header: %v", len(big), err)
}
