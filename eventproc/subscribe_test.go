package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// startPublisher serves, until the test ends, a processor that does what
// proc --publish does: it publishes a copy of every event it receives, then
// replies with the event. It returns the processor's address.
func startPublisher(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var proc *processor.Server
	proc = processor.NewServer(processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if err := proc.Publish(ctx, proto.CloneOf(ev)); err != nil {
			return nil, err
		}
		return ev, nil
	}), processor.Options{Logger: discardLogger()})
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	proc.Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return lis.Addr().String()
}

// publishFixture is a sink with HELLO and GOODBYE routed to a publishing
// processor, with extra flags.
func publishFixture(t *testing.T, ctx context.Context, extra ...string) *sinkProc {
	t.Helper()
	addr := startPublisher(t)
	s := startSink(t, append([]string{"--route", "hello=" + addr, "--route", "goodbye=" + addr}, extra...)...)
	s.waitRoute(ctx, "TYPE_HELLO", true)
	s.waitRoute(ctx, "TYPE_GOODBYE", true)
	return s
}

// publish POSTs an event of type typ with a string payload and checks the
// processor replied. The processor has published a copy by then, though the
// sink may not have received it yet.
func (s *sinkProc) publish(ctx context.Context, typ, payload string) {
	s.t.Helper()
	ev := &eventv1.Event{Type: eventv1.Type(eventv1.Type_value[typ]), Payload: structpb.NewStringValue(payload)}
	if resp, body := s.post(ctx, eventJSON(s.t, ev)); resp.StatusCode != http.StatusOK {
		s.t.Fatalf("POST %s: %d %s, want 200", payload, resp.StatusCode, body)
	}
}

// subscription is an open GET /v1/events:subscribe.
type subscription struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// subscribe opens GET path with the header key/value pairs and checks the
// answer is 200; the subscription is live once it returns. It ends with the
// test, or with close.
func (s *sinkProc) subscribe(ctx context.Context, path string, header ...string) *subscription {
	s.t.Helper()
	resp, cancel := s.openSubscription(ctx, path, header...)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("GET %s: %d %s, want 200", path, resp.StatusCode, body)
	}
	sub := &subscription{t: s.t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	s.t.Cleanup(sub.close)
	return sub
}

// openSubscription sends GET path and returns the answer unread.
func (s *sinkProc) openSubscription(ctx context.Context, path string, header ...string) (*http.Response, context.CancelFunc) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, cancel
}

// close ends the subscription from the client's side.
func (sub *subscription) close() {
	sub.cancel()
	sub.resp.Body.Close()
}

// sseFrame is one Server-Sent Events block: the fields up to a blank line.
type sseFrame struct {
	id, event, data, retry string
	hasID                  bool
	comments               []string
}

// frame reads the next SSE block; io.EOF once the stream has ended.
func (sub *subscription) frame() (sseFrame, error) {
	var f sseFrame
	lines := 0
	for {
		line, err := sub.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && lines == 0 && line == "" {
				return f, io.EOF
			}
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if lines == 0 {
				continue
			}
			return f, nil
		}
		lines++
		if c, ok := strings.CutPrefix(line, ":"); ok {
			f.comments = append(f.comments, strings.TrimSpace(c))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			f.id, f.hasID = value, true
		case "event":
			f.event = value
		case "data":
			if f.data != "" {
				f.data += "\n"
			}
			f.data += value
		case "retry":
			f.retry = value
		default:
			sub.t.Errorf("unknown SSE field in %q", line)
		}
	}
}

// nextEvent reads SSE blocks until one with data, counting heartbeats.
func (sub *subscription) nextEvent(heartbeats *int) sseFrame {
	sub.t.Helper()
	for {
		f, err := sub.frame()
		if err != nil {
			sub.t.Fatalf("reading the event stream: %v", err)
		}
		if len(f.comments) > 0 && heartbeats != nil {
			*heartbeats++
		}
		if f.data != "" {
			return f
		}
	}
}

