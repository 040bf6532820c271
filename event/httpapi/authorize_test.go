package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

type userKey struct{}

// The sink's Config.Authorize is asked on every HTTP entry — POST
// /v1/events, and each type of a subscription as NDJSON and as Server-Sent
// Events — with the event's type and the request's context (here carrying
// a user a middleware put there); a refusal answers that request alone
// with its status, or 403 for a plain error.
func TestAuthorizeHTTP(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	authorize := func(ctx context.Context, action sink.Action, typ eventv1.Type) error {
		user, _ := ctx.Value(userKey{}).(string)
		mu.Lock()
		asked = append(asked, fmt.Sprint(action, " ", typ, " ", user))
		mu.Unlock()
		switch {
		case typ == eventv1.Type_TYPE_GOODBYE && action == sink.ActionSend:
			return errors.New("goodbyes are not for you")
		case typ == eventv1.Type_TYPE_GOODBYE:
			return status.Error(codes.Unauthenticated, "who are you?")
		}
		return nil
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := asked
		asked = nil
		slices.Sort(out)
		return out
	}
	addr := startEchoProcessor(t)
	sk, err := sink.New(sink.Config{
		Routes: []sink.Route{
			{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}},
			{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{addr}},
		},
		Authorize: authorize,
		Logger:    slog.New(slog.DiscardHandler),
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
	ctx := testContext(t)
	if err := sk.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	api := newAPI(t, sk, Options{})
	t.Cleanup(api.Shutdown)
	// An authenticating middleware would put the caller's identity in the
	// request's context.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, r.Header.Get("X-User"))))
	}))
	t.Cleanup(srv.Close)
	ts := &testServer{t: t, api: api, url: srv.URL, srv: srv}
	request := func(method, path, body string, header ...string) *http.Request {
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-User", "ada")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return req
	}

	resp, body := ts.do(ctx, request(http.MethodPost, "/v1/events", `{"type":"TYPE_HELLO","payload":"hi"}`))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed event: %d %s", resp.StatusCode, body)
	}
	resp, body = ts.do(ctx, request(http.MethodPost, "/v1/events", `{"type":"TYPE_GOODBYE"}`))
	checkError(t, resp, body, http.StatusForbidden, int(codes.PermissionDenied), "goodbyes are not for you")
	if got, want := take(), []string{"send TYPE_GOODBYE ada", "send TYPE_HELLO ada"}; !slices.Equal(got, want) {
		t.Errorf("POST: Authorize asked %q, want %q", got, want)
	}

	for _, accept := range []string{"application/x-ndjson", "text/event-stream"} {
		// A refused type refuses the subscription before it streams.
		resp, body = ts.do(ctx, request(http.MethodGet, "/v1/events:subscribe?types=hello,goodbye", "", "Accept", accept))
		checkError(t, resp, body, http.StatusUnauthorized, int(codes.Unauthenticated), "who are you?")
		if got, want := take(), []string{"subscribe TYPE_GOODBYE ada", "subscribe TYPE_HELLO ada"}; !slices.Equal(got, want) {
			t.Errorf("%s, refused: Authorize asked %q, want %q", accept, got, want)
		}
		// An allowed one streams.
		sctx, cancel := context.WithCancel(ctx)
		resp, err := srv.Client().Do(request(http.MethodGet, "/v1/events:subscribe?types=hello", "", "Accept", accept).WithContext(sctx))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s, allowed: status %d", accept, resp.StatusCode)
		}
		cancel()
		resp.Body.Close()
		if got, want := take(), []string{"subscribe TYPE_HELLO ada"}; !slices.Equal(got, want) {
			t.Errorf("%s, allowed: Authorize asked %q, want %q", accept, got, want)
		}
	}
}
