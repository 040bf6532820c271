package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

const typeHello = eventv1.Type_TYPE_HELLO

// testTimeout bounds every test's context.
const testTimeout = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func helloRoute(addrs ...string) []Route {
	return []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: addrs}}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

// Every one of 1,000 concurrent callers gets its own reply, although the
// processor answers in random order after random delays.
func TestSendConcurrentOutOfOrder(t *testing.T) {
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		select {
		case <-time.After(time.Duration(rand.IntN(2000)) * time.Microsecond):
		case <-ctx.Done():
			return nil
		}
		return echo(ctx, req)
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 3})
	ctx := testCtx(t)

	for _, err := range sendEchoes(ctx, s, 1000)() {
		t.Error(err)
	}
	f.mu.Lock()
	streams := len(f.streams)
	f.mu.Unlock()
	if streams != 3 {
		t.Errorf("processor saw %d streams, want 3", streams)
	}
}

func TestSendAnswers(t *testing.T) {
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		resp := &eventv1.ProcessResponse{Id: req.GetId()}
		switch req.GetEvent().GetPayload().GetStringValue() {
		case "consume":
			resp.Result = &eventv1.ProcessResponse_Consumed{Consumed: true}
		case "not-found":
			resp.Result = &eventv1.ProcessResponse_Error{Error: status.New(codes.NotFound, "no such thing").Proto()}
		case "ok-error":
			resp.Result = &eventv1.ProcessResponse_Error{Error: status.New(codes.OK, "").Proto()}
		case "empty":
		default:
			resp.Result = &eventv1.ProcessResponse_Reply{Reply: req.GetEvent()}
		}
		return resp
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := testCtx(t)

	tests := []struct {
		payload     string
		wantCode    codes.Code
		wantOutcome eventv1.Outcome
	}{
		{"reply", codes.OK, eventv1.Outcome_OUTCOME_REPLIED},
		{"consume", codes.OK, eventv1.Outcome_OUTCOME_CONSUMED},
		{"not-found", codes.NotFound, 0},
		{"ok-error", codes.Internal, 0},
		{"empty", codes.Internal, 0},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			resp, err := send(s, ctx, hello(tt.payload))
			wantCode(t, err, tt.wantCode)
			if got := resp.GetOutcome(); got != tt.wantOutcome {
				t.Errorf("outcome %v, want %v", got, tt.wantOutcome)
			}
			if tt.wantOutcome == eventv1.Outcome_OUTCOME_CONSUMED && resp.GetEvent() != nil {
				t.Errorf("consumed answer carries event %v", resp.GetEvent())
			}
		})
	}
}

