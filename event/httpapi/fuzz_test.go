package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// FuzzSendJSON posts arbitrary bodies to the real HTTP handler in front of
// a real sink and an echo processor. No body may crash it or get a 5xx
// other than 503 and 504 (UNIMPLEMENTED cannot happen: every type is
// routed), errors must be JSON statuses, and successes must be events.
func FuzzSendJSON(f *testing.F) {
	for _, seed := range []string{
		`{"type":"TYPE_HELLO"}`,
		`{"type":"TYPE_GOODBYE","payload":"hi"}`,
		`{"type":1,"id":"x","payload":{"a":[1,2.5,"s",true,null,{}]},"metadata":{"k":"v"},"data":"AAEC","time":"2026-01-02T03:04:05Z"}`,
		`{"type":2,"payload":null}`,
		`{"type":"TYPE_UNSPECIFIED"}`,
		`{"type":99}`,
		`{"type":-1}`,
		`{"type":"HELLO"}`,
		`{"type":"TYPE_HELLO","bogus":true}`,
		`{"type":"TYPE_HELLO","payload":1e400}`,
		`{"type":"TYPE_HELLO","data":"!!"}`,
		`{"type":"TYPE_HELLO","time":"yesterday"}`,
		`{"type":"TYPE_HELLO","metadata":{"a":1}}`,
		`{"type":"TYPE_HELLO","type":"TYPE_GOODBYE"}`,
		`{"type":"TYPE_HELLO"} trailing`,
		`{"type":"TYPE_HELLO",`,
		`[]`, `null`, `""`, `0`, `{}`, ``, `   `, "\x00\xff",
		`{"payload":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `,"type":1}`,
	} {
		f.Add([]byte(seed))
	}

	addr := startEchoProcessor(f)
	sk, err := sink.New(sink.Config{
		Routes: []sink.Route{
			{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}},
			{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{addr}},
		},
		StreamsPerTarget: 2,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sk.Run(context.Background()) }()
	f.Cleanup(func() {
		sk.Close()
		<-done
	})
	ctx := testContext(f)
	if err := sk.WaitReady(ctx); err != nil {
		f.Fatalf("sink never ready: %v", err)
	}
	const maxBody = 64 << 10
	api := newAPI(f, sk, Options{MaxBodyBytes: maxBody})

	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/events", strings.NewReader(string(body)))
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code == http.StatusOK:
			var ev eventv1.Event
			if err := protojson.Unmarshal(rec.Body.Bytes(), &ev); err != nil {
				t.Fatalf("200 with a body that is not an event: %q: %v", rec.Body, err)
			}
			if ev.GetId() == "" {
				t.Errorf("reply without id: %q", rec.Body)
			}
		case code == http.StatusNoContent:
			t.Fatalf("204 from an echo processor for %q", body)
		case code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout:
			t.Fatalf("status %d for body %q: %s", code, body, rec.Body)
		case code >= 400:
			var st struct {
				Code    *int    `json:"code"`
				Message *string `json:"message"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Code == nil || st.Message == nil || *st.Message == "" {
				t.Fatalf("status %d with a body that is not a JSON status: %q", code, rec.Body)
			}
		default:
			t.Fatalf("unexpected status %d for %q", code, body)
		}
	})
}

// startEchoProcessor serves, until the test ends, a processor on
// 127.0.0.1:0 that replies with every event it gets, and returns its
// address.
func startEchoProcessor(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) { return ev, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- processor.NewServer(echo, processor.Options{Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, lis)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("echo processor: %v", err)
		}
	})
	return lis.Addr().String()
}
