package eventjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// compact removes protojson's random whitespace.
func compact(t testing.TB, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return out.String()
}

// check asserts that Marshal writes what protojson writes for ev, or fails
// as it does, and reports whether the fast path wrote it.
func check(t testing.TB, ev *eventv1.Event) (fast bool) {
	t.Helper()
	want, wantErr := protojson.MarshalOptions{}.Marshal(ev)
	got, err := Marshal(ev)
	if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("Marshal(%v): error %v, protojson's %v", ev, err, wantErr)
	}
	if wantErr != nil {
		return false
	}
	if g, w := string(got), compact(t, want); g != w {
		t.Fatalf("Marshal(%v)\n got %s\nwant %s", ev, g, w)
	}
	// Appending keeps what was there.
	prefix := []byte("prefix:")
	if got, _ := MarshalAppend(prefix, ev); string(got) != "prefix:"+compact(t, want) {
		t.Fatalf("MarshalAppend(%q, %v) = %q", prefix, ev, got)
	}
	_, fast = appendEvent(nil, ev)
	return fast
}

// matchCase is an event and whether the fast path writes it.
type matchCase struct {
	name string
	ev   *eventv1.Event
	fast bool
}

// matchCases are the events every encoder here is checked with.
func matchCases() []matchCase {
	list, _ := structpb.NewList([]any{1.5, "two", true, nil, map[string]any{"k": []any{}}})
	obj, _ := structpb.NewStruct(map[string]any{
		"z": 1e21, "a": 1e-7, "m": math.Copysign(0, -1), "n": 123456789.0, "s": "x\u2028<&>\"\\\x01\x1f\t\n\r\b\f\u00e9\U0001F600\uFFFD",
		"nested": map[string]any{"b": 2.0, "a": 1.0}, "": "empty key",
	})
	return []matchCase{
		{"nil", nil, true},
		{"empty", &eventv1.Event{}, true},
		{"reply", &eventv1.Event{
			Id: "e039509e58f8-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello"),
			Metadata: map[string]string{"processed_by": "vm:9090"},
			Time:     &timestamppb.Timestamp{Seconds: 1795000000, Nanos: 123456789},
		}, true},
		{"every field", &eventv1.Event{
			Id: "id", Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewStructValue(obj), Data: []byte{0, 1, 2, 0xff, 0xfe},
			Metadata: map[string]string{"b": "2", "a": "1", "c\"": "\x00", "é": "ü", "A": "", "9": "x", "aa": "y", "ab": "z", "ba": "w"},
			Time:     &timestamppb.Timestamp{Seconds: -62135596800},
		}, true},
		{"list", &eventv1.Event{Payload: structpb.NewListValue(list)}, true},
		{"null", &eventv1.Event{Payload: structpb.NewNullValue()}, true},
		{"bools", &eventv1.Event{Payload: structpb.NewBoolValue(false)}, true},
		{"unknown type", &eventv1.Event{Type: 42}, true},
		{"negative type", &eventv1.Event{Type: -3}, true},
		{"millis", &eventv1.Event{Time: &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 120_000_000}}, true},
		{"micros", &eventv1.Event{Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000}}, true},
		{"nanos", &eventv1.Event{Time: &timestamppb.Timestamp{Seconds: 0, Nanos: 1}}, true},
		{"zero time", &eventv1.Event{Time: &timestamppb.Timestamp{}}, true},
		{"empty struct", &eventv1.Event{Payload: structpb.NewStructValue(&structpb.Struct{})}, true},
		// protojson's errors and cases left to it.
		{"invalid UTF-8 id", &eventv1.Event{Id: "a\xffb"}, false},
		{"invalid UTF-8 key", &eventv1.Event{Metadata: map[string]string{"\xc3": "x"}}, false},
		{"no kind", &eventv1.Event{Payload: &structpb.Value{}}, false},
		{"NaN", &eventv1.Event{Payload: structpb.NewNumberValue(math.NaN())}, false},
		{"infinity", &eventv1.Event{Payload: structpb.NewNumberValue(math.Inf(-1))}, false},
		{"time too late", &eventv1.Event{Time: &timestamppb.Timestamp{Seconds: 253402300800}}, false},
		{"time too early", &eventv1.Event{Time: &timestamppb.Timestamp{Seconds: -62135596801}}, false},
		{"nanos too big", &eventv1.Event{Time: &timestamppb.Timestamp{Nanos: 1e9}}, false},
		{"negative nanos", &eventv1.Event{Time: &timestamppb.Timestamp{Nanos: -1}}, false},
		{"nil struct", &eventv1.Event{Payload: &structpb.Value{Kind: &structpb.Value_StructValue{}}}, false},
		{"nil list", &eventv1.Event{Payload: &structpb.Value{Kind: &structpb.Value_ListValue{}}}, false},
		{"too deep", &eventv1.Event{Payload: deep(maxDepth + 2)}, false},
	}
}

