package processor_test

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkProcess drives one real Process stream over loopback the way the
// sink does: a raw client keeps 64 requests in flight on the stream (one
// sending goroutine, one receiving), each request with a timeout, and an
// echo handler answers them. ns/op, cpu-ns/op (CPU time of the whole
// process) and allocs/op are per request and count the client's side too:
// client and server share the process.
func BenchmarkProcess(b *testing.B) {
	for _, bc := range []struct {
		name   string
		trace  bool
		inline bool
	}{
		{"plain", false, false},
		{"traceparent", true, false},
		// The echo as an Inliner: handlers run on the receiving goroutine.
		{"inline", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h processor.Handler = processor.HandlerFunc(echo)
			if bc.inline {
				h = inlined{h, always}
			}
			srv := processor.NewServer(h, processor.Options{Logger: quietLogger()})
			benchmarkProcess(b, srv.Serve, 64, bc.trace)
		})
	}
	// The floor: the same client against a bare ProcessorService that
	// answers each request from its receiving goroutine, without the SDK
	// (as internal/bench's stream-echo).
	b.Run("reference", func(b *testing.B) {
		benchmarkProcess(b, func(ctx context.Context, lis net.Listener) error {
			gs := grpc.NewServer()
			eventv1.RegisterProcessorServiceServer(gs, referenceEcho{})
			stop := context.AfterFunc(ctx, gs.Stop)
			defer stop()
			if err := gs.Serve(lis); err != grpc.ErrServerStopped {
				return err
			}
			return nil
		}, 64, false)
	})
}

// referenceEcho answers every request on its stream, in order, with its
// event, from the goroutine that receives (after the header, which the
// client waits for as the sink does).
type referenceEcho struct {
	eventv1.UnimplementedProcessorServiceServer
}

func (referenceEcho) Process(ps grpc.BidiStreamingServer[eventv1.ProcessRequest, eventv1.ProcessResponse]) error {
	if err := ps.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		req, err := ps.Recv()
		if err != nil {
			return nil
		}
		if err := ps.Send(&eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Reply{Reply: req.GetEvent()}}); err != nil {
			return err
		}
	}
}

// benchmarkProcess runs the benchmark against the server that serve runs
// on a listener until its context is done.
func benchmarkProcess(b *testing.B, serve func(context.Context, net.Listener) error, inFlight int, withTrace bool) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(serveCtx, lis) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := eventv1.NewProcessorServiceClient(conn).Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		b.Fatal(err)
	}

	// One request message, reused: Send encodes it before returning.
	req := &eventv1.ProcessRequest{
		Event: &eventv1.Event{
			Id:      "0123456789abcdef",
			Type:    eventv1.Type_TYPE_HELLO,
			Payload: structpb.NewStringValue("hello"),
			Time:    timestamppb.Now(),
		},
		Timeout: durationpb.New(5 * time.Second),
	}
	if withTrace {
		req.TraceContext = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}
	slots := make(chan struct{}, inFlight)
	recvErr := make(chan error, 1)
	start := make(chan int)
	go func() {
		for n := range start {
			for range n {
				resp, err := st.Recv()
				if err == nil && resp.GetReply() == nil {
					err = errNoReply
				}
				if err != nil {
					recvErr <- err
					return
				}
				<-slots
			}
			recvErr <- nil
		}
	}()
	run := func(n int) {
		start <- n
		for i := range n {
			select {
			case slots <- struct{}{}:
			case err := <-recvErr:
				b.Fatalf("Recv: %v", err)
			}
			req.Id = uint64(i + 1)
			if err := st.Send(req); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-recvErr; err != nil {
			b.Fatal(err)
		}
	}
	run(1000) // warm up: connections, worker goroutines, buffers
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	// The machine is shared: CPU time per request moves less with other
	// load than wall time does.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	close(start)
	_ = st.CloseSend()
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errNoReply = benchError("answer is not a reply")
