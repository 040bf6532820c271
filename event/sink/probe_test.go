package sink

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// freezable is a processor whose freeze makes it stop answering anything,
// health checks included, while its connections stay open — as a SIGSTOP'd
// process or a cut network looks to the sink.
type freezable struct {
	eventv1.UnimplementedProcessorServiceServer
	healthpb.UnimplementedHealthServer
	frozen atomic.Bool
	served atomic.Int64

	mu   sync.Mutex
	gate chan struct{} // open (closed channel) unless frozen
}

func newFreezable() *freezable {
	f := &freezable{gate: make(chan struct{})}
	close(f.gate)
	return f
}

func (f *freezable) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen.Store(true)
	f.gate = make(chan struct{})
}

func (f *freezable) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen.Store(false)
	close(f.gate)
}

// wait blocks while the processor is frozen.
func (f *freezable) wait(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *freezable) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (f *freezable) Process(ps eventv1.ProcessorService_ProcessServer) error {
	if err := f.wait(ps.Context()); err != nil {
		return nil
	}
	if err := ps.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		req, err := ps.Recv()
		if err != nil {
			return nil
		}
		if f.frozen.Load() || req.GetCancel() {
			continue // frozen: never answers
		}
		f.served.Add(1)
		if err := ps.Send(echo(ps.Context(), req)); err != nil {
			return nil
		}
	}
}

// A processor that stops answering without closing its connection is
// noticed by the health probe: its streams close, what it held gets
// UNAVAILABLE, and traffic moves to the other replica.
func TestFrozenProcessorNoticed(t *testing.T) {
	var addrs []string
	procs := []*freezable{newFreezable(), newFreezable()}
	for _, f := range procs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		eventv1.RegisterProcessorServiceServer(srv, f)
		healthpb.RegisterHealthServer(srv, f)
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(lis) }()
		t.Cleanup(func() { srv.Stop(); <-done })
		addrs = append(addrs, lis.Addr().String())
	}
	s := startSink(t, Config{
		Routes:           helloRoute(addrs...),
		Keepalive:        20 * time.Millisecond,
		KeepaliveTimeout: 50 * time.Millisecond,
		StreamsPerTarget: 1,
	})
	waitAllLive(t, s)
	ctx := testCtx(t)

	procs[0].freeze()
	// Requests that land on the frozen replica before the probe notices
	// get UNAVAILABLE (it may have seen them), never a hang to the deadline.
	for i := 0; s.Status()[0].Targets[0].LiveStreams > 0; i++ {
		_, err := send(s, ctx, hello("during"))
		if c := codesOf(err); c != codes.OK && c != codes.Unavailable {
			t.Fatalf("request %d during the freeze: %v, want OK or UNAVAILABLE", i, err)
		}
	}
	before := procs[1].served.Load()
	for range 20 {
		if _, err := send(s, ctx, hello("after")); err != nil {
			t.Fatalf("after the frozen replica was noticed: %v", err)
		}
	}
	if got := procs[1].served.Load() - before; got != 20 {
		t.Errorf("healthy replica served %d of 20", got)
	}

	procs[0].thaw()
	waitAllLive(t, s) // thawed: used again without a sink restart
}

func codesOf(err error) codes.Code { return status.Code(err) }
