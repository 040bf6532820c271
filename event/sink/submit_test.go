package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// FuzzEventEnvelope: for any bytes a client sends as an event, checkEvent
// accepts exactly what proto.Unmarshal accepts (as an Event, and as the
// event of a ProcessRequest in a batch, where a processor meets it); the
// header the sink reads holds what a decoder finds; and the event with the
// header the sink appends decodes to the event with its id and time set.
func FuzzEventEnvelope(f *testing.F) {
	nested, _ := structpb.NewValue(map[string]any{"a": []any{1.5, "x", true, nil, map[string]any{"b": "c"}}})
	for _, ev := range []*eventv1.Event{
		{Id: "e-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello"), Data: []byte{0, 1, 0xff},
			Metadata: map[string]string{"k": "v"}, Time: timestamppb.Now()},
		{Type: eventv1.Type_TYPE_GOODBYE, Payload: nested},
		{Payload: nestedLists(4995)},
		{},
	} {
		b, _ := proto.Marshal(ev)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff\xfe"))
	f.Add([]byte{0x10, 0x01, 0x10, 0x02, 0x32, 0x02, 0x08, 0x01, 0x32, 0x02, 0x10, 0x05}) // repeated type, time merged
	f.Add([]byte{0x12, 0x01, 0x01})                                                       // type as bytes: unknown
	now := time.Unix(1700000000, 123456789)
	f.Fuzz(func(t *testing.T, b []byte) {
		var want eventv1.Event
		werr := proto.Unmarshal(b, &want)
		h, tooDeep, err := checkEvent(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("checkEvent: %v; proto.Unmarshal: %v", err, werr)
		}
		if err != nil {
			return
		}
		if h.id != want.Id || h.typ != want.Type || h.hasTime != (want.Time != nil) {
			t.Fatalf("header %+v, want id %q type %v time %v", h, want.Id, want.Type, want.Time)
		}
		// What the sink fills in: an id and a time when missing.
		fill := &relayv1.EventHeader{}
		if want.Id == "" {
			fill.Id = "sink-1"
		}
		if want.Time == nil {
			fill.Time = timestamppb.New(now)
		}
		enc, _ := proto.Marshal(fill)
		var got eventv1.Event
		if err := proto.Unmarshal(append(b[:len(b):len(b)], enc...), &got); err != nil {
			t.Fatal(err)
		}
		if fill.Id != "" {
			want.Id = fill.Id
		}
		if fill.Time != nil {
			want.Time = fill.Time
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("amended event %v, want %v", &got, &want)
		}
		batch, err := proto.Marshal(&relayv1.ProcessRequest{Batch: []*relayv1.ProcessRequest{{Id: 1, Event: b}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(batch, new(eventv1.ProcessRequest)); err != nil && !tooDeep {
			t.Fatalf("passed on, but a processor cannot decode it in a batch: %v", err)
		}
	})
}

// authorizer records what it is asked and refuses what deny says.
type authorizer struct {
	mu    sync.Mutex
	asked []string // "action TYPE user"
	deny  func(action Action, t eventv1.Type) error
}

type userKey struct{}

func (a *authorizer) authorize(ctx context.Context, action Action, t eventv1.Type) error {
	user, _ := ctx.Value(userKey{}).(string)
	if user == "" {
		user = "-"
	}
	a.mu.Lock()
	a.asked = append(a.asked, fmt.Sprint(action, " ", t, " ", user))
	a.mu.Unlock()
	return a.deny(action, t)
}

func (a *authorizer) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = nil
	return out
}

// Config.Authorize is asked once per event on every gRPC entry — unary
// Send, Stream, each entry of a Stream batch — and per type of a
// subscription, with the event's type and the caller's context; its
// refusal answers that event alone, with the refusal's status, or
// PERMISSION_DENIED for a plain error.
func TestAuthorizeEveryEntry(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	az := &authorizer{deny: func(action Action, t eventv1.Type) error {
		switch {
		case t == eventv1.Type_TYPE_GOODBYE && action == ActionSend:
			return errors.New("goodbyes are not for you")
		case t == eventv1.Type_TYPE_GOODBYE:
			return status.Error(codes.Unauthenticated, "who are you?")
		}
		return nil
	}}
	s := startSink(t, Config{Routes: []Route{
		{Type: typeHello, Targets: []string{addr}},
		{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{addr}},
	}, Authorize: az.authorize})
	client := serveSink(t, s)
	ctx := testCtx(t)
	goodbye := &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE}

	// In-process, with the caller's identity in the context.
	if _, err := s.Send(context.WithValue(ctx, userKey{}, "ada"), &eventv1.SendRequest{Event: hello("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(ctx, &eventv1.SendRequest{Event: goodbye})
	wantCode(t, err, codes.PermissionDenied)
	if !strings.Contains(err.Error(), "goodbyes are not for you") {
		t.Errorf("refusal %v does not say why", err)
	}
	wantAsked(t, az, "send TYPE_HELLO ada", "send TYPE_GOODBYE -")

	// Unary Send over gRPC.
	if _, err := client.Send(ctx, &eventv1.SendRequest{Event: hello("x")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Send(ctx, &eventv1.SendRequest{Event: goodbye})
	wantCode(t, err, codes.PermissionDenied)
	wantAsked(t, az, "send TYPE_HELLO -", "send TYPE_GOODBYE -")

	// Stream: one event alone, then a batch mixing allowed and refused
	// events; each refused event fails alone.
	ss, err := client.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Send(&eventv1.StreamRequest{Event: &eventv1.Event{Id: "g0", Type: eventv1.Type_TYPE_GOODBYE}}); err != nil {
		t.Fatal(err)
	}
	batch := &eventv1.StreamRequest{}
	for i, typ := range []eventv1.Type{typeHello, eventv1.Type_TYPE_GOODBYE, typeHello} {
		batch.Batch = append(batch.Batch, &eventv1.StreamRequest{Event: &eventv1.Event{Id: fmt.Sprint("b", i), Type: typ}})
	}
	if err := ss.Send(batch); err != nil {
		t.Fatal(err)
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	got := map[string]codes.Code{}
	for {
		resp, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetId()] = codes.Code(resp.GetError().GetCode())
	}
	want := map[string]codes.Code{"g0": codes.PermissionDenied, "b0": codes.OK, "b1": codes.PermissionDenied, "b2": codes.OK}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream answers %v, want %v", got, want)
	}
	wantAsked(t, az, "send TYPE_GOODBYE -", "send TYPE_HELLO -", "send TYPE_GOODBYE -", "send TYPE_HELLO -")

	// Subscribe over gRPC: asked per type; a refused type refuses the
	// subscription with the refusal's status.
	sub, err := client.Subscribe(ctx, &eventv1.SubscribeRequest{Types: []eventv1.Type{typeHello, eventv1.Type_TYPE_GOODBYE}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sub.Recv()
	wantCode(t, err, codes.Unauthenticated)
	wantAsked(t, az, "subscribe TYPE_HELLO -", "subscribe TYPE_GOODBYE -")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.SubscribeEvents(context.WithValue(sctx, userKey{}, "bob"), []eventv1.Type{typeHello}, ""); err != nil {
		t.Fatal(err)
	}
	wantAsked(t, az, "subscribe TYPE_HELLO bob")
}

// wantAsked fails t unless az was asked exactly want, in any order.
func wantAsked(t *testing.T, az *authorizer, want ...string) {
	t.Helper()
	got := az.take()
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	for _, w := range want {
		count[w]--
	}
	for k, n := range count {
		if n != 0 {
			t.Errorf("Authorize asked %q, want %q", got, want)
			return
		}
		_ = k
	}
}
