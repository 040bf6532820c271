package sink

import (
	"errors"
	"google.golang.org/grpc/mem"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func relaySeeds(f *testing.F) {
	ev := &eventv1.Event{
		Id: "e-1", Type: eventv1.Type_TYPE_HELLO,
		Payload:  structpb.NewStringValue("hello"),
		Data:     []byte{0, 1, 0xff},
		Metadata: map[string]string{"processed_by": "proc", "k": "v"},
		Time:     timestamppb.Now(),
	}
	nested, _ := structpb.NewValue(map[string]any{"a": []any{1.5, "x", true, nil, map[string]any{"b": "c"}}})
	evb, _ := proto.Marshal(ev)
	nb, _ := proto.Marshal(&eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE, Payload: nested})
	for _, resp := range []*eventv1.ProcessResponse{
		{Id: 7, Result: &eventv1.ProcessResponse_Reply{Reply: ev}},
		{Id: 8, Result: &eventv1.ProcessResponse_Consumed{Consumed: true}},
		{Id: 9, Result: &eventv1.ProcessResponse_Error{Error: &status.Status{Code: 5, Message: "nope"}}},
		{Result: &eventv1.ProcessResponse_Publish{Publish: ev}},
		{Id: 10},
	} {
		b, err := proto.Marshal(resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(evb)
	f.Add(nb)
	// The reply field twice (merged), then a oneof switch, then back.
	twice := protowire.AppendBytes(protowire.AppendTag(nil, fieldReply, protowire.BytesType), evb)
	twice = protowire.AppendBytes(protowire.AppendTag(twice, fieldReply, protowire.BytesType), nb)
	f.Add(twice)
	f.Add(protowire.AppendVarint(protowire.AppendTag(twice, fieldConsumed, protowire.VarintType), 0))
	// Invalid UTF-8 in the id, in a metadata value, in a nested string.
	bad := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff\xfe")
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, fieldReply, protowire.BytesType), bad))
	f.Add(bad)
	entry := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "v\xc0")
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), entry))
	strv := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "\xed\xa0\x80")
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), strv))
	// Truncated, wrong wire types, field number 0, a group.
	f.Add(evb[:len(evb)-3])
	f.Add([]byte{0x08})
	f.Add([]byte{0x12, 0x05, 0x0a})
	f.Add([]byte{0x10, 0x01, 0x1a, 0x00, 0x0d, 1, 2, 3, 4})
	f.Add([]byte{0x00, 0x01})
	f.Add([]byte{0x0b, 0x08, 0x01, 0x0c})
	f.Add([]byte{0x0b, 0x08, 0x01})
}

