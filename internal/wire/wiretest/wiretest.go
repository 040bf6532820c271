// Package wiretest holds encoded messages of event/v1, valid and not, to
// seed the fuzz tests that compare a decoder with proto.Unmarshal.
package wiretest

import (
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// messages are the messages of event/v1 that travel on the wire, and the
// sink's envelopes of them; a fuzz input picks one by its first byte.
var messages = []func() proto.Message{
	func() proto.Message { return new(eventv1.Event) },
	func() proto.Message { return new(eventv1.SendRequest) },
	func() proto.Message { return new(eventv1.SendResponse) },
	func() proto.Message { return new(eventv1.StreamRequest) },
	func() proto.Message { return new(eventv1.StreamResponse) },
	func() proto.Message { return new(eventv1.SubscribeRequest) },
	func() proto.Message { return new(eventv1.SubscribeResponse) },
	func() proto.Message { return new(eventv1.ProcessRequest) },
	func() proto.Message { return new(eventv1.ProcessResponse) },
	func() proto.Message { return new(relayv1.ProcessRequest) },
	func() proto.Message { return new(relayv1.ProcessResponse) },
	func() proto.Message { return new(relayv1.StreamRequest) },
	func() proto.Message { return new(relayv1.StreamResponse) },
	func() proto.Message { return new(relayv1.SendResponse) },
}

// Seeds adds, for each message of event/v1, encodings of it: valid ones
// and ones proto.Unmarshal rejects. Inputs are (message index, bytes).
func Seeds(f *testing.F) {
	ev := &eventv1.Event{
		Id: "e-1", Type: eventv1.Type_TYPE_HELLO,
		Payload:  structpb.NewStringValue("hello"),
		Data:     []byte{0, 1, 0xff},
		Metadata: map[string]string{"processed_by": "proc", "k": "v"},
		Time:     timestamppb.New(time.Unix(1700000000, 5)),
	}
	nested, _ := structpb.NewValue(map[string]any{"a": []any{1.5, "x", true, nil, map[string]any{"b": "c"}}})
	valid := []proto.Message{
		ev,
		&eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE, Payload: nested}},
		&eventv1.SendResponse{Event: ev, Outcome: eventv1.Outcome_OUTCOME_REPLIED},
		&eventv1.StreamRequest{Event: ev, Timeout: durationpb.New(time.Second)},
		&eventv1.StreamResponse{Id: "x", Result: &eventv1.StreamResponse_Error{Error: &spb.Status{Code: 5, Message: "nope"}}},
		&eventv1.SubscribeRequest{Types: []eventv1.Type{1, 2, 300}, LastEventId: "7"},
		&eventv1.SubscribeResponse{Event: ev, Sequence: 9, Missed: 1},
		&eventv1.ProcessRequest{Id: 3, Event: ev, Timeout: durationpb.New(time.Second),
			Batch: []*eventv1.ProcessRequest{{Id: 4, Event: ev}, {Id: 5, Cancel: true}}},
		&eventv1.ProcessResponse{Id: 7, Result: &eventv1.ProcessResponse_Reply{Reply: ev},
			Batch: []*eventv1.ProcessResponse{{Id: 8, Result: &eventv1.ProcessResponse_Consumed{Consumed: true}}}},
	}
	for i, m := range valid {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(i), b)
		f.Add(byte(i), b[:len(b)-1]) // truncated
	}
	// Invalid UTF-8 in a string, in a metadata value, in a nested string.
	bad := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff\xfe")
	f.Add(byte(0), bad)
	f.Add(byte(1), protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), bad))
	entry := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "v\xc0")
	f.Add(byte(0), protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), entry))
	strv := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "\xed\xa0\x80")
	f.Add(byte(0), protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), strv))
	// A packed enum cut short; wrong wire types; field number 0; groups.
	f.Add(byte(5), []byte{0x0a, 0x02, 0x01, 0x80})
	f.Add(byte(0), []byte{0x08})
	f.Add(byte(0), []byte{0x12, 0x05, 0x0a})
	f.Add(byte(0), []byte{0x10, 0x01, 0x1a, 0x00, 0x0d, 1, 2, 3, 4})
	f.Add(byte(0), []byte{0x00, 0x01})
	f.Add(byte(0), []byte{0x0b, 0x08, 0x01, 0x0c})
	f.Add(byte(0), []byte{0x0b, 0x08, 0x01})
}

// Message returns a new message of event/v1 chosen by i.
func Message(i byte) proto.Message { return messages[int(i)%len(messages)]() }
