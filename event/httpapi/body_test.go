package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// testBodyTimeout is the body read timeout of these tests: short, so that
// they wait for the effect of a timeout rather than for a long one.
const testBodyTimeout = 200 * time.Millisecond

// bodyServer is the API with a short body read timeout, over a hub, on a
// real HTTP/1.1 or HTTP/2 (TLS) server.
type bodyServer struct {
	api *Handler
	hub *pubsub.Hub
	srv *httptest.Server
	reg *prometheus.Registry
}

// cut returns eventproc_http_requests_cut_total{reason}.
func (s *bodyServer) cut(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "eventproc_http_requests_cut_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no eventproc_http_requests_cut_total{reason=%q}", reason)
	return 0
}

func newBodyServer(t *testing.T, http2 bool) *bodyServer {
	t.Helper()
	hub := pubsub.New(pubsub.Config{})
	t.Cleanup(hub.Close)
	b := &stubBackend{hub: hub, resp: &eventv1.SendResponse{
		Outcome: eventv1.Outcome_OUTCOME_REPLIED, Event: &eventv1.Event{Id: "reply"},
	}}
	reg := prometheus.NewRegistry()
	api := newAPI(t, b, Options{BodyReadTimeout: testBodyTimeout, MetricsRegisterer: reg})
	srv := httptest.NewUnstartedServer(api)
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return &bodyServer{api: api, hub: hub, srv: srv, reg: reg}
}

// subscribe opens an SSE subscription to TYPE_HELLO and returns its
// reader once the subscription is live.
func (s *bodyServer) subscribe(ctx context.Context, t *testing.T) *bufio.Reader {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+"/v1/events:subscribe?types=hello", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || line != "retry: 2000\n" {
		t.Fatalf("subscription starts with %q, %v; want the retry line", line, err)
	}
	return r
}

// nextData returns the data line of the next SSE event.
func nextData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("subscription ended: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return data
		}
	}
}

// TestBodyReadTimeout: on HTTP/1.1 and HTTP/2, a request body that stalls
// after one byte is answered 408 (DEADLINE_EXCEEDED) once it has sent
// nothing for the timeout, its connection (HTTP/1.1) or stream (HTTP/2) is
// released, and it is counted; an SSE subscription on the same server,
// open for longer, still receives events.
func TestBodyReadTimeout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
	}{{"HTTP/1.1", false}, {"HTTP/2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s := newBodyServer(t, tc.http2)
			events := s.subscribe(ctx, t)

			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = pw.Write([]byte("{")) }() // then nothing
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/events", pr)
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[tc.http2] {
				t.Errorf("answered over %s", resp.Proto)
			}
			checkError(t, resp, body, http.StatusRequestTimeout, 4, "nothing received for 200ms")
			// The connection (HTTP/1.1) or stream (HTTP/2) is gone: the
			// client's transport fails to send more and closes the body.
			wrote := make(chan error, 1)
			go func() {
				for {
					if _, err := pw.Write([]byte(" ")); err != nil {
						wrote <- err
						return
					}
				}
			}()
			select {
			case <-wrote:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				t.Fatalf("the body of the timed-out request is still being sent")
			}
			if got := s.cut(t, cutBodyReadTimeout); got != 1 {
				t.Errorf("eventproc_http_requests_cut_total{reason=%q} = %v, want 1", cutBodyReadTimeout, got)
			}

			s.hub.Publish(&eventv1.Event{Id: "after", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("still here")})
			var ev struct{ Payload string }
			if data := nextData(t, events); json.Unmarshal([]byte(data), &ev) != nil || ev.Payload != "still here" {
				t.Errorf("subscription got %q, want the event published after the 408", data)
			}
		})
	}
}

// TestBodyReadTimeoutRaw: over HTTP/1.1, a client that sends its headers
// and one byte of body, then nothing, gets its answer and then sees its
// connection closed — also when the handler never reads the body (404),
// where the server reads the rest of the body before it answers.
func TestBodyReadTimeoutRaw(t *testing.T) {
	s := newBodyServer(t, false)
	for _, tc := range []struct {
		name, head string
		status     int
	}{
		{"content-length", "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", http.StatusRequestTimeout},
		{"chunked", "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{", http.StatusRequestTimeout},
		{"unread", "POST /v1/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", s.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			deadline, _ := ctx.Deadline()
			_ = conn.SetDeadline(deadline) // generous: the test waits for the effect
			if _, err := io.WriteString(conn, tc.head); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(conn)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Errorf("answer %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
				t.Errorf("after the answer: %v, want the connection closed (EOF)", err)
			}
		})
	}
}

// TestSlowBody: a body that sends a little every half timeout, and takes
// longer than the timeout in all, is read and served.
func TestSlowBody(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
	}{{"HTTP/1.1", false}, {"HTTP/2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s := newBodyServer(t, tc.http2)
			pr, pw := io.Pipe()
			go func() {
				// The client's pace, not synchronisation: a trickle.
				tick := time.NewTicker(testBodyTimeout / 2)
				defer tick.Stop()
				for _, part := range []string{`{"type"`, `:"TYPE_`, `HELLO"`, `,"payload":1`, `}`} {
					select {
					case <-tick.C:
					case <-ctx.Done():
					}
					if _, err := io.WriteString(pw, part); err != nil {
						return
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/events", pr)
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"id":"reply"`) {
				t.Errorf("answer %d %s, want 200 with the reply", resp.StatusCode, body)
			}
			if got := s.cut(t, cutBodyReadTimeout); got != 0 {
				t.Errorf("eventproc_http_requests_cut_total{reason=%q} = %v, want 0", cutBodyReadTimeout, got)
			}
		})
	}
}

// TestCutCounterShared: two handlers on one registry share the counter,
// as two servers of one program would.
func TestCutCounterShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newAPI(t, &stubBackend{}, Options{MetricsRegisterer: reg})
	b := newAPI(t, &stubBackend{}, Options{MetricsRegisterer: reg})
	if a.cut != b.cut {
		t.Errorf("two handlers on one registry have counters %p and %p, want one", a.cut, b.cut)
	}
}

// TestTrickledBodyCut: a body whose every byte comes within the read
// timeout, but which never ends, is answered 408 once the whole body's time
// (wholeBodyReads read timeouts) is over.
func TestTrickledBodyCut(t *testing.T) {
	ctx := testContext(t)
	s := newBodyServer(t, false)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		// The client's pace, not synchronisation: a byte per half timeout.
		tick := time.NewTicker(testBodyTimeout / 2)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			if _, err := io.WriteString(pw, " "); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+"/v1/events", pr)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "not complete within") {
		t.Errorf("answer %d %s, want 408 saying the body was not complete in time", resp.StatusCode, body)
	}
	if took < wholeBodyReads*testBodyTimeout {
		t.Errorf("cut after %v, before the whole body's time of %v", took, wholeBodyReads*testBodyTimeout)
	}
}
