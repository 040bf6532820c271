package vtcodec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/wire/wiretest"
)

// Unmarshal accepts exactly what proto.Unmarshal accepts and decodes the
// same message, also into a message that held another before; what it
// decodes, Marshal encodes to bytes that decode to it again.
func FuzzCodec(f *testing.F) {
	wiretest.Seeds(f)
	f.Fuzz(func(t *testing.T, i byte, b []byte) {
		want := wiretest.Message(i)
		werr := proto.Unmarshal(b, want)

		got := wiretest.Message(i).(Message)
		err := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%T: Unmarshal: %v; proto.Unmarshal: %v", got, err, werr)
		}
		if err != nil {
			return
		}
		// The one difference (see the package comment).
		dropWellKnownUnknown(want.ProtoReflect())
		dropWellKnownUnknown(got.ProtoReflect())
		if !proto.Equal(got, want) {
			t.Fatalf("Unmarshal: %v\nproto.Unmarshal: %v", got, want)
		}
		// Decoding again into the same message replaces it.
		err = Unmarshal(b, got)
		dropWellKnownUnknown(got.ProtoReflect())
		if err != nil || !proto.Equal(got, want) {
			t.Fatalf("decoded again: %v (%v), want %v", got, err, want)
		}

		enc, err := Codec{}.Marshal(got)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again := wiretest.Message(i)
		err = proto.Unmarshal(enc.Materialize(), again)
		dropWellKnownUnknown(again.ProtoReflect())
		if err != nil || !proto.Equal(again, want) {
			t.Fatalf("Marshal's bytes decode to %v (%v), want %v", again, err, want)
		}
		enc.Free()
	})
}

// dropWellKnownUnknown removes the unknown fields of the well-known types
// in m, and writes the tags of the others in their shortest form, as
// protobuf-go does (the generated code keeps them as they came: the same
// fields).
func dropWellKnownUnknown(m protoreflect.Message) {
	if !m.IsValid() {
		return
	}
	if m.Descriptor().ParentFile().Package() == "google.protobuf" {
		m.SetUnknown(nil)
	} else if u := m.GetUnknown(); len(u) > 0 {
		var canon []byte
		for len(u) > 0 {
			num, typ, n := protowire.ConsumeTag(u)
			v := protowire.ConsumeFieldValue(num, typ, u[n:])
			if n < 0 || v < 0 {
				panic("malformed unknown fields")
			}
			canon = append(protowire.AppendTag(canon, num, typ), u[n:n+v]...)
			u = u[n+v:]
		}
		m.SetUnknown(canon)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					dropWellKnownUnknown(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := range v.List().Len() {
					dropWellKnownUnknown(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			dropWellKnownUnknown(v.Message())
		}
		return true
	})
}

// Unknown fields inside well-known types are dropped, and only there.
func TestWellKnownUnknownDropped(t *testing.T) {
	ev := &eventv1.Event{Id: "x", Time: timestamppb.New(time.Unix(5, 6))}
	ev.Time.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
	ev.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 2))
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := new(eventv1.Event)
	if err := Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Time.ProtoReflect().GetUnknown()) != 0 || got.Time.AsTime() != ev.Time.AsTime() {
		t.Errorf("time %v, unknown %x", got.Time, got.Time.ProtoReflect().GetUnknown())
	}
	if !bytes.Equal(got.ProtoReflect().GetUnknown(), ev.ProtoReflect().GetUnknown()) {
		t.Errorf("event's unknown fields %x, want %x", got.ProtoReflect().GetUnknown(), ev.ProtoReflect().GetUnknown())
	}
}

// Marshal refuses what proto.Marshal refuses: strings that are not UTF-8.
func TestMarshalInvalidUTF8(t *testing.T) {
	for _, m := range []proto.Message{
		&eventv1.Event{Id: "\xff"},
		&eventv1.SendResponse{Event: &eventv1.Event{Metadata: map[string]string{"k": "v\xc0"}}},
		&eventv1.ProcessRequest{Batch: []*eventv1.ProcessRequest{{Event: &eventv1.Event{Payload: structpb.NewStringValue("\xed\xa0\x80")}}}},
		&eventv1.StreamResponse{Id: strings.Repeat("x", 4096) + "\xff"}, // pooled buffer
	} {
		_, werr := proto.Marshal(m)
		if werr == nil {
			t.Fatalf("%T: proto.Marshal accepts it", m)
		}
		if _, err := (Codec{}).Marshal(m); err == nil || err.Error() != werr.Error() {
			t.Errorf("%T: Marshal: %v, want %v", m, err, werr)
		}
	}
}

// A message big enough for a pooled buffer comes out the same.
func TestMarshalLarge(t *testing.T) {
	m := &eventv1.SendRequest{Event: &eventv1.Event{Id: "big", Data: []byte(strings.Repeat("d", 64<<10))}}
	enc, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Free()
	got := new(eventv1.SendRequest)
	if err := proto.Unmarshal(enc.Materialize(), got); err != nil || !proto.Equal(got, m) {
		t.Fatalf("decoded %v (%v)", got.GetEvent().GetId(), err)
	}
}

// Messages without generated methods go to gRPC's proto codec.
func TestOtherMessages(t *testing.T) {
	enc, err := Codec{}.Marshal(&emptypb.Empty{})
	if err != nil || enc.Len() != 0 {
		t.Fatalf("Marshal(Empty): %d bytes, %v", enc.Len(), err)
	}
	var e emptypb.Empty
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x08, 0x01})}, &e); err != nil {
		t.Fatalf("Unmarshal(Empty): %v", err)
	}
	if len(e.ProtoReflect().GetUnknown()) != 2 {
		t.Errorf("unknown fields %x, want 0801", e.ProtoReflect().GetUnknown())
	}
	if _, err := (Codec{}).Marshal("not a message"); err == nil {
		t.Error("Marshal of a string: no error")
	}
	if err := (Codec{}).Unmarshal(nil, new(int)); errors.Is(err, nil) {
		t.Error("Unmarshal into an int: no error")
	}
}