// line reads the next NDJSON line; io.EOF once the stream has ended.
func (sub *subscription) line() (string, error) {
	line, err := sub.r.ReadString('\n')
	if errors.Is(err, io.EOF) && line == "" {
		return "", io.EOF
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// result reads the next NDJSON line, which must be a result.
func (sub *subscription) result() *eventv1.SubscribeResponse {
	sub.t.Helper()
	line, err := sub.line()
	if err != nil {
		sub.t.Fatalf("reading the NDJSON stream: %v", err)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &msg); err != nil || len(msg) != 1 || msg["result"] == nil {
		sub.t.Fatalf("NDJSON line %s (%v), want {\"result\":...}", line, err)
	}
	var resp eventv1.SubscribeResponse
	if err := protojson.Unmarshal(msg["result"], &resp); err != nil {
		sub.t.Fatalf("NDJSON result %s: %v", msg["result"], err)
	}
	return &resp
}

// statusJSON is the JSON of a status: an error body, an SSE error event's
// data, an NDJSON error line's error.
type statusJSON struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

func parseEvent(t *testing.T, data string) *eventv1.Event {
	t.Helper()
	var ev eventv1.Event
	if err := protojson.Unmarshal([]byte(data), &ev); err != nil {
		t.Fatalf("event data %s: %v", data, err)
	}
	return &ev
}

// TestSubscribeSSE: Server-Sent Events framing through real HTTP, with the
// published events of a real processor, heartbeats, and the error event
// that ends the stream at shutdown without waiting out the grace period.
func TestSubscribeSSE(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	// A grace period longer than the test: shutdown must end the stream
	// rather than wait for it.
	s := publishFixture(t, ctx, "--sse-heartbeat", "50ms", "--shutdown-grace", "1h")
	sub := s.subscribe(ctx, "/v1/events:subscribe?types=TYPE_HELLO", "Accept", "text/event-stream")
	for key, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := sub.resp.Header.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	first, err := sub.frame()
	if err != nil || first.retry != "2000" || first.data != "" {
		t.Fatalf("first block %+v (%v), want retry: 2000 alone", first, err)
	}

	heartbeats := 0
	var lastSeq uint64
	for _, payload := range []string{"sse-1", "sse-2"} {
		s.publish(ctx, "TYPE_HELLO", payload)
		f := sub.nextEvent(&heartbeats)
		seq, err := strconv.ParseUint(f.id, 10, 64)
		if err != nil || seq <= lastSeq {
			t.Errorf("id: %q, want a sequence number above %d", f.id, lastSeq)
		}
		lastSeq = seq
		if f.event != "TYPE_HELLO" {
			t.Errorf("event: %q, want TYPE_HELLO", f.event)
		}
		ev := parseEvent(t, f.data)
		if ev.GetType() != eventv1.Type_TYPE_HELLO || ev.GetPayload().GetStringValue() != payload || ev.GetId() == "" {
			t.Errorf("data: %s, want the published %s event with an id", f.data, payload)
		}
	}
	// A GOODBYE event is not for this subscriber; the heartbeats go on.
	s.publish(ctx, "TYPE_GOODBYE", "not for you")
	for heartbeats < 2 {
		f, err := sub.frame()
		if err != nil {
			t.Fatalf("waiting for heartbeats: %v", err)
		}
		switch {
		case len(f.comments) == 1 && f.comments[0] == "heartbeat" && f.data == "" && !f.hasID:
			heartbeats++
		default:
			t.Fatalf("block %+v, want only heartbeats", f)
		}
	}

	// Shutdown ends the stream with an error event, then closes it.
	s.shutdown()
	f := sub.nextEvent(nil)
	var st statusJSON
	if err := json.Unmarshal([]byte(f.data), &st); err != nil || f.event != "error" || st.Code != 14 ||
		!strings.Contains(st.Message, "shutting down") || st.Details == nil {
		t.Errorf("last event %+v (%v), want event: error with UNAVAILABLE (14) JSON", f, err)
	}
	for {
		f, err := sub.frame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after the error event: %v, want EOF", err)
		}
		if f.data != "" {
			t.Errorf("block %+v after the error event", f)
		}
	}
}

// TestSubscribeNDJSON: without Accept: text/event-stream the stream is
// newline-delimited JSON in grpc-gateway's streaming format.
func TestSubscribeNDJSON(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := publishFixture(t, ctx, "--shutdown-grace", "1h")
	// Comma-separated, without TYPE_, any case.
	sub := s.subscribe(ctx, "/v1/events:subscribe?types=Hello,goodbye", "Accept", "application/json")
	if got := sub.resp.Header.Get("Content-Type"); got != "application/x-ndjson" {
		t.Errorf("Content-Type %q, want application/x-ndjson", got)
	}
	if got := sub.resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", got)
	}
	var lastSeq uint64
	for _, tc := range []struct{ typ, payload string }{{"TYPE_HELLO", "nd-1"}, {"TYPE_GOODBYE", "nd-2"}} {
		s.publish(ctx, tc.typ, tc.payload)
		resp := sub.result()
		if resp.GetSequence() <= lastSeq || resp.GetMissed() != 0 {
			t.Errorf("sequence %d missed %d, want above %d and none missed", resp.GetSequence(), resp.GetMissed(), lastSeq)
		}
		lastSeq = resp.GetSequence()
		if ev := resp.GetEvent(); ev.GetType().String() != tc.typ || ev.GetPayload().GetStringValue() != tc.payload {
			t.Errorf("event %v, want the published %s %s", ev, tc.typ, tc.payload)
		}
	}
	s.shutdown()
	line, err := sub.line()
	var last struct {
		Error *statusJSON `json:"error"`
	}
	if err != nil || json.Unmarshal([]byte(line), &last) != nil || last.Error == nil || last.Error.Code != 14 {
		t.Errorf("last line %q (%v), want {\"error\":{\"code\":14,...}}", line, err)
	}
	if line, err := sub.line(); !errors.Is(err, io.EOF) {
		t.Errorf("after the error line: %q, %v; want EOF", line, err)
	}
}

