package eventjson

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// checkWire asserts that AppendWire writes what protojson writes for the
// event proto.Unmarshal decodes from wire, or fails as they do, and
// reports whether its fast path wrote it.
func checkWire(t testing.TB, wire []byte) (fast bool) {
	t.Helper()
	var want []byte
	ev := new(eventv1.Event)
	wantErr := proto.Unmarshal(wire, ev)
	if wantErr == nil {
		want, wantErr = protojson.MarshalOptions{}.Marshal(ev)
	}
	got, err := AppendWire([]byte("x"), wire)
	if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("AppendWire(%x): error %v, want %v", wire, err, wantErr)
	}
	if wantErr != nil {
		return false
	}
	if g, w := string(got), "x"+compact(t, want); g != w {
		t.Fatalf("AppendWire(%x)\n got %s\nwant %s", wire, g, w)
	}
	_, fast = appendWireEvent(nil, wire)
	return fast
}

// checkEvent checks AppendWire on ev's encodings, plain and deterministic.
func checkEvent(t testing.TB, ev *eventv1.Event) (fast bool) {
	t.Helper()
	fast = true
	for _, o := range []proto.MarshalOptions{{}, {Deterministic: true}} {
		wire, err := o.Marshal(ev)
		if err != nil {
			return false // invalid UTF-8: no sink relays it
		}
		fast = checkWire(t, wire) && fast
	}
	return fast
}

func TestWireMatchesProtojson(t *testing.T) {
	// A nil Struct or ListValue is encoded as an empty one, which the fast
	// path writes.
	encodedEmpty := map[string]bool{"nil struct": true, "nil list": true}
	for _, tt := range matchCases() {
		t.Run(tt.name, func(t *testing.T) {
			if fast := checkEvent(t, tt.ev); fast != (tt.fast || encodedEmpty[tt.name]) {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
		})
	}
}

// TestWireEncodings covers encodings no Go encoder writes but Unmarshal
// reads.
func TestWireEncodings(t *testing.T) {
	tag := protowire.AppendTag
	str := func(b []byte, n protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, n, protowire.BytesType), s)
	}
	msg := func(b []byte, n protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(tag(b, n, protowire.BytesType), m)
	}
	varint := func(b []byte, n protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(b, n, protowire.VarintType), v)
	}
	entry := func(k, v string) []byte { return str(str(nil, 1, k), 2, v) }
	value := func(s string) []byte { return str(nil, valueString, s) }
	tests := []struct {
		name string
		wire []byte
		fast bool
	}{
		{"empty", nil, true},
		{"fields out of order", str(varint(nil, 2, 1), 1, "id"), true},
		{"id twice", str(str(nil, 1, "a"), 1, "b"), true},
		{"type twice", varint(varint(nil, 2, 1), 2, 2), true},
		{"data twice", str(str(nil, 4, "a"), 4, "b"), true},
		{"time twice", msg(msg(nil, 6, varint(nil, 1, 5)), 6, varint(nil, 2, 7)), false},
		{"empty id present", str(nil, 1, ""), true},
		{"zero type present", varint(nil, 2, 0), true},
		{"type of 64 bits", varint(nil, 2, 1<<32|1), true},
		{"negative type", varint(nil, 2, uint64(1<<64-1)), true},
		{"type as bytes", str(nil, 2, "x"), false},
		{"unknown fields", str(varint(str(nil, 1, "a"), 99, 7), 100, "x"), true},
		{"unknown group", protowire.AppendTag(protowire.AppendTag(nil, 9, protowire.StartGroupType), 9, protowire.EndGroupType), true},
		{"metadata unsorted", msg(msg(msg(nil, 5, entry("b", "2")), 5, entry("a", "1")), 5, entry("c", "3")), true},
		{"metadata repeated key", msg(msg(nil, 5, entry("a", "1")), 5, entry("a", "2")), false},
		{"metadata many", func() []byte {
			var b []byte
			for _, k := range strings.Split("q w e r t y u i o p a s d f", " ") {
				b = msg(b, 5, entry(k, k+k))
			}
			return b
		}(), true},
		{"entry without value", msg(nil, 5, str(nil, 1, "k")), true},
		{"entry without key", msg(nil, 5, str(nil, 2, "v")), true},
		{"entry value first", msg(nil, 5, str(str(nil, 2, "v"), 1, "k")), true},
		{"entry key twice", msg(nil, 5, str(str(nil, 1, "k"), 1, "j")), false},
		{"metadata then time", msg(msg(nil, 5, entry("k", "v")), 6, varint(nil, 1, 5)), true},
		{"metadata split", msg(msg(msg(nil, 5, entry("k", "v")), 6, nil), 5, entry("j", "w")), true},
		{"metadata appended, as proc does", msg(msg(msg(str(nil, 1, "id"), 6, varint(nil, 1, 9)), 5, entry("b", "1")), 5, entry("a", "2")), true},
		{"empty payload", msg(nil, 3, nil), false},
		{"payload twice", msg(msg(nil, 3, value("a")), 3, value("b")), false},
		{"two kinds", msg(nil, 3, varint(value("a"), valueBool, 1)), false},
		{"bool of 2", msg(nil, 3, varint(nil, valueBool, 2)), true},
		{"null of 5", msg(nil, 3, varint(nil, valueNull, 5)), true},
		{"empty struct", msg(nil, 3, msg(nil, valueStruct, nil)), true},
		{"empty list", msg(nil, 3, msg(nil, valueList, nil)), true},
		{"struct entry without value", msg(nil, 3, msg(nil, valueStruct, msg(nil, 1, str(nil, 1, "k")))), false},
		{"struct repeated key", msg(nil, 3, msg(nil, valueStruct, msg(msg(nil, 1, msg(str(nil, 1, "k"), 2, value("a"))), 1, msg(str(nil, 1, "k"), 2, value("b"))))), false},
		{"string as varint", msg(nil, 3, varint(nil, valueString, 1)), false},
		{"empty time", msg(nil, 6, nil), true},
		{"time nanos first", msg(nil, 6, varint(varint(nil, 2, 5), 1, 7)), true},
		{"time seconds twice", msg(nil, 6, varint(varint(nil, 1, 5), 1, 7)), false},
		{"time out of range", msg(nil, 6, varint(nil, 1, 1<<40)), false},
		{"nanos negative", msg(nil, 6, varint(nil, 2, uint64(1<<64-1))), false},
		{"invalid UTF-8 id", str(nil, 1, "\xff"), false},
		{"truncated", str(nil, 1, "abc")[:3], false},
		{"field number 0", varint(nil, 0, 1), false},
		{"field number too large", varint(nil, protowire.MaxValidNumber+1, 1), false},
		{"data", str(nil, 4, "\x00\x01\xff"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fast := checkWire(t, tt.wire); fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
		})
	}
}

