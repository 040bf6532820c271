package httpapi

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testContext returns a context that ends with the test or after a minute.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// stubBackend answers every Send with resp, err, reports routes as its
// status, and subscribes to hub (Unimplemented without one).
type stubBackend struct {
	resp   *eventv1.SendResponse
	err    error
	routes []sink.RouteStatus
	hub    *pubsub.Hub
	// subscribed, when set, is called with each new subscription before
	// the handler reads from it.
	subscribed func(*pubsub.Subscription)
}

func (b *stubBackend) SubscribeEvents(ctx context.Context, types []eventv1.Type, lastEventID string) (*pubsub.Subscription, error) {
	if b.hub == nil {
		return nil, status.Error(codes.Unimplemented, "stub backend: no hub")
	}
	sub, err := b.hub.Subscribe(ctx, types, lastEventID)
	if err != nil {
		return nil, sink.SubscriptionError(err)
	}
	if b.subscribed != nil {
		b.subscribed(sub)
	}
	return sub, nil
}

func (b *stubBackend) Send(context.Context, *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return b.resp, b.err
}

func (b *stubBackend) Status() []sink.RouteStatus { return b.routes }

// newStubAPI returns the API over a stub backend answering resp, err, with
// bodies limited to 1 KiB.
func newStubAPI(t *testing.T, resp *eventv1.SendResponse, err error) *Handler {
	t.Helper()
	return newAPI(t, &stubBackend{resp: resp, err: err}, Options{MaxBodyBytes: 1024})
}