func TestSendFillsIDAndTime(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := testCtx(t)
	a, err := send(s, ctx, hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := send(s, ctx, hello("b"))
	if err != nil {
		t.Fatal(err)
	}
	if a.GetEvent().GetId() == "" || a.GetEvent().GetId() == b.GetEvent().GetId() {
		t.Errorf("ids %q and %q, want distinct non-empty", a.GetEvent().GetId(), b.GetEvent().GetId())
	}
	if a.GetEvent().GetTime() == nil {
		t.Error("time not set")
	}
	ev := hello("c")
	ev.Id = "mine"
	c, err := send(s, ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if c.GetEvent().GetId() != "mine" {
		t.Errorf("id %q, want the client's %q", c.GetEvent().GetId(), "mine")
	}
}

func TestSendInvalid(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := testCtx(t)
	tests := []struct {
		name    string
		ev      *eventv1.Event
		want    codes.Code
		wantMsg string
	}{
		{"nil event", nil, codes.InvalidArgument, "missing event"},
		{"unspecified", &eventv1.Event{}, codes.InvalidArgument, "type is required"},
		{"unknown number", &eventv1.Event{Type: 99}, codes.InvalidArgument, "unknown event type 99"},
		{"no route", &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE}, codes.Unimplemented, "TYPE_GOODBYE"},
		// Strings that protobuf cannot encode: Go callers only (decoders
		// reject them), and never the stream's end.
		{"id not UTF-8", &eventv1.Event{Type: typeHello, Id: "\xff"}, codes.InvalidArgument, "event.v1.Event.id: string field contains invalid UTF-8"},
		{"metadata key", &eventv1.Event{Type: typeHello, Metadata: map[string]string{"k\xc0": "v"}}, codes.InvalidArgument, "metadata"},
		{"metadata value", &eventv1.Event{Type: typeHello, Metadata: map[string]string{"k": "\xed\xa0\x80"}}, codes.InvalidArgument, "metadata"},
		{"payload string", &eventv1.Event{Type: typeHello, Payload: structpb.NewListValue(&structpb.ListValue{
			Values: []*structpb.Value{structpb.NewStringValue("\xff")}})}, codes.InvalidArgument, "string_value"},
		{"payload key", &eventv1.Event{Type: typeHello, Payload: structpb.NewStructValue(&structpb.Struct{
			Fields: map[string]*structpb.Value{"\xff": structpb.NewNullValue()}})}, codes.InvalidArgument, "fields"},
		{"payload too deep", &eventv1.Event{Type: typeHello, Payload: nestedLists(5000)}, codes.InvalidArgument, "nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := send(s, ctx, tt.ev)
			wantCode(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
	// The stream is as good as before, and takes what a processor decodes.
	resp, err := send(s, ctx, &eventv1.Event{Type: typeHello, Id: "ok", Payload: nestedLists(4990)})
	if err != nil || resp.GetEvent().GetId() != "ok" {
		t.Fatalf("after them: %v, %v", resp.GetEvent().GetId(), err)
	}
}

// nestedLists returns a payload of n lists, one inside the other.
func nestedLists(n int) *structpb.Value {
	v := structpb.NewNullValue()
	for range n {
		v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	return v
}

// A processor slower than the deadline yields DEADLINE_EXCEEDED; its late
// reply is dropped and counted, and the stream keeps working.
func TestSendDeadlineDropsLateReply(t *testing.T) {
	release := make(chan struct{})
	received := make(chan *eventv1.ProcessRequest, 1)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		if req.GetEvent().GetPayload().GetStringValue() == "slow" {
			received <- req
			<-release
		}
		return echo(ctx, req)
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	ctx := testCtx(t)

	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := send(s, dctx, hello("slow"))
	wantCode(t, err, codes.DeadlineExceeded)
	req := <-received
	if d := req.GetTimeout().AsDuration(); d <= 0 || d > 50*time.Millisecond {
		t.Errorf("processor got timeout %v, want in (0, 50ms]", d)
	}
	close(release)

	p := s.targets[0]
	for p.dropped.Load() == 0 {
		// The late reply is in flight; a fast request on the same stream
		// is answered after it, so one round trip is enough to see it.
		resp, err := send(s, ctx, hello("fast"))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetEvent().GetPayload().GetStringValue(); got != "fast" {
			t.Fatalf("got %q, want %q: a late reply reached the wrong caller", got, "fast")
		}
	}
}

// Requests that already expired are never sent to the processor.
func TestSendExpiredNotSent(t *testing.T) {
	var got atomic.Int64
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		got.Add(1)
		return echo(ctx, req)
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err := send(s, ctx, hello("expired"))
	wantCode(t, err, codes.Canceled)
	if _, err := send(s, testCtx(t), hello("live")); err != nil {
		t.Fatal(err)
	}
	if n := got.Load(); n != 1 {
		t.Errorf("processor handled %d requests, want 1 (the expired one must not be sent)", n)
	}
}

// When a stream breaks, every request waiting on it fails at once with
// UNAVAILABLE instead of waiting for its deadline.
func TestSendStreamBreaks(t *testing.T) {
	const n = 20
	received := make(chan struct{}, n)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		received <- struct{}{}
		<-ctx.Done()
		return nil
	}}
	addr, srv := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), Timeout: time.Minute})
	ctx := testCtx(t)

	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := send(s, ctx, hello("x"))
			errs <- err
		}()
	}
	for range n {
		<-received
	}
	srv.Stop()
	for range n {
		wantCode(t, <-errs, codes.Unavailable)
	}
	if s.Ready() {
		// Ready may lag by a moment; what matters is that new requests
		// fail fast too.
		t.Log("sink still reported ready right after the stop")
	}
	_, err := send(s, ctx, hello("after"))
	wantCode(t, err, codes.Unavailable)
}