// TestSubscribeResume: Last-Event-ID resumes right after that event from
// the history, then continues live; resuming from beyond the history
// reports the events missed.
func TestSubscribeResume(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := publishFixture(t, ctx)
	// A live subscriber learns the sequence numbers.
	watch := s.subscribe(ctx, "/v1/events:subscribe?types=hello")
	var seqs []uint64
	for i := range 3 {
		s.publish(ctx, "TYPE_HELLO", "resume-"+strconv.Itoa(i+1))
		seqs = append(seqs, watch.result().GetSequence())
	}
	watch.close()

	sub := s.subscribe(ctx, "/v1/events:subscribe?types=hello&last_event_id=999999",
		"Accept", "text/event-stream", "Last-Event-ID", strconv.FormatUint(seqs[0], 10))
	for i, want := range []string{"resume-2", "resume-3"} {
		f := sub.nextEvent(nil)
		if f.id != strconv.FormatUint(seqs[i+1], 10) || parseEvent(t, f.data).GetPayload().GetStringValue() != want {
			t.Errorf("replayed event %d: id %s data %s, want id %d with %s", i, f.id, f.data, seqs[i+1], want)
		}
	}
	s.publish(ctx, "TYPE_HELLO", "live-4")
	if f := sub.nextEvent(nil); parseEvent(t, f.data).GetPayload().GetStringValue() != "live-4" {
		t.Errorf("after the replay: %+v, want the live event live-4", f)
	}

	t.Run("beyond the history", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		s := publishFixture(t, ctx, "--history", "1")
		watch := s.subscribe(ctx, "/v1/events:subscribe?types=hello")
		var seqs []uint64
		for i := range 3 {
			s.publish(ctx, "TYPE_HELLO", "old-"+strconv.Itoa(i+1))
			seqs = append(seqs, watch.result().GetSequence())
		}
		watch.close()
		after := strconv.FormatUint(seqs[0], 10)

		// NDJSON: the missed count rides on the first event.
		nd := s.subscribe(ctx, "/v1/events:subscribe?types=hello&last_event_id="+after)
		if resp := nd.result(); resp.GetSequence() != seqs[2] || resp.GetMissed() != 1 {
			t.Errorf("NDJSON resume: sequence %d missed %d, want %d with 1 missed", resp.GetSequence(), resp.GetMissed(), seqs[2])
		}
		// SSE: an event of its own comes first.
		sse := s.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", "text/event-stream", "Last-Event-ID", after)
		f := sse.nextEvent(nil)
		if f.event != "missed" || f.data != `{"missed":1}` || f.hasID {
			t.Errorf("first SSE block %+v, want event: missed with {\"missed\":1} and no id", f)
		}
		if f := sse.nextEvent(nil); f.id != strconv.FormatUint(seqs[2], 10) {
			t.Errorf("then %+v, want id %d", f, seqs[2])
		}
	})
}

