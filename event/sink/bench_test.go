package sink

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

// Micro-benchmarks of the multiplexer and the router, in-process over
// loopback (allocations include the fake processor's):
//
//	go test ./event/sink -run '^$' -bench . -benchmem
//
// internal/bench has BenchmarkSend (the synchronous path against the
// SDK's processor); `make bench` measures the real binaries.

// BenchmarkRoute measures what routing costs per event: the type's route,
// and the least loaded of its live streams (2 targets × 2 streams).
func BenchmarkRoute(b *testing.B) {
	a, _ := startFake(b, &fakeProcessor{answer: echo})
	c, _ := startFake(b, &fakeProcessor{answer: echo})
	s := startSink(b, Config{Routes: []Route{
		{Type: eventv1.Type_TYPE_HELLO, Targets: []string{a, c}},
		{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{a}},
	}, StreamsPerTarget: 2})
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.routeFor(b.Context(), eventv1.Type_TYPE_HELLO)
		if err != nil || r.pick(nil) == nil {
			b.Fatal("no live stream", err)
		}
	}
}

// BenchmarkStreamIngress measures SinkService.Stream: one client stream
// with up to 64 events in flight, through the sink's callback path and
// relay codec, to a fake echo processor and back.
func BenchmarkStreamIngress(b *testing.B) {
	addr, _ := startFake(b, &fakeProcessor{answer: echo})
	s := startSink(b, Config{Routes: helloRoute(addr)})
	ss, err := serveSink(b, s).Stream(testCtx(b))
	if err != nil {
		b.Fatal(err)
	}
	const window = 64
	slots := make(chan struct{}, window)
	ev := hello("x")
	b.ReportAllocs()
	b.ResetTimer()
	sendErr := make(chan error, 1)
	go func() {
		for i := range b.N {
			slots <- struct{}{}
			ev := &eventv1.Event{Id: fmt.Sprint(i), Type: ev.Type, Payload: ev.Payload}
			if err := ss.Send(&eventv1.StreamRequest{Event: ev}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- ss.CloseSend()
	}()
	for range b.N {
		resp, err := ss.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if c := codes.Code(resp.GetError().GetCode()); c != codes.OK || resp.GetResponse().GetEvent().GetId() != resp.GetId() {
			b.Fatalf("answer %v", resp)
		}
		<-slots
	}
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStreamIngressBatch is BenchmarkStreamIngress with batches both
// ways: the client sends its events 16 to a StreamRequest and reads
// answers in batches (the eventproc-batch header).
func BenchmarkStreamIngressBatch(b *testing.B) {
	addr, _ := startFake(b, &fakeProcessor{answer: echo})
	s := startSink(b, Config{Routes: helloRoute(addr)})
	ctx := metadata.AppendToOutgoingContext(testCtx(b), protocol.BatchHeader, "4194304")
	ss, err := serveSink(b, s).Stream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const window, per = 64, 16
	slots := make(chan struct{}, window)
	ev := hello("x")
	b.ReportAllocs()
	b.ResetTimer()
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; {
			req := new(eventv1.StreamRequest)
			for ; i < b.N && len(req.Batch) < per; i++ {
				slots <- struct{}{}
				ev := &eventv1.Event{Id: fmt.Sprint(i), Type: ev.Type, Payload: ev.Payload}
				req.Batch = append(req.Batch, &eventv1.StreamRequest{Event: ev})
			}
			if err := ss.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- ss.CloseSend()
	}()
	for n := 0; n < b.N; {
		msg, err := ss.Recv()
		if err != nil {
			b.Fatal(err)
		}
		answers := []*eventv1.StreamResponse{msg}
		if len(msg.Batch) > 0 {
			answers = msg.Batch
		}
		for _, resp := range answers {
			if c := codes.Code(resp.GetError().GetCode()); c != codes.OK || resp.GetResponse().GetEvent().GetId() != resp.GetId() {
				b.Fatalf("answer %v", resp)
			}
			<-slots
			n++
		}
	}
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUnarySend measures SinkService.Send over loopback gRPC as
// Register serves it, 16 callers per core, to a fake echo
// processor, with an event as a client would send it: a small JSON object
// as payload and two metadata entries.
func BenchmarkUnarySend(b *testing.B) {
	addr, _ := startFake(b, &fakeProcessor{answer: echo})
	s := startSink(b, Config{Routes: helloRoute(addr)})
	client := serveSink(b, s)
	payload, err := structpb.NewValue(map[string]any{"user": "ada", "action": "login", "attempt": 1})
	if err != nil {
		b.Fatal(err)
	}
	req := &eventv1.SendRequest{Event: &eventv1.Event{
		Type: eventv1.Type_TYPE_HELLO, Payload: payload,
		Metadata: map[string]string{"source": "bench", "region": "eu"},
	}}
	ctx := testCtx(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Send(ctx, req)
			if err != nil {
				b.Error(err)
				return
			}
			if resp.GetEvent().GetPayload().GetStructValue().GetFields()["user"].GetStringValue() != "ada" {
				b.Errorf("answer %v", resp)
				return
			}
		}
	})
}