// No live processor: UNAVAILABLE at once, not at the deadline.
func TestSendNoProcessor(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	s, err := New(Config{Routes: helloRoute(addr), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(context.Background()) }()
	defer func() { s.Close(); <-done }()

	ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
	defer cancel()
	_, err = send(s, ctx, hello("x"))
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), "TYPE_HELLO") {
		t.Errorf("error %q does not name the type", err)
	}
	if s.Ready() {
		t.Error("Ready() = true without a processor")
	}
}

// A restarted processor is used again without restarting the sink.
func TestSendProcessorRestart(t *testing.T) {
	f := &fakeProcessor{answer: echo}
	addr, srv := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), ReconnectMax: 200 * time.Millisecond})
	ctx := testCtx(t)
	if _, err := send(s, ctx, hello("before")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	waitFor(t, s, func() bool { return !s.Ready() })
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	serveFake(t, f, lis)
	waitFor(t, s, func() bool { return s.Status()[0].Targets[0].LiveStreams == s.cfg.StreamsPerTarget })
	resp, err := send(s, ctx, hello("after"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetEvent().GetPayload().GetStringValue(); got != "after" {
		t.Errorf("got %q, want %q", got, "after")
	}
}

// Past MaxPendingPerStream on every stream, the sink answers
// RESOURCE_EXHAUSTED at once.
func TestSendBackpressure(t *testing.T) {
	release := make(chan struct{})
	received := make(chan struct{}, 4)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		received <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return echo(ctx, req)
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1, MaxPendingPerStream: 2})
	ctx := testCtx(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := send(s, ctx, hello("held"))
			errs <- err
		}()
	}
	<-received
	<-received
	_, err := send(s, ctx, hello("one too many"))
	wantCode(t, err, codes.ResourceExhausted)
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := send(s, ctx, hello("after")); err != nil {
		t.Errorf("after the backlog cleared: %v", err)
	}
}