func TestMatchesProtojson(t *testing.T) {
	for _, tt := range matchCases() {
		t.Run(tt.name, func(t *testing.T) {
			if fast := check(t, tt.ev); fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
		})
	}
}

// deep returns a payload of n nested lists.
func deep(n int) *structpb.Value {
	v := structpb.NewNullValue()
	for range n {
		v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	return v
}

func TestNumbers(t *testing.T) {
	for _, n := range []float64{
		0, 1, -1, 0.1, 1e20, 1e21, 123e-7, 1e-6, 9.99999e-7, 1e-7, 5e-324, math.MaxFloat64,
		-1e300, 1 << 53, 1<<53 + 1, 0.000001, 123456789012345678, 1.7976931348623157e308, 3.14159,
	} {
		check(t, &eventv1.Event{Payload: structpb.NewNumberValue(n)})
	}
}

// FuzzEquivalence builds events from the fuzzer's input and checks that
// Marshal writes exactly what protojson writes.
func FuzzEquivalence(f *testing.F) {
	f.Add("e-1", int32(1), []byte{5, 0, 1, 2}, []byte("data"), "key\x00value\x00k2\x00\u2028", int64(1795000000), int32(5e8))
	f.Add("", int32(0), []byte{4, 4, 3, 1, 3, 2}, []byte(nil), "", int64(0), int32(0))
	f.Add("\xff", int32(7), []byte{3, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, []byte{0}, "\"\\\x01", int64(-62135596801), int32(-1))
	f.Fuzz(func(t *testing.T, id string, typ int32, shape, data []byte, words string, secs int64, nanos int32) {
		g := &gen{shape: shape, words: strings.Split(words, "\x00")}
		ev := &eventv1.Event{Id: id, Type: eventv1.Type(typ), Data: data}
		if len(shape) > 0 {
			ev.Payload = g.value(0)
		}
		if len(g.words) > 1 {
			ev.Metadata = map[string]string{}
			for i := 0; i+1 < len(g.words); i += 2 {
				ev.Metadata[g.words[i]] = g.words[i+1]
			}
		}
		if secs != 0 || nanos != 0 {
			ev.Time = &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
		}
		check(t, ev)
	})
}

// gen builds payload values from the fuzzer's bytes.
type gen struct {
	shape []byte
	words []string
	next  int
}

func (g *gen) byte() byte {
	if len(g.shape) == 0 {
		return 0
	}
	b := g.shape[0]
	g.shape = g.shape[1:]
	return b
}

func (g *gen) word() string {
	g.next++
	return g.words[g.next%len(g.words)]
}

func (g *gen) value(depth int) *structpb.Value {
	switch g.byte() % 7 {
	case 0:
		return structpb.NewNullValue()
	case 1:
		return structpb.NewBoolValue(g.byte()%2 == 0)
	case 2:
		return structpb.NewStringValue(g.word())
	case 3:
		var b [8]byte
		for i := range b {
			b[i] = g.byte()
		}
		return structpb.NewNumberValue(math.Float64frombits(binary.LittleEndian.Uint64(b[:])))
	case 4:
		l := &structpb.ListValue{}
		for n := g.byte() % 4; n > 0 && depth < 8; n-- {
			l.Values = append(l.Values, g.value(depth+1))
		}
		return structpb.NewListValue(l)
	case 5:
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for n := g.byte() % 4; n > 0 && depth < 8; n-- {
			s.Fields[g.word()] = g.value(depth + 1)
		}
		return structpb.NewStructValue(s)
	default:
		return &structpb.Value{} // no kind
	}
}

func BenchmarkMarshal(b *testing.B) {
	ev := &eventv1.Event{
		Id: "e039509e58f8-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello"),
		Metadata: map[string]string{"processed_by": "vm:9090"},
		Time:     timestamppb.Now(),
	}
	b.Run("eventjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (protojson.MarshalOptions{}).Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
