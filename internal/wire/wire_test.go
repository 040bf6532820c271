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
