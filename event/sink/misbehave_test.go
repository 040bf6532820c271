package sink

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// A reply twice for the same id reaches its caller once; the duplicate is
// dropped and the next caller gets its own reply.
func TestDuplicateReplyDropped(t *testing.T) {
	f := &fakeProcessor{}
	f.answer = func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		f.mu.Lock()
		ps := f.streams[0]
		f.mu.Unlock()
		// One request at a time in this test, so this Send cannot race.
		_ = ps.Send(echo(ctx, req))
		return echo(ctx, req) // the duplicate
	}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1})
	ctx := testCtx(t)
	// Each round trip also flushes the previous duplicate through the
	// sink's reader, so the drops become visible as requests go on.
	for i := 0; s.Stats().DroppedReplies < 2; i++ {
		if i == 100 {
			t.Fatalf("after %d requests only %d duplicates dropped", i, s.Stats().DroppedReplies)
		}
		want := fmt.Sprint("req-", i)
		resp, err := send(s, ctx, hello(want))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetEvent().GetPayload().GetStringValue(); got != want {
			t.Fatalf("got %q, want %q: a duplicate reached the wrong caller", got, want)
		}
	}
}

// A reply larger than the sink accepts resets that stream only: its caller
// gets UNAVAILABLE, the sink reconnects, and later events work.
func TestOversizedReplyResetsStream(t *testing.T) {
	var big atomic.Bool
	big.Store(true)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		resp := echo(ctx, req)
		if big.Swap(false) {
			resp.GetReply().Payload = structpb.NewStringValue(strings.Repeat("x", 64<<10))
		}
		return resp
	}}
	addr, _ := startFake(t, f)
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1, MaxMessageBytes: 16 << 10})
	ctx := testCtx(t)
	_, err := send(s, ctx, hello("first"))
	wantCode(t, err, codes.Unavailable)
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := send(s, ctx, hello("second")); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	if s.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
}

// rawCodec sends []byte as is, so a test server can send garbage.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

// A processor that sends bytes that are not a ProcessResponse cannot crash
// the sink: the stream is reset and its caller answered UNAVAILABLE.
func TestGarbageFromProcessor(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		if err := ss.SendHeader(metadata.MD{}); err != nil {
			return err
		}
		var in []byte
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		if err := ss.SendMsg([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}); err != nil {
			return err
		}
		<-ss.Context().Done()
		return nil
	}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	s := startSink(t, Config{Routes: helloRoute(lis.Addr().String()), StreamsPerTarget: 1})
	_, err = send(s, testCtx(t), hello("x"))
	wantCode(t, err, codes.Unavailable)
}
