package client

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testCtx is a context that ends with the test, or after a minute.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// listen returns a loopback listener closed when the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// dial returns a connection to addr, closed when the test ends.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newClient returns a Client on conn, closed when the test ends.
func newClient(t testing.TB, conn grpc.ClientConnInterface, opts Options) *Client {
	t.Helper()
	c := New(conn, opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// messages records what a sink received on its Stream calls: for every
// message, how many events it held.
type messages struct {
	mu     sync.Mutex
	events []int
}

func (m *messages) add(n int) {
	m.mu.Lock()
	m.events = append(m.events, n)
	m.mu.Unlock()
}

func (m *messages) get() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.events...)
}

// interceptor records the messages of every Stream call in m.
func (m *messages) interceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &countingStream{ServerStream: ss, m: m})
	}
}

type countingStream struct {
	grpc.ServerStream
	m *messages
}

func (s *countingStream) RecvMsg(v any) error {
	err := s.ServerStream.RecvMsg(v)
	if err != nil {
		return err
	}
	// The sink reads requests into an envelope of its own
	// (internal/relay/v1): read that as the StreamRequest it is.
	b, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return err
	}
	req := new(eventv1.StreamRequest)
	if err := proto.Unmarshal(b, req); err != nil {
		return err
	}
	if n := len(req.GetBatch()); n > 0 {
		s.m.add(n)
	} else {
		s.m.add(1)
	}
	return nil
}

// env is a real sink routing TYPE_HELLO to a real processor running
// handler, both on loopback ports, until the test ends.
type env struct {
	addr string // the sink's gRPC address
	conn *grpc.ClientConn
	msgs *messages
}

func startEnv(t testing.TB, handler processor.HandlerFunc) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	plis := listen(t)
	psrv := processor.NewServer(handler, processor.Options{Logger: discard(), ShutdownGrace: time.Second})
	wg.Go(func() { _ = psrv.Serve(ctx, plis) })

	s, err := sink.New(sink.Config{
		Routes: []sink.Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{plis.Addr().String()}}},
		Logger: discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = s.Run(ctx) })
	t.Cleanup(s.Close)
	if err := s.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	e := &env{msgs: &messages{}}
	slis := listen(t)
	srv := grpc.NewServer(grpc.ChainStreamInterceptor(e.msgs.interceptor()))
	s.Register(srv)
	wg.Go(func() { _ = srv.Serve(slis) })
	t.Cleanup(srv.Stop)
	e.addr = slis.Addr().String()
	e.conn = dial(t, e.addr)
	return e
}

// echo is a processor handler that replies with the event itself.
func echo(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) { return ev, nil }

// fakeSink is a SinkService whose Stream calls a test scripts: the n-th
// call (from 0) runs stream(n, ss).
type fakeSink struct {
	eventv1.UnimplementedSinkServiceServer
	stream func(n int, ss eventv1.SinkService_StreamServer) error

	mu    sync.Mutex
	calls int
}

func (f *fakeSink) Stream(ss eventv1.SinkService_StreamServer) error {
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.mu.Unlock()
	return f.stream(n, ss)
}

func (f *fakeSink) streams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// serveFake serves f on a loopback port until the test ends and returns a
// connection to it.
func serveFake(t testing.TB, f *fakeSink) *grpc.ClientConn {
	t.Helper()
	lis := listen(t)
	srv := grpc.NewServer()
	eventv1.RegisterSinkServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn := dial(t, lis.Addr().String())
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return conn
}

// events returns the events of a StreamRequest, batched or not.
func events(req *eventv1.StreamRequest) []*eventv1.StreamRequest {
	if len(req.GetBatch()) > 0 {
		return req.GetBatch()
	}
	return []*eventv1.StreamRequest{req}
}

// echoed is the StreamResponse echoing req's event.
func echoed(req *eventv1.StreamRequest) *eventv1.StreamResponse {
	return &eventv1.StreamResponse{Id: req.GetEvent().GetId(), Result: &eventv1.StreamResponse_Response{
		Response: &eventv1.SendResponse{Event: req.GetEvent(), Outcome: eventv1.Outcome_OUTCOME_REPLIED},
	}}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