func newAPI(t testing.TB, b Backend, opts Options) *Handler {
	t.Helper()
	h, err := New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testServer is the API served over real HTTP on loopback.
type testServer struct {
	t   *testing.T
	api *Handler
	url string
	srv *httptest.Server
}

// serve serves the API of b, with default options, until the test ends.
func serve(t *testing.T, b Backend) *testServer {
	t.Helper()
	api := newAPI(t, b, Options{})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &testServer{t: t, api: api, url: srv.URL, srv: srv}
}

// do sends an HTTP request and returns the response with its body read.
func (s *testServer) do(ctx context.Context, req *http.Request) (*http.Response, []byte) {
	s.t.Helper()
	resp, err := s.srv.Client().Do(req.WithContext(ctx))
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp, body
}

// get sends GET path.
func (s *testServer) get(ctx context.Context, path string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.do(ctx, req)
}

// statusJSON is the JSON of a status: an error body, an SSE error event's
// data, an NDJSON error line's error.
type statusJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// checkError checks an error response: status, JSON body with code and a
// message containing msg.
func checkError(t *testing.T, resp *http.Response, body []byte, wantStatus, wantCode int, msg string) {
	t.Helper()
	var st statusJSON
	if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != wantStatus || st.Code != wantCode ||
		!strings.Contains(st.Message, msg) || st.Details == nil {
		t.Errorf("answer %d %s, want %d with code %d and a message containing %q", resp.StatusCode, body, wantStatus, wantCode, msg)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
}

// TestOutcomeStatus: each outcome has its HTTP status, and only REPLIED a
// body.
func TestOutcomeStatus(t *testing.T) {
	tests := []struct {
		name       string
		resp       *eventv1.SendResponse
		err        error
		wantStatus int
		wantBody   string // "" means empty
		wantType   string
	}{
		{"replied", &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_REPLIED,
			Event: &eventv1.Event{Id: "r1", Type: eventv1.Type_TYPE_GOODBYE}},
			nil, http.StatusOK, `"id":"r1"`, "application/json"},
		{"consumed", &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED}, nil, http.StatusNoContent, "", ""},
		{"accepted", &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_ACCEPTED, Id: "b1"}, nil, http.StatusAccepted,
			`{"id":"b1"}`, "application/json"},
		{"stored", &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_STORED, Id: "s1", Sequence: 7}, nil, http.StatusAccepted,
			`{"id":"s1","sequence":7,"duplicate":false}`, "application/json"},
		{"processor says INTERNAL", nil, status.Error(codes.Internal, "boom"), http.StatusInternalServerError, `"boom"`, "application/json"},
		{"processor says ALREADY_EXISTS", nil, status.Error(codes.AlreadyExists, "dup"), http.StatusConflict, `"code":6`, "application/json"},
		{"client went away", nil, status.Error(codes.Canceled, "gone"), 499, `"code":1`, "application/json"},
		{"message not UTF-8", nil, status.Error(codes.InvalidArgument, "bad \xff"), http.StatusBadRequest, "\"bad\uFFFD\"", "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newStubAPI(t, tc.resp, tc.err)
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{"type":"TYPE_HELLO"}`)))
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			body := strings.ReplaceAll(rec.Body.String(), " ", "")
			if tc.wantBody == "" && body != "" || !strings.Contains(body, tc.wantBody) {
				t.Errorf("body %q, want %q", body, cmp.Or(tc.wantBody, "empty"))
			}
			if got := rec.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type %q, want %q", got, tc.wantType)
			}
		})
	}
}

// unreadable is a body that must not be read.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("body over the limit was read")
	return 0, io.EOF
}

// TestBodyLimitUnread: a Content-Length over the limit is answered 413
// without reading the body.
func TestBodyLimitUnread(t *testing.T) {
	a := newStubAPI(t, &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED}, nil)
	req := httptest.NewRequest(http.MethodPost, "/v1/events", unreadable{t})
	req.ContentLength = 1025
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "1024 bytes") {
		t.Errorf("answer %d %s, want 413 naming the limit", rec.Code, rec.Body)
	}
	// At the limit exactly is fine.
	body := `{"type":"TYPE_HELLO","payload":"` + strings.Repeat("x", 1024-34) + `"}`
	if len(body) != 1024 {
		t.Fatalf("test body is %d bytes", len(body))
	}
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body)))
	if rec.Code != http.StatusNoContent {
		t.Errorf("body of exactly the limit: %d %s, want 204", rec.Code, rec.Body)
	}
}

// TestShutdown: Shutdown turns /readyz to 503 and ends live subscriptions
// with UNAVAILABLE, while other requests are served as before.
func TestShutdown(t *testing.T) {
	ctx := testContext(t)
	hub := pubsub.New(pubsub.Config{})
	t.Cleanup(hub.Close)
	s := serve(t, &stubBackend{
		resp:   &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED},
		routes: []sink.RouteStatus{{Type: "TYPE_HELLO", Ready: true}},
		hub:    hub,
	})
	ready := func(want int) {
		t.Helper()
		resp, body := s.get(ctx, "/readyz")
		var r struct {
			Ready  bool               `json:"ready"`
			Routes []sink.RouteStatus `json:"routes"`
		}
		if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != want || r.Ready != (want == http.StatusOK) || len(r.Routes) != 1 {
			t.Errorf("/readyz: %d %s, want %d with the route", resp.StatusCode, body, want)
		}
	}
	ready(http.StatusOK)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/events:subscribe?types=hello", nil)
	resp, err := s.srv.Client().Do(req) // returns once subscribed: the headers come after
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %v %v", resp, err)
	}
	defer resp.Body.Close()

	s.api.Shutdown()
	s.api.Shutdown() // idempotent
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	var last struct {
		Error *statusJSON `json:"error"`
	}
	if err != nil || json.Unmarshal([]byte(line), &last) != nil || last.Error == nil || last.Error.Code != int(codes.Unavailable) {
		t.Errorf("subscription after Shutdown: %q (%v), want an UNAVAILABLE error line", line, err)
	}
	if rest, err := r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("after the error line: %q, %v; want EOF", rest, err)
	}
	ready(http.StatusServiceUnavailable)
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", strings.NewReader(`{"type":"TYPE_HELLO"}`))
	if resp, body := s.do(ctx, req); resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST after Shutdown: %d %s, want 204", resp.StatusCode, body)
	}
}
