package wire

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/wire/wiretest"
)

// Check accepts exactly what proto.Unmarshal accepts, for every message.
func FuzzCheck(f *testing.F) {
	wiretest.Seeds(f)
	f.Fuzz(func(t *testing.T, i byte, b []byte) {
		m := wiretest.Message(i)
		err := Check(b, m.ProtoReflect().Descriptor())
		werr := proto.Unmarshal(b, m)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%T: Check: %v; proto.Unmarshal: %v", m, err, werr)
		}
		// CheckStrict fails where Check does, and more only for a known
		// field of the wrong wire type.
		serr := CheckStrict(b, m.ProtoReflect().Descriptor())
		if err != nil && serr == nil || serr != nil && err == nil && !errors.Is(serr, ErrWireType) {
			t.Fatalf("%T: CheckStrict: %v; Check: %v", m, serr, err)
		}
	})
}

func TestCheckDepth(t *testing.T) {
	// A Value nested past protobuf's recursion limit: list_value (6) →
	// values (1) → list_value …
	var b []byte
	for range MaxDepth/2 + 10 {
		inner := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
		b = protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), inner)
	}
	ev := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), b)
	err := Check(ev, (&eventv1.Event{}).ProtoReflect().Descriptor())
	if !errors.Is(err, ErrDepth) {
		t.Fatalf("Check: %v, want %v", err, ErrDepth)
	}
	if werr := proto.Unmarshal(ev, new(eventv1.Event)); werr == nil {
		t.Fatal("proto.Unmarshal accepts it")
	}
}

func TestCheckStrict(t *testing.T) {
	md := (&eventv1.Event{}).ProtoReflect().Descriptor()
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"id as a varint", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 8)},
		{"type as bytes", protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), nil)},
		{"metadata key as a varint", protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 2))},
	} {
		if err := Check(tt.b, md); err != nil {
			t.Errorf("%s: Check: %v", tt.name, err)
		}
		if err := proto.Unmarshal(tt.b, new(eventv1.Event)); err != nil {
			t.Errorf("%s: proto.Unmarshal: %v", tt.name, err)
		}
		if err := CheckStrict(tt.b, md); !errors.Is(err, ErrWireType) {
			t.Errorf("%s: CheckStrict: %v, want %v", tt.name, err, ErrWireType)
		}
	}
	// Packed and unpacked repeated enums are both right.
	sub := (&eventv1.SubscribeRequest{}).ProtoReflect().Descriptor()
	packed := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{1, 2})
	unpacked := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	if err := CheckStrict(append(packed, unpacked...), sub); err != nil {
		t.Errorf("repeated enum: %v", err)
	}
}

// CheckAt(b, md, depth) says whether b decodes depth levels down: here an
// event in a batch entry of a ProcessRequest (depth 2), around the limit.
func TestCheckAt(t *testing.T) {
	eventMD := (&eventv1.Event{}).ProtoReflect().Descriptor()
	for n := MaxDepth/2 - 6; n <= MaxDepth/2+1; n++ {
		var b []byte // n lists, one inside the other
		for range n {
			inner := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
			b = protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), inner)
		}
		ev := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), b)
		entry := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), ev)    // ProcessRequest.event
		batch := protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), entry) // ProcessRequest.batch
		werr := proto.Unmarshal(batch, new(eventv1.ProcessRequest))
		err := CheckAt(ev, eventMD, 2)
		if (err == nil) != (werr == nil) {
			t.Errorf("%d lists: CheckAt(2): %v; proto.Unmarshal of the batch: %v", n, err, werr)
		}
		if top, werr := Check(ev, eventMD), proto.Unmarshal(ev, new(eventv1.Event)); (top == nil) != (werr == nil) {
			t.Errorf("%d lists: Check: %v; proto.Unmarshal: %v", n, top, werr)
		}
	}
}
