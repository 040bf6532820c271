package main

import (
	"strings"
	"testing"
	"time"
)

const tracesFixture = `File: bench
Type: cpu
Duration: 10s, Total samples = 80ms (0.8%)
-----------+-------------------------------------------------------
      10ms   internal/runtime/maps.(*Map).getWithoutKeySmallFastStr
             runtime.mapaccess1_faststr
             github.com/grpc-ecosystem/grpc-gateway/v2/runtime.MarshalerForRequest
             net/http.(*conn).serve
-----------+-------------------------------------------------------
      20ms   google.golang.org/protobuf/internal/order.RangeEntries
             google.golang.org/protobuf/encoding/protojson.encoder.marshalMap
             github.com/grpc-ecosystem/grpc-gateway/v2/runtime.(*JSONPb).Marshal
-----------+-------------------------------------------------------
      10ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             google.golang.org/grpc/internal/transport.(*loopyWriter).run
-----------+-------------------------------------------------------
      10ms   runtime.nextFreeFast (inline)
             runtime.mallocgc
             github.com/eventproc/eventproc/event/sink.(*stream).do
-----------+-------------------------------------------------------
      10ms   sync.(*Mutex).Lock
             github.com/eventproc/eventproc/event/sink.(*stream).register
-----------+-------------------------------------------------------
      10ms   github.com/eventproc/eventproc/event/v1.(*Event).UnmarshalVT
             github.com/eventproc/eventproc/internal/vtcodec.Unmarshal
             google.golang.org/grpc.recvAndDecompress
-----------+-------------------------------------------------------
      10ms   github.com/eventproc/eventproc/internal/wire.(*plan).check
             github.com/eventproc/eventproc/event/sink.(*frame).parseDepth
-----------+-------------------------------------------------------
`

func TestParseTraces(t *testing.T) {
	got := parseTraces(tracesFixture)
	if len(got) != 7 {
		t.Fatalf("parsed %d samples, want 7", len(got))
	}
	if got[1].value != 20*time.Millisecond || len(got[1].frames) != 3 {
		t.Errorf("sample 1 = %v with %d frames, want 20ms with 3", got[1].value, len(got[1].frames))
	}
	if got[2].frames[0] != "internal/runtime/syscall/linux.Syscall6" {
		t.Errorf("sample 2 leaf = %q", got[2].frames[0])
	}
}

func TestClassify(t *testing.T) {
	want := []string{grpGateway, grpJSON, grpSyscall, grpAlloc, grpSink, grpProto, grpProto}
	for i, s := range parseTraces(tracesFixture) {
		if got := classify(s.frames); got != want[i] {
			t.Errorf("sample %d (%s) = %q, want %q", i, s.frames[0], got, want[i])
		}
	}
}

func TestBreakdownTotal(t *testing.T) {
	var b strings.Builder
	breakdown(tracesFixture, 10).text(&b)
	if !strings.Contains(b.String(), "total") || !strings.Contains(b.String(), "0.08s") {
		t.Errorf("breakdown misses the total:\n%s", b.String())
	}
}
