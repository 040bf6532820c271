package sink

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// On every path, an event sent without an id or a time gets them from the
// sink, and a client's own id and time are kept; the reply is the event
// the processor echoed, payload included.
func TestSendPathsFillIDAndTime(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	for _, path := range sendPaths {
		t.Run(path.name, func(t *testing.T) {
			send := path.sender(t, s)
			own := hello("own")
			own.Id, own.Time = "client-id", timestamppb.New(time.Unix(1000, 5))
			ids := map[string]bool{}
			for _, ev := range []*eventv1.Event{hello("a"), hello("b"), own} {
				payload := ev.GetPayload().GetStringValue()
				resp, err := send(proto.CloneOf(ev))
				if err != nil {
					t.Fatal(err)
				}
				got := resp.GetEvent()
				if got.GetId() == "" || ids[got.GetId()] || got.GetTime() == nil {
					t.Fatalf("reply %v: want a new id and a time (ids so far %v)", got, ids)
				}
				ids[got.GetId()] = true
				if got.GetPayload().GetStringValue() != payload || resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
					t.Fatalf("reply %v, outcome %v: want payload %q replied", got, resp.GetOutcome(), payload)
				}
				if ev == own && (got.GetId() != "client-id" || !proto.Equal(got.GetTime(), own.GetTime())) {
					t.Fatalf("client's id and time not kept: %v", got)
				}
			}
		})
	}
}

// TestRelayedEvent: Send's answer holds the processor's reply as it was
// encoded, which RelayedEvent returns; Dispatch's holds the decoded event.
func TestRelayedEvent(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := t.Context()

	resp, err := s.Send(ctx, &eventv1.SendRequest{Event: hello("relayed")})
	if err != nil {
		t.Fatal(err)
	}
	wire, ok := RelayedEvent(resp)
	if !ok {
		t.Fatalf("RelayedEvent(%v): none", resp)
	}
	got := new(eventv1.Event)
	if err := proto.Unmarshal(wire, got); err != nil {
		t.Fatalf("relayed bytes do not decode: %v", err)
	}
	if got.GetPayload().GetStringValue() != "relayed" || got.GetId() == "" {
		t.Errorf("relayed event %v, want the echo of the event sent", got)
	}

	resp, err = s.Dispatch(ctx, hello("decoded"))
	if err != nil {
		t.Fatal(err)
	}
	if wire, ok := RelayedEvent(resp); ok || resp.GetEvent().GetPayload().GetStringValue() != "decoded" {
		t.Errorf("Dispatch: RelayedEvent = %x, %v and event %v; want none and the decoded event", wire, ok, resp.GetEvent())
	}
	consumed := &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED}
	if _, ok := RelayedEvent(consumed); ok {
		t.Errorf("RelayedEvent(%v) found an event", consumed)
	}
}
