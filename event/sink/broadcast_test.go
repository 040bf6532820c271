package sink

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// A broadcast route hands each event to every target and answers ACCEPTED.
func TestBroadcast(t *testing.T) {
	const targets = 3
	got := make(chan string, targets)
	var addrs []string
	for i := range targets {
		name := string(rune('a' + i))
		addr, _ := startFake(t, &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
			got <- name + ":" + req.GetEvent().GetPayload().GetStringValue()
			return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Consumed{Consumed: true}}
		}})
		addrs = append(addrs, addr)
	}
	s := startSink(t, Config{Routes: []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: addrs, Broadcast: true}}})
	waitAllLive(t, s)
	resp, err := send(s, testCtx(t), hello("x"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != eventv1.Outcome_OUTCOME_ACCEPTED || resp.GetId() == "" {
		t.Errorf("outcome %v, id %q; want ACCEPTED with the event's id", resp.GetOutcome(), resp.GetId())
	}
	seen := map[string]bool{}
	for range targets {
		seen[<-got] = true
	}
	for _, want := range []string{"a:x", "b:x", "c:x"} {
		if !seen[want] {
			t.Errorf("target did not get the event: missing %q in %v", want, seen)
		}
	}
}

// A target that fails makes the broadcast fail with its status.
func TestBroadcastFailure(t *testing.T) {
	ok, _ := startFake(t, &fakeProcessor{answer: echo})
	bad, _ := startFake(t, &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Error{Error: status.New(codes.PermissionDenied, "no").Proto()}}
	}})
	s := startSink(t, Config{Routes: []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{ok, bad}, Broadcast: true}}})
	waitAllLive(t, s)
	_, err := send(s, testCtx(t), hello("x"))
	wantCode(t, err, codes.PermissionDenied)
}

// waitAllLive waits until every target of every route has a live stream.
func waitAllLive(t *testing.T, s *Sink) {
	t.Helper()
	waitFor(t, s, func() bool {
		for _, p := range s.targets {
			if p.live() == 0 {
				return false
			}
		}
		return true
	})
}