// FuzzWire checks AppendWire against proto.Unmarshal and protojson on any
// bytes, and on the encodings of generated events.
func FuzzWire(f *testing.F) {
	ev := &eventv1.Event{
		Id: "e-1", Type: 1, Payload: structpb.NewStringValue("hello"),
		Metadata: map[string]string{"processed_by": "vm:9090", "a": "b"},
		Time:     timestamppb.New(timestamppb.Now().AsTime()),
	}
	wire, _ := proto.Marshal(ev)
	f.Add(wire, []byte(nil), "")
	obj, _ := structpb.NewValue(map[string]any{"k": []any{1.0, "x", nil, true, map[string]any{}}})
	wire, _ = proto.Marshal(&eventv1.Event{Payload: obj, Data: []byte("d")})
	f.Add(wire, []byte{5, 1, 2, 4, 3, 0}, "a\x00b\x00c\x00d")
	f.Fuzz(func(t *testing.T, wire, shape []byte, words string) {
		checkWire(t, wire)
		g := &gen{shape: shape, words: strings.Split(words, "\x00")}
		ev := &eventv1.Event{Payload: g.value(0)}
		if len(g.words) > 1 {
			ev.Metadata = map[string]string{}
			for i := 0; i+1 < len(g.words); i += 2 {
				ev.Metadata[g.words[i]] = g.words[i+1]
			}
		}
		checkEvent(t, ev)
	})
}

func BenchmarkAppendWire(b *testing.B) {
	ev := &eventv1.Event{
		Id: "e039509e58f8-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello"),
		Metadata: map[string]string{"processed_by": "vm:9090"},
		Time:     timestamppb.Now(),
	}
	wire, err := proto.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppendWire(make([]byte, 0, 256), wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal+eventjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := new(eventv1.Event)
			if err := proto.Unmarshal(wire, ev); err != nil {
				b.Fatal(err)
			}
			if _, err := MarshalAppend(make([]byte, 0, 256), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal+protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := new(eventv1.Event)
			if err := proto.Unmarshal(wire, ev); err != nil {
				b.Fatal(err)
			}
			if _, err := (protojson.MarshalOptions{}).Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
