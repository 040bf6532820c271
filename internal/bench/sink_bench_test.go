package main

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Micro-benchmarks of the sink's hot path, in-process. Run them with
//
//	go test ./internal/bench -run '^$' -bench . -benchmem
//
// Allocation counts include the in-process echo processor's, which runs in
// the same process; `bench profile` measures the sink alone.

// startEcho serves an echo processor on a loopback port until the
// benchmark ends and returns its address.
func startEcho(b *testing.B) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := processor.NewServer(processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		return ev, nil
	}), processor.Options{ShutdownGrace: time.Second, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return lis.Addr().String()
}

// startSink runs a sink routing TYPE_HELLO to an in-process echo
// processor over real loopback streams, ready to dispatch.
func startSink(b *testing.B) *sink.Sink {
	b.Helper()
	sk, err := sink.New(sink.Config{
		Routes: []sink.Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{startEcho(b)}}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sk.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := sk.WaitReady(wctx); err != nil {
		b.Fatal(err)
	}
	return sk
}

// BenchmarkSend measures the in-process Sink.Send through the multiplexer over
// real loopback streams to an echo processor, with 2×GOMAXPROCS and
// 32×GOMAXPROCS concurrent callers.
func BenchmarkSend(b *testing.B) {
	for _, par := range []int{1, 32} {
		b.Run(map[int]string{1: "callers=GOMAXPROCS", 32: "callers=32xGOMAXPROCS"}[par], func(b *testing.B) {
			sk := startSink(b)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := sk.Send(ctx, &eventv1.SendRequest{Event: helloEvent()})
					if err != nil {
						b.Error(err)
						return
					}
					if err := checkEcho(resp.GetEvent()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRouterLookup compares the sink's router representation (a map
// from event type to route, looked up once per event) with a slice indexed
// by the type's number. The router itself is unexported; this measures the
// two representations with the same key and value types.
func BenchmarkRouterLookup(b *testing.B) {
	type route struct{ name string }
	byMap := map[eventv1.Type]*route{}
	bySlice := make([]*route, len(eventv1.Type_name))
	for n := range eventv1.Type_name {
		if n != 0 {
			r := &route{name: eventv1.Type(n).String()}
			byMap[eventv1.Type(n)] = r
			bySlice[n] = r
		}
	}
	keys := []eventv1.Type{eventv1.Type_TYPE_HELLO, eventv1.Type_TYPE_GOODBYE}
	var sink *route
	b.Run("map", func(b *testing.B) {
		i := 0
		for b.Loop() {
			sink = byMap[keys[i&1]]
			i++
		}
	})
	b.Run("slice", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if t := keys[i&1]; int(t) < len(bySlice) {
				sink = bySlice[t]
			}
			i++
		}
	})
	_ = sink
}