// TestSubscribeClientGone: a client that goes away ends its subscription:
// the hub's subscriber count returns to 0 (and TestMain checks that no
// goroutine is left behind).
func TestSubscribeClientGone(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := publishFixture(t, ctx)
	subs := []*subscription{
		s.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", "text/event-stream"),
		s.subscribe(ctx, "/v1/events:subscribe?types=hello,goodbye"),
	}
	if got := s.subscribers(ctx); got != 2 {
		t.Errorf("eventproc_subscribers = %d with two subscriptions open, want 2", got)
	}
	for _, sub := range subs {
		sub.close()
	}
	for s.subscribers(ctx) != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("eventproc_subscribers never returned to 0: %v", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// subscribers returns the eventproc_subscribers gauge from /metrics.
func (s *sinkProc) subscribers(ctx context.Context) int {
	s.t.Helper()
	_, body := s.get(ctx, "/metrics")
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "eventproc_subscribers "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				s.t.Fatalf("/metrics line %q: %v", line, err)
			}
			return n
		}
	}
	s.t.Fatalf("/metrics has no eventproc_subscribers:\n%s", body)
	return 0
}

// TestSubscribeBadRequest: bad input is refused before any streaming, with
// the API's JSON errors.
func TestSubscribeBadRequest(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t), "--max-subscribers", "1")
	tests := []struct {
		name       string
		method     string
		query      string
		header     []string
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		{"unknown type", "GET", "types=hello&types=wave", nil, 400, 3, `unknown event type "wave"`},
		{"unspecified type", "GET", "types=TYPE_UNSPECIFIED", nil, 400, 3, "unknown event type"},
		{"no types", "GET", "", nil, 400, 3, "no types"},
		{"empty types", "GET", "types=,", nil, 400, 3, "no types"},
		{"unknown parameter", "GET", "type=hello", nil, 400, 3, `unknown query parameter "type" (want types`},
		{"bad last_event_id", "GET", "types=hello&last_event_id=yesterday", nil, 400, 3, "last event id"},
		{"bad Last-Event-ID", "GET", "types=hello", []string{"Last-Event-ID", "-1", "Accept", "text/event-stream"}, 400, 3, "last event id"},
		{"malformed query", "GET", "types=%zz", nil, 400, 3, "malformed query"},
		{"POST", "POST", "types=hello", nil, 405, 12, "method POST is not allowed"},
		{"DELETE", "DELETE", "types=hello", nil, 405, 12, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tc.method, s.url+"/v1/events:subscribe?"+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, body := s.do(ctx, req)
			checkError(t, resp, body, tc.wantStatus, tc.wantCode, tc.wantMsg)
			if tc.wantStatus == 405 && resp.Header.Get("Allow") != "GET" {
				t.Errorf("Allow: %q, want GET", resp.Header.Get("Allow"))
			}
		})
	}
	t.Run("too many subscribers", func(t *testing.T) {
		s.subscribe(ctx, "/v1/events:subscribe?types=hello")
		resp, body := s.get(ctx, "/v1/events:subscribe?types=hello")
		checkError(t, resp, body, 429, 8, "too many subscribers")
	})
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
