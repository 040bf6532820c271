package sink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fakeProcessor is a ProcessorService whose answers a test scripts. Each
// request is answered from its own goroutine, so answers come back in any
// order; sends are serialised with a mutex.
type fakeProcessor struct {
	eventv1.UnimplementedProcessorServiceServer
	// answer returns the answer to req, or nil to answer nothing. It may
	// block; ctx ends when the stream does.
	answer func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse

	mu      sync.Mutex
	streams []eventv1.ProcessorService_ProcessServer
}

func (f *fakeProcessor) Process(ps eventv1.ProcessorService_ProcessServer) error {
	if err := ps.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	f.mu.Lock()
	f.streams = append(f.streams, ps)
	f.mu.Unlock()
	var sendMu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		req, err := ps.Recv()
		if err != nil {
			return nil
		}
		if req.GetCancel() {
			continue
		}
		wg.Go(func() {
			resp := f.answer(ps.Context(), req)
			if resp == nil {
				return
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = ps.Send(resp)
		})
	}
}

// echo answers every request with its own event.
func echo(_ context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
	return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Reply{Reply: req.GetEvent()}}
}

// startFake serves f on a loopback port until the test ends and returns its
// address and server (Stop it to break the sink's streams).
func startFake(t testing.TB, f eventv1.ProcessorServiceServer) (string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis.Addr().String(), serveFake(t, f, lis)
}

// serveFake serves f on lis until the test ends.
func serveFake(t testing.TB, f eventv1.ProcessorServiceServer, lis net.Listener) *grpc.Server {
	t.Helper()
	srv := grpc.NewServer()
	eventv1.RegisterProcessorServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return srv
}

// runSink builds a sink from cfg and runs it until the test ends, without
// waiting for it to be ready.
func runSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(context.Background())
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s
}

// startSink builds a sink from cfg, runs it until the test ends and waits
// until it is ready.
func startSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s := runSink(t, cfg)
	// Ready, and every stream of every target up, so tests that count
	// streams or spread load see them all.
	waitFor(t, s, func() bool {
		if !s.Ready() {
			return false
		}
		for _, rs := range s.Status() {
			for _, ts := range rs.Targets {
				if ts.LiveStreams < ts.Streams {
					return false
				}
			}
		}
		return true
	})
	return s
}

func hello(payload string) *eventv1.Event {
	return &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue(payload)}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// sendEchoes starts n callers of Sink.Send, each with its own payload,
// and returns a function that waits for them and returns what went wrong:
// an error, another caller's reply, or an outcome other than REPLIED.
func sendEchoes(ctx context.Context, s *Sink, n int) (wait func() []error) {
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprintf("caller-%d", i)
			resp, err := send(s, ctx, hello(want))
			if err != nil {
				errs <- fmt.Errorf("caller %d: %v", i, err)
				return
			}
			if got := resp.GetEvent().GetPayload().GetStringValue(); got != want {
				errs <- fmt.Errorf("caller %d got payload %q, want %q", i, got, want)
			}
			if resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
				errs <- fmt.Errorf("caller %d got outcome %v", i, resp.GetOutcome())
			}
		})
	}
	return func() []error {
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return all
	}
}

// send sends ev through s's in-process entry, Send.
func send(s *Sink, ctx context.Context, ev *eventv1.Event) (*eventv1.SendResponse, error) {
	return s.Send(ctx, &eventv1.SendRequest{Event: ev})
}
