package main

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// stubBackend answers every Send with resp, err, and subscribes to hub
// (Unimplemented without one).
type stubBackend struct {
	eventv1.UnimplementedSinkServiceServer
	resp *eventv1.SendResponse
	err  error
	hub  *pubsub.Hub
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

func (b *stubBackend) Status() []sink.RouteStatus { return nil }

func newStubAPI(t *testing.T, resp *eventv1.SendResponse, err error) *httpAPI {
	t.Helper()
	a, aerr := newHTTPAPI(&stubBackend{resp: resp, err: err}, func() bool { return true }, 1024, discardLogger())
	if aerr != nil {
		t.Fatal(aerr)
	}
	return a
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
		{"accepted", &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_ACCEPTED}, nil, http.StatusAccepted, "", ""},
		{"processor says INTERNAL", nil, status.Error(codes.Internal, "boom"), http.StatusInternalServerError, `"boom"`, "application/json"},
		{"processor says ALREADY_EXISTS", nil, status.Error(codes.AlreadyExists, "dup"), http.StatusConflict, `"code":6`, "application/json"},
		{"client went away", nil, status.Error(codes.Canceled, "gone"), 499, `"code":1`, "application/json"},
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