// A frame holds what proto.Unmarshal would decode from the same bytes, and
// its relayed reply decodes, as a SendResponse, to the same event.
func FuzzFrameParse(f *testing.F) {
	relaySeeds(f)
	for _, m := range []*eventv1.ProcessResponse{
		{Batch: []*eventv1.ProcessResponse{
			{Id: 1, Result: &eventv1.ProcessResponse_Reply{Reply: hello("a")}},
			{Id: 2, Result: &eventv1.ProcessResponse_Consumed{Consumed: true}},
			{Result: &eventv1.ProcessResponse_Publish{Publish: hello("p")}},
		}},
		{Batch: []*eventv1.ProcessResponse{{Batch: []*eventv1.ProcessResponse{{Id: 3}}}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		err := fr.parse(b)
		var want eventv1.ProcessResponse
		werr := proto.Unmarshal(b, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("parse: %v; proto.Unmarshal: %v", err, werr)
		}
		if err != nil {
			return
		}
		sameFrame(t, &fr, &want)
		// A reused frame parses the same (parse reuses its batch array).
		if err := fr.parse(b); err != nil {
			t.Fatal(err)
		}
		sameFrame(t, &fr, &want)
	})
}

// sameFrame checks that fr holds what proto.Unmarshal read as want.
func sameFrame(t *testing.T, fr *frame, want *eventv1.ProcessResponse) {
	t.Helper()
	if fr.id != want.GetId() {
		t.Fatalf("id %d, want %d", fr.id, want.GetId())
	}
	if len(fr.batch) != len(want.GetBatch()) {
		t.Fatalf("%d batch entries, want %d", len(fr.batch), len(want.GetBatch()))
	}
	for i := range fr.batch {
		sameFrame(t, &fr.batch[i], want.GetBatch()[i])
	}
	switch res := want.GetResult().(type) {
	case *eventv1.ProcessResponse_Reply:
		got, err := fr.replyEvent()
		if err != nil || fr.kind != frameReply || !proto.Equal(got, res.Reply) {
			t.Fatalf("reply %v (%v, kind %d), want %v", got, err, fr.kind, res.Reply)
		}
		relayed := new(eventv1.SendResponse)
		relayed.ProtoReflect().SetUnknown(fr.reply)
		enc, err := proto.Marshal(relayed)
		if err != nil {
			t.Fatal(err)
		}
		var sr eventv1.SendResponse
		if err := proto.Unmarshal(enc, &sr); err != nil || !proto.Equal(sr.GetEvent(), res.Reply) {
			t.Fatalf("relayed reply decodes to %v (%v), want %v", sr.GetEvent(), err, res.Reply)
		}
	case *eventv1.ProcessResponse_Consumed:
		if fr.kind != frameConsumed {
			t.Fatalf("kind %d, want consumed", fr.kind)
		}
	case *eventv1.ProcessResponse_Error:
		if fr.kind != frameError || !proto.Equal(fr.status, res.Error) {
			t.Fatalf("error %v (kind %d), want %v", fr.status, fr.kind, res.Error)
		}
	case *eventv1.ProcessResponse_Publish:
		if fr.kind != framePublish || !proto.Equal(fr.publish, res.Publish) {
			t.Fatalf("publish %v (kind %d), want %v", fr.publish, fr.kind, res.Publish)
		}
	case nil:
		if fr.kind != frameNone {
			t.Fatalf("kind %d, want none", fr.kind)
		}
	}
}

// eachStreamRequest agrees with proto.Unmarshal on the events a
// StreamRequest carries, itself or its batch, except that it refuses a
// batch next to an event or timeout and a batch within a batch; and the
// event the processor gets is the client's, with an id and a time when it
// had none.
func FuzzParseStreamRequest(f *testing.F) {
	relaySeeds(f)
	ev := &eventv1.Event{Id: "a", Type: eventv1.Type_TYPE_HELLO, Time: timestamppb.Now()}
	for _, req := range []*eventv1.StreamRequest{
		{Event: ev},
		{Event: &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewStringValue("x")}, Timeout: durationpb.New(time.Second)},
		{Event: &eventv1.Event{}},
		{Timeout: &durationpb.Duration{Seconds: -1}},
		{},
		{Batch: []*eventv1.StreamRequest{{Event: ev}, {}, {Event: &eventv1.Event{Id: "b"}, Timeout: durationpb.New(time.Second)}}},
		{Batch: []*eventv1.StreamRequest{{Event: ev}}, Event: ev},
		{Batch: []*eventv1.StreamRequest{{Event: ev, Batch: []*eventv1.StreamRequest{{}}}}},
	} {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	now := time.Unix(1700000000, 123456789)
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []streamedEvent
		err := eachStreamRequest(b, func(r *streamedEvent) error {
			got = append(got, *r)
			return nil
		})
		var want eventv1.StreamRequest
		werr := proto.Unmarshal(b, &want)
		wants := []*eventv1.StreamRequest{&want}
		shapeOK := true
		if len(want.Batch) > 0 {
			wants = want.Batch
			shapeOK = want.Event == nil && want.Timeout == nil
			for _, e := range want.Batch {
				shapeOK = shapeOK && len(e.Batch) == 0
			}
		}
		switch {
		case werr != nil:
			if err == nil {
				t.Fatalf("eachStreamRequest accepts what proto.Unmarshal refuses: %v", werr)
			}
			return
		case !shapeOK:
			if !errors.Is(err, errBatchShape) {
				t.Fatalf("eachStreamRequest: %v, want %v", err, errBatchShape)
			}
			return
		case err != nil:
			t.Fatalf("eachStreamRequest: %v; proto.Unmarshal accepts it", err)
		}
		if len(got) != len(wants) {
			t.Fatalf("%d events, want %d", len(got), len(wants))
		}
		for i := range got {
			checkStreamed(t, &got[i], wants[i], now)
		}
	})
}

