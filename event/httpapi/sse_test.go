package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// newHubAPI returns the HTTP API over a stub backend whose subscriptions
// come from a real hub configured by cfg; each new subscription first gets
// the events published by prime (with the hub), as if the subscriber had
// been too slow to take them.
func newHubAPI(t *testing.T, cfg pubsub.Config, prime func(*pubsub.Hub)) *Handler {
	t.Helper()
	hub := pubsub.New(cfg)
	t.Cleanup(hub.Close)
	b := &stubBackend{hub: hub, subscribed: func(*pubsub.Subscription) {
		if prime != nil {
			prime(hub)
		}
	}}
	return newAPI(t, b, Options{MaxBodyBytes: 1024})
}

func publishN(n int) func(*pubsub.Hub) {
	return func(h *pubsub.Hub) {
		for i := range n {
			h.Publish(&eventv1.Event{Id: "e" + strconv.Itoa(i+1), Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewNumberValue(float64(i + 1))})
		}
	}
}

// TestSlowSubscriberDisconnect: under the Disconnect policy a subscriber
// whose buffer overflows gets an error event (SSE) or line (NDJSON) with
// RESOURCE_EXHAUSTED, and the stream ends.
func TestSlowSubscriberDisconnect(t *testing.T) {
	a := newHubAPI(t, pubsub.Config{BufferSize: 2, Policy: pubsub.Disconnect}, publishN(3))
	tests := []struct {
		name, accept, want string
	}{
		{"SSE", "text/event-stream", "retry: 2000\n\nevent: error\ndata: "},
		{"NDJSON", "", `{"error":`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequestWithContext(testContext(t), http.MethodGet, "/v1/events:subscribe?types=hello", nil)
			req.Header.Set("Accept", tc.accept)
			a.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != http.StatusOK || !strings.HasPrefix(body, tc.want) || !strings.HasSuffix(body, "\n") {
				t.Fatalf("answer %d %q, want 200 %q... ending the stream", rec.Code, body, tc.want)
			}
			data := strings.TrimSpace(strings.TrimPrefix(body, tc.want))
			if tc.accept == "" {
				data = strings.TrimSuffix(data, "}") // the {"error": wrapper
			}
			var st statusJSON
			if err := json.Unmarshal([]byte(data), &st); err != nil || st.Code != 8 || !strings.Contains(st.Message, "too slow") {
				t.Errorf("error %s (%v), want RESOURCE_EXHAUSTED (8) saying the subscriber was too slow", data, err)
			}
		})
	}
}

// TestSlowSubscriberDrop: under the DropOldest policy the first event after
// the loss says how many were missed: an SSE missed event, an NDJSON
// missed field.
func TestSlowSubscriberDrop(t *testing.T) {
	a := newHubAPI(t, pubsub.Config{BufferSize: 2}, publishN(5))
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	open := func(accept string) (*bufio.Reader, func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events:subscribe?types=TYPE_HELLO", nil)
		req.Header.Set("Accept", accept)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %v %v", resp, err)
		}
		return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	readLines := func(r *bufio.Reader, n int) string {
		t.Helper()
		var b strings.Builder
		for range n {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", b.String(), err)
			}
			b.WriteString(line)
		}
		return strings.ReplaceAll(b.String(), " ", "")
	}

	// Events 1 to 3 were dropped; 4 and 5 remain, 4 reporting the loss.
	r, done := open("text/event-stream")
	got := readLines(r, 2+3+4+4)
	done()
	want := strings.ReplaceAll("retry: 2000\n\n"+
		"event: missed\ndata: {\"missed\":3}\n\n"+
		"id: 4\nevent: TYPE_HELLO\ndata: {\"id\":\"e4\",\"type\":\"TYPE_HELLO\",\"payload\":4}\n\n"+
		"id: 5\nevent: TYPE_HELLO\ndata: {\"id\":\"e5\",\"type\":\"TYPE_HELLO\",\"payload\":5}\n\n", " ", "")
	if got != want {
		t.Errorf("SSE stream (spaces removed):\n%s\nwant:\n%s", got, want)
	}

	// Sequence numbers go on (6 to 10 this time, of which 6 to 8 dropped);
	// event ids start again at e1.
	r, done = open("application/x-ndjson")
	got = readLines(r, 2)
	done()
	want = `{"result":{"event":{"id":"e4","type":"TYPE_HELLO","payload":4},"sequence":"9","missed":"3"}}` + "\n" +
		`{"result":{"event":{"id":"e5","type":"TYPE_HELLO","payload":5},"sequence":"10"}}` + "\n"
	if got != want {
		t.Errorf("NDJSON stream (spaces removed):\n%s\nwant:\n%s", got, want)
	}
}

// TestAppendData: data with line breaks becomes one data field per line.
func TestAppendData(t *testing.T) {
	tests := []struct{ data, want string }{
		{`{"a":1}`, "data: {\"a\":1}\n\n"},
		{"", "data: \n\n"},
		{"one\ntwo\r\nthree", "data: one\ndata: two\ndata: three\n\n"},
	}
	for _, tc := range tests {
		if got := string(appendData(nil, []byte(tc.data))); got != tc.want {
			t.Errorf("appendData(%q) = %q, want %q", tc.data, got, tc.want)
		}
	}
}

// TestAcceptsEventStream: content negotiation of the subscribe endpoint.
func TestAcceptsEventStream(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"*/*"}, false},
		{[]string{"application/json"}, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"Text/Event-Stream"}, true},
		{[]string{"application/json, text/event-stream;q=0.5"}, true},
		{[]string{"application/json", "text/event-stream"}, true},
		{[]string{"text/event-stream;q=0"}, false},
		{[]string{"text/event-stream;q=0.000"}, false},
		{[]string{"text/event-stream;;"}, false},
	}
	for _, tc := range tests {
		if got := acceptsEventStream(tc.accept); got != tc.want {
			t.Errorf("acceptsEventStream(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

// TestErrorJSON: stream errors look like the API's error bodies.
func TestErrorJSON(t *testing.T) {
	b, err := errorJSON(status.New(14, "sink is shutting down"))
	if got := strings.ReplaceAll(string(b), " ", ""); err != nil || got != `{"code":14,"message":"sinkisshuttingdown","details":[]}` {
		t.Errorf("errorJSON = %s, %v", b, err)
	}
}
