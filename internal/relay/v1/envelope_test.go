package relayv1_test

import (
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// Every envelope field has the number and wire type of its counterpart in
// event.v1, an encoded event (bytes) standing for an Event message.
func TestFieldsMatch(t *testing.T) {
	ev := (*eventv1.Event)(nil).ProtoReflect().Descriptor()
	for _, tc := range []struct {
		envelope, public protoreflect.MessageDescriptor
	}{
		{(*relayv1.ProcessRequest)(nil).ProtoReflect().Descriptor(), (*eventv1.ProcessRequest)(nil).ProtoReflect().Descriptor()},
		{(*relayv1.ProcessResponse)(nil).ProtoReflect().Descriptor(), (*eventv1.ProcessResponse)(nil).ProtoReflect().Descriptor()},
		{(*relayv1.StreamRequest)(nil).ProtoReflect().Descriptor(), (*eventv1.StreamRequest)(nil).ProtoReflect().Descriptor()},
		{(*relayv1.SendResponse)(nil).ProtoReflect().Descriptor(), (*eventv1.SendResponse)(nil).ProtoReflect().Descriptor()},
		{(*relayv1.StreamResponse)(nil).ProtoReflect().Descriptor(), (*eventv1.StreamResponse)(nil).ProtoReflect().Descriptor()},
		{(*relayv1.EventHeader)(nil).ProtoReflect().Descriptor(), ev},
	} {
		fields := tc.envelope.Fields()
		if tc.envelope.Name() != "EventHeader" && fields.Len() != tc.public.Fields().Len() {
			t.Errorf("%s has %d fields, %s %d", tc.envelope.FullName(), fields.Len(), tc.public.FullName(), tc.public.Fields().Len())
		}
		for i := range fields.Len() {
			f := fields.Get(i)
			p := tc.public.Fields().ByName(f.Name())
			if p == nil {
				t.Errorf("%s: no field %s in %s", f.FullName(), f.Name(), tc.public.FullName())
				continue
			}
			if f.Number() != p.Number() || f.Cardinality() != p.Cardinality() || f.IsMap() != p.IsMap() ||
				inOneof(f) != inOneof(p) {
				t.Errorf("%s does not match %s", f.FullName(), p.FullName())
			}
			switch {
			case f.Kind() == protoreflect.BytesKind && p.Kind() == protoreflect.MessageKind:
				if p.Message().FullName() != ev.FullName() {
					t.Errorf("%s is bytes for %s, not an Event", f.FullName(), p.FullName())
				}
			case f.Kind() != p.Kind():
				t.Errorf("%s is %v, %s %v", f.FullName(), f.Kind(), p.FullName(), p.Kind())
			case f.Message() != nil && f.Message().FullName() != p.Message().FullName() &&
				f.Message().ParentFile().Package() != "internal.relay.v1":
				t.Errorf("%s is a %s, %s a %s", f.FullName(), f.Message().FullName(), p.FullName(), p.Message().FullName())
			}
		}
	}
}

// An envelope decodes what its counterpart encodes, and encodes what its
// counterpart decodes to the same message.
func TestRoundTrip(t *testing.T) {
	ev := &eventv1.Event{Id: "e1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hi"),
		Metadata: map[string]string{"k": "v"}, Time: timestamppb.Now()}
	for _, tc := range []struct {
		public, envelope, back proto.Message
	}{
		{&eventv1.ProcessRequest{Id: 3, Event: ev, Timeout: durationpb.New(1e9), TraceContext: map[string]string{"traceparent": "x"},
			Batch: []*eventv1.ProcessRequest{{Id: 4, Event: ev}, {Id: 5, Cancel: true}}},
			&relayv1.ProcessRequest{}, &eventv1.ProcessRequest{}},
		{&eventv1.ProcessResponse{Batch: []*eventv1.ProcessResponse{
			{Id: 1, Result: &eventv1.ProcessResponse_Reply{Reply: ev}},
			{Id: 2, Result: &eventv1.ProcessResponse_Consumed{Consumed: true}},
			{Id: 3, Result: &eventv1.ProcessResponse_Error{Error: &spb.Status{Code: 5, Message: "no"}}},
			{Result: &eventv1.ProcessResponse_Publish{Publish: ev}}}},
			&relayv1.ProcessResponse{}, &eventv1.ProcessResponse{}},
		{&eventv1.StreamRequest{Batch: []*eventv1.StreamRequest{{Event: ev, Timeout: durationpb.New(2e9)}, {Event: &eventv1.Event{}}}},
			&relayv1.StreamRequest{}, &eventv1.StreamRequest{}},
		{&eventv1.StreamResponse{Batch: []*eventv1.StreamResponse{
			{Id: "a", Result: &eventv1.StreamResponse_Response{Response: &eventv1.SendResponse{Event: ev, Outcome: eventv1.Outcome_OUTCOME_REPLIED}}},
			{Id: "b", Result: &eventv1.StreamResponse_Response{Response: &eventv1.SendResponse{Event: &eventv1.Event{}, Outcome: eventv1.Outcome_OUTCOME_REPLIED}}},
			{Id: "c", Result: &eventv1.StreamResponse_Error{Error: &spb.Status{Code: 14}}}}},
			&relayv1.StreamResponse{}, &eventv1.StreamResponse{}},
	} {
		b, err := proto.Marshal(tc.public)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, tc.envelope); err != nil {
			t.Fatalf("%T: %v", tc.envelope, err)
		}
		if u := tc.envelope.ProtoReflect().GetUnknown(); len(u) > 0 {
			t.Errorf("%T kept unknown fields %x", tc.envelope, u)
		}
		b, err = proto.Marshal(tc.envelope)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, tc.back); err != nil {
			t.Fatalf("%T: %v", tc.back, err)
		}
		if !proto.Equal(tc.public, tc.back) {
			t.Errorf("%T after a round trip through %T:\n got %v\nwant %v", tc.public, tc.envelope, tc.back, tc.public)
		}
	}
}

// An EventHeader appended to an encoded event sets its id and time.
func TestHeaderAmends(t *testing.T) {
	ev := &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewBoolValue(true)}
	b, _ := proto.Marshal(ev)
	now := timestamppb.Now()
	h, _ := proto.Marshal(&relayv1.EventHeader{Id: "new", Time: now})
	got := new(eventv1.Event)
	if err := proto.Unmarshal(append(b, h...), got); err != nil {
		t.Fatal(err)
	}
	want := &eventv1.Event{Id: "new", Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewBoolValue(true), Time: now}
	if !proto.Equal(want, got) {
		t.Errorf("amended event:\n got %v\nwant %v", got, want)
	}
}

func inOneof(f protoreflect.FieldDescriptor) bool {
	return f.ContainingOneof() != nil && !f.ContainingOneof().IsSynthetic()
}