// checkStreamed fails t unless got is what the sink should read from want.
func checkStreamed(t *testing.T, got *streamedEvent, want *eventv1.StreamRequest, now time.Time) {
	t.Helper()
	if (got.body != nil) != (want.Event != nil) || (got.timeout != nil) != (want.Timeout != nil) {
		t.Fatalf("event %v timeout %v, want %v %v", got.body != nil, got.timeout, (want.Event != nil), (want.Timeout != nil))
	}
	if got.timeout != nil && !proto.Equal(got.timeout, want.GetTimeout()) {
		t.Fatalf("timeout %v, want %v", got.timeout, want.GetTimeout())
	}
	ev := want.GetEvent()
	if got.id != ev.GetId() || got.typ != ev.GetType() || got.hasTime != (ev.GetTime() != nil) {
		t.Fatalf("id %q type %v time %v, want %q %v %v", got.id, got.typ, got.hasTime, ev.GetId(), ev.GetType(), (ev.GetTime() != nil))
	}
	if got.body == nil {
		return
	}
	newID := got.id == ""
	if newID {
		got.id = "sink-1"
	}
	req := &eventv1.ProcessRequest{Id: 3}
	req.ProtoReflect().SetUnknown(got.processRequestEvent(newID, now))
	enc, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var sent eventv1.ProcessRequest
	if err := proto.Unmarshal(enc, &sent); err != nil {
		t.Fatal(err)
	}
	wantEv := proto.CloneOf(ev)
	if newID {
		wantEv.Id = "sink-1"
	}
	if ev.GetTime() == nil {
		wantEv.Time = timestamppb.New(now)
	}
	if !proto.Equal(sent.GetEvent(), wantEv) || sent.GetId() != 3 {
		t.Fatalf("processor gets %v, want %v", &sent, wantEv)
	}
	// Held back exactly when Dispatch would refuse the decoded event, and
	// otherwise decodable in a batch, as the processor gets it.
	if tooDeep := errors.Is(checkEncodable(wantEv), errTooDeep); got.tooDeep != tooDeep {
		t.Fatalf("tooDeep %v; Dispatch's check says %v", got.tooDeep, tooDeep)
	}
	if !got.tooDeep {
		batch, err := proto.Marshal(&eventv1.ProcessRequest{Batch: []*eventv1.ProcessRequest{req}})
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(batch, new(eventv1.ProcessRequest)); err != nil {
			t.Fatalf("the processor cannot decode the event in a batch: %v", err)
		}
	}
}

// FuzzSendRequest: the sink's codec accepts exactly the SendRequests
// proto.Unmarshal accepts, and Send reads from the kept encoding what a
// decoder would (see checkStreamed).
func FuzzSendRequest(f *testing.F) {
	relaySeeds(f)
	for _, req := range []*eventv1.SendRequest{
		{Event: &eventv1.Event{Id: "a", Type: eventv1.Type_TYPE_HELLO, Time: timestamppb.Now()}},
		{Event: &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewStringValue("x")}},
		{Event: &eventv1.Event{}},
		{},
	} {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	now := time.Unix(1700000000, 123456789)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req eventv1.SendRequest
		err := serverCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &req)
		var want eventv1.SendRequest
		werr := proto.Unmarshal(b, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("codec: %v; proto.Unmarshal: %v", err, werr)
		}
		if err != nil {
			return
		}
		if req.Event != nil {
			t.Fatalf("the codec decoded the event")
		}
		got, err := parseSendRequest(req.ProtoReflect().GetUnknown())
		if err != nil {
			t.Fatalf("parseSendRequest: %v; proto.Unmarshal accepts it", err)
		}
		checkStreamed(t, &got, &eventv1.StreamRequest{Event: want.Event}, now)
	})
}
