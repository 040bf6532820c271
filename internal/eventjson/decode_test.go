package eventjson

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// checkUnmarshal asserts that Unmarshal decodes b as protojson does, or
// fails as it does, and reports whether its fast path decoded it.
func checkUnmarshal(t testing.TB, b []byte) (fast bool) {
	t.Helper()
	want := new(eventv1.Event)
	wantErr := protojson.Unmarshal(b, want)
	got := new(eventv1.Event)
	err := Unmarshal(b, got, protojson.UnmarshalOptions{})
	if (err != nil) != (wantErr != nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("Unmarshal(%q): error %v, protojson's %v", b, err, wantErr)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("Unmarshal(%q)\n got %v\nwant %v", b, got, want)
	}
	d := decoder{b: b}
	fast = d.event(new(eventv1.Event))
	if fast && wantErr != nil {
		t.Fatalf("fast path accepted %q, which protojson rejects: %v", b, wantErr)
	}
	return fast
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		json string
		fast bool
	}{
		{`{"type":"TYPE_HELLO","payload":"hello"}`, true},
		{` { "id" : "e-1" , "type" : "TYPE_GOODBYE" , "payload" : { "a" : [ 1 , -2.5e-3 , true , false , null , "x" , { } , [ ] ] } , "data" : "AAEC/w==" , "metadata" : { "k" : "v" , "" : "" } } `, true},
		{"{}", true},
		{`{"payload":{"nested":{"deeper":[[["x"]]]}}}`, true},
		{`{"payload":"quote \" backslash \\ slash \/ controls \b\f\n\r\t"}`, true},
		{`{"payload":"\u00e9"}`, false},
		{`{"payload":"é😀\u2028"}`, false},
		{"{\"payload\":\"é😀\u2028\"}", true},
		{`{"payload":0}`, true},
		{`{"payload":-0}`, true},
		{`{"payload":1e308}`, true},
		{`{"payload":123456789012345678901234567890}`, true},
		{`{"payload":0.1E+2}`, true},
		{`{"type":"TYPE_UNSPECIFIED"}`, true},
		{`{"id":""}`, true},
		{`{"metadata":{}}`, true},
		// Left to protojson: rejected, or not read here.
		{`{"payload":1e400}`, false},
		{`{"payload":01}`, false},
		{`{"payload":1.}`, false},
		{`{"payload":.5}`, false},
		{`{"payload":+1}`, false},
		{`{"payload":1x}`, false},
		{`{"payload":truex}`, false},
		{`{"payload":nul}`, false},
		{`{"payload":NaN}`, false},
		{`{"payload":"Infinity"}`, true},
		{`{"type":1}`, false},
		{`{"type":"TYPE_NOPE"}`, false},
		{`{"type":"type_hello"}`, false},
		{`{"id":null}`, false},
		{`{"id":1}`, false},
		{`{"id":"a","id":"b"}`, false},
		{`{"bogus":1}`, false},
		{`{"time":"2026-11-28T00:00:00Z"}`, false},
		{`{"data":"AAEC"}`, true},
		{`{"data":"AAE"}`, false},
		{`{"data":"AA-_"}`, false},
		{`{"metadata":{"k":"v","k":"w"}}`, false},
		{`{"metadata":{"k":1}}`, false},
		{`{"payload":{"k":1,"k":2}}`, false},
		{`{"type":"TYPE_HELLO"} x`, false},
		{`{"type":"TYPE_HELLO"}{}`, false},
		{`{"type":"TYPE_HELLO",}`, false},
		{`{"type":"TYPE_HELLO"`, false},
		{`[]`, false},
		{`"x"`, false},
		{"{\"id\":\"\xff\"}", false},
		{"{\"id\":\"a\x01\"}", false},
		{`{"id":"a\"}`, false},
		{`{"id":"a\`, false},
		{`{"payload":[1,]}`, false},
		{`{"payload":[1 2]}`, false},
	}
	for _, tt := range tests {
		if fast := checkUnmarshal(t, []byte(tt.json)); fast != tt.fast {
			t.Errorf("%s: fast path taken: %v, want %v", tt.json, fast, tt.fast)
		}
	}
}

func TestUnmarshalDepth(t *testing.T) {
	deep := func(n int) []byte {
		b := []byte(`{"payload":`)
		for range n {
			b = append(b, '[')
		}
		for range n {
			b = append(b, ']')
		}
		return append(b, '}')
	}
	if !checkUnmarshal(t, deep(maxDepth)) {
		t.Errorf("%d nested lists: not read by the fast path", maxDepth)
	}
	if checkUnmarshal(t, deep(maxDepth+2)) {
		t.Errorf("%d nested lists: read by the fast path", maxDepth+2)
	}
}

// FuzzUnmarshal checks Unmarshal against protojson on any input.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"type":"TYPE_HELLO","payload":"hello"}`,
		`{"id":"e-1","type":"TYPE_GOODBYE","payload":{"a":[1,-2.5e-3,true,false,null,"x\n",{},[]]},"data":"AAEC/w==","metadata":{"k":"v"}}`,
		`{"payload":1e308,"metadata":{"":"\\"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkUnmarshal(t, b)
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	body := []byte(`{"type":"TYPE_HELLO","payload":"hello","metadata":{"k":"v"}}`)
	b.Run("eventjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Unmarshal(body, new(eventv1.Event), protojson.UnmarshalOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := protojson.Unmarshal(body, new(eventv1.Event)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
