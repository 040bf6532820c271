package sink

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// publishingEcho answers with the event and also publishes a copy of it.
func publishingEcho(f *fakeProcessor) func(context.Context, *eventv1.ProcessRequest) *eventv1.ProcessResponse {
	return func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		f.mu.Lock()
		ps := f.streams[len(f.streams)-1]
		f.mu.Unlock()
		// Tests using this send one request at a time, so this Send does
		// not race with the answer's.
		if err := ps.Send(&eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Publish{Publish: req.GetEvent()}}); err != nil {
			return nil
		}
		return echo(ctx, req)
	}
}

// Events a processor publishes reach gRPC subscribers of their type, in
// order, with increasing sequence numbers.
func TestSubscribeReceivesPublished(t *testing.T) {
	f := &fakeProcessor{}
	f.answer = publishingEcho(f)
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	client := serveSink(t, s)
	ctx := testCtx(t)

	for _, p := range []string{"one", "two", "three"} {
		if _, err := send(s, ctx, hello(p)); err != nil {
			t.Fatal(err)
		}
	}
	// Resume from 0 replays the history, so the subscription cannot miss
	// events published before it was registered.
	sub, err := client.Subscribe(ctx, &eventv1.SubscribeRequest{Types: []eventv1.Type{eventv1.Type_TYPE_HELLO}, LastEventId: "0"})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, want := range []string{"one", "two", "three"} {
		resp, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetEvent().GetPayload().GetStringValue(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if resp.GetSequence() <= last {
			t.Errorf("sequence %d after %d", resp.GetSequence(), last)
		}
		last = resp.GetSequence()
	}
	if _, err := send(s, ctx, hello("live")); err != nil {
		t.Fatal(err)
	}
	resp, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetEvent().GetPayload().GetStringValue(); got != "live" {
		t.Errorf("got %q, want %q", got, "live")
	}
}

func TestSubscribeInvalid(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	client := serveSink(t, s)
	tests := []struct {
		name string
		req  *eventv1.SubscribeRequest
	}{
		{"no types", &eventv1.SubscribeRequest{}},
		{"unspecified", &eventv1.SubscribeRequest{Types: []eventv1.Type{0}}},
		{"bad last id", &eventv1.SubscribeRequest{Types: []eventv1.Type{1}, LastEventId: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := client.Subscribe(testCtx(t), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = sub.Recv()
			if got := status.Code(err); got != codes.InvalidArgument {
				t.Errorf("code %v (%v), want InvalidArgument", got, err)
			}
		})
	}
}

// Closing the sink ends subscriptions with UNAVAILABLE.
func TestSubscribeEndsOnClose(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := testCtx(t)
	sub, err := s.SubscribeEvents(ctx, []eventv1.Type{eventv1.Type_TYPE_HELLO}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	s.Close()
	_, err = sub.Next(ctx)
	if got := status.Code(SubscriptionError(err)); got != codes.Unavailable {
		t.Errorf("code %v (%v), want Unavailable", got, err)
	}
}