// A request too large for the processor fails alone; the stream survives.
// Requests near the limit are measured exactly.
func TestSendOversized(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	const limit = 1000
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1, MaxMessageBytes: limit})
	for _, path := range sendPaths {
		t.Run(path.name, func(t *testing.T) {
			send := path.sender(t, s)
			_, err := send(hello(strings.Repeat("x", 2*limit)))
			wantCode(t, err, codes.ResourceExhausted)
			// Just under and just over the limit once the sink has added
			// id, time and timeout.
			fits := 0
			for n := limit - 120; n < limit; n++ {
				resp, err := send(hello(strings.Repeat("y", n)))
				switch status.Code(err) {
				case codes.OK:
					fits++
					if got := len(resp.GetEvent().GetPayload().GetStringValue()); got != n {
						t.Fatalf("payload of %d bytes echoed as %d", n, got)
					}
				case codes.ResourceExhausted:
				default:
					t.Fatalf("payload of %d bytes: %v", n, err)
				}
			}
			if fits == 0 || fits == 120 {
				t.Errorf("%d of 120 events near the limit fit; want some but not all", fits)
			}
			if _, err := send(hello("small")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Answers with unknown ids, and answers with no id, are dropped and never
// reach a caller.
func TestSendBogusAnswers(t *testing.T) {
	f := &fakeProcessor{}
	f.answer = func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		f.mu.Lock()
		ps := f.streams[0]
		f.mu.Unlock()
		// Not concurrency safe in general, but this test sends one
		// request at a time.
		_ = ps.Send(&eventv1.ProcessResponse{Id: req.GetId() + 1000, Result: &eventv1.ProcessResponse_Reply{Reply: hello("bogus")}})
		_ = ps.Send(&eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Reply{Reply: hello("no id")}})
		return echo(ctx, req)
	}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	ctx := testCtx(t)
	for i := range 10 {
		want := fmt.Sprint(i)
		resp, err := send(s, ctx, hello(want))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetEvent().GetPayload().GetStringValue(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if got := s.targets[0].dropped.Load(); got < 10 {
		t.Errorf("dropped %d answers, want at least 10", got)
	}
}

// A caller that gives up after its request was sent tells the processor.
func TestSendCancelReachesProcessor(t *testing.T) {
	received := make(chan struct{}, 1)
	cancels := make(chan uint64, 1)
	f := &fakeProcessor{}
	f.answer = func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		received <- struct{}{}
		<-ctx.Done()
		return nil
	}
	addr, _ := startFake(t, &cancelSpy{fakeProcessor: f, cancels: cancels})
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-received
		cancel()
	}()
	_, err := send(s, ctx, hello("x"))
	wantCode(t, err, codes.Canceled)
	if id := <-cancels; id == 0 {
		t.Error("cancel for id 0")
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in      string
		want    Route
		wantErr string
	}{
		{"hello=localhost:9090", Route{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"localhost:9090"}}, ""},
		{"TYPE_GOODBYE=a:1, dns:///b:2", Route{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{"a:1", "dns:///b:2"}}, ""},
		{"Type_Hello=a:1", Route{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"a:1"}}, ""},
		{"hello", Route{}, "want TYPE=TARGET"},
		{"nope=a:1", Route{}, `unknown event type "nope"`},
		{"unspecified=a:1", Route{}, "unknown event type"},
		{"hello=", Route{}, "no targets"},
		{"hello=a b", Route{}, "bad target"},
		{"hello=localhost", Route{}, `bad target "localhost": want host:port or dns:///name:port (missing port in address)`},
		{"hello=a:1,dns:///b", Route{}, `bad target "dns:///b": want host:port or dns:///name:port (missing port in address)`},
		{"hello=dns:///:9", Route{}, `bad target "dns:///:9": want dns:///name:port (missing name)`},
		{"hello=localhost:", Route{}, `bad target "localhost:": want host:port or dns:///name:port (missing port)`},
		{"hello=unix:///run/proc.sock", Route{Type: eventv1.Type_TYPE_HELLO, Targets: []string{"unix:///run/proc.sock"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRoute(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.want.Type || strings.Join(got.Targets, "|") != strings.Join(tt.want.Targets, "|") {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no routes", Config{}, "no routes"},
		{"duplicate", Config{Routes: []Route{{Type: 1, Targets: []string{"a:1"}}, {Type: 1, Targets: []string{"b:1"}}}}, "more than one route"},
		{"negative timeout", Config{Routes: helloRoute("a:1"), Timeout: -1}, "Timeout"},
		{"negative pending", Config{Routes: helloRoute("a:1"), MaxPendingPerStream: -1}, "MaxPendingPerStream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// cancelSpy reports the ids of cancel requests the sink sends.
type cancelSpy struct {
	*fakeProcessor
	cancels chan uint64
}

func (c *cancelSpy) Process(ps eventv1.ProcessorService_ProcessServer) error {
	return c.fakeProcessor.Process(&spyStream{ProcessorService_ProcessServer: ps, cancels: c.cancels})
}

type spyStream struct {
	eventv1.ProcessorService_ProcessServer
	cancels chan uint64
}

func (s *spyStream) Recv() (*eventv1.ProcessRequest, error) {
	req, err := s.ProcessorService_ProcessServer.Recv()
	if req.GetCancel() {
		select {
		case s.cancels <- req.GetId():
		default:
		}
	}
	return req, err
}

// waitFor waits until cond holds, re-checking it whenever a stream goes up
// or down.
func waitFor(t testing.TB, s *Sink, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.stateMu.Lock()
		ch := s.changed
		s.stateMu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("condition not met within 10s")
		}
	}
}
