package processor_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
)

// testTimeout bounds every test.
const testTimeout = 20 * time.Second

// procStream is the sink's side of a Process stream.
type procStream = grpc.BidiStreamingClient[eventv1.ProcessRequest, eventv1.ProcessResponse]

// testCtx returns a context that ends with the test or after testTimeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// harness is a processor served on 127.0.0.1:0 and a client dialed to it.
type harness struct {
	srv    *processor.Server
	conn   *grpc.ClientConn
	client eventv1.ProcessorServiceClient
	stop   context.CancelFunc // makes Serve shut down
	served chan error         // Serve's result
}

// quietLogger discards everything.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start serves h with opts until the test ends (or h.shutdown).
func start(t *testing.T, h processor.Handler, opts processor.Options) *harness {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := processor.NewServer(h, opts)
	serveCtx, stop := context.WithCancel(context.Background())
	hs := &harness{srv: srv, stop: stop, served: make(chan error, 1)}
	go func() { hs.served <- srv.Serve(serveCtx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	hs.conn = conn
	hs.client = eventv1.NewProcessorServiceClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		if err := hs.shutdown(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return hs
}

// shutdown cancels Serve's context and returns Serve's result; it may be
// called more than once.
func (h *harness) shutdown() error {
	h.stop()
	select {
	case err := <-h.served:
		h.served <- err
		return err
	case <-time.After(testTimeout):
		return context.DeadlineExceeded
	}
}

// open opens a Process stream as sink sinkID ("" for none) and waits for
// its header, after which the processor counts it as live.
func (h *harness) open(t *testing.T, ctx context.Context, sinkID string) procStream {
	t.Helper()
	if sinkID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, processor.SinkIDMetadataKey, sinkID)
	}
	st, err := h.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatalf("Header: %v", err)
	}
	return st
}

// request builds a request for event eventID; a zero timeout means none.
func request(id uint64, eventID string, timeout time.Duration) *eventv1.ProcessRequest {
	req := &eventv1.ProcessRequest{Id: id, Event: &eventv1.Event{Id: eventID, Type: eventv1.Type_TYPE_HELLO}}
	if timeout != 0 {
		req.Timeout = durationpb.New(timeout)
	}
	return req
}

// send sends req or fails the test.
func send(t *testing.T, st procStream, req *eventv1.ProcessRequest) {
	t.Helper()
	if err := st.Send(req); err != nil {
		t.Fatalf("Send(%d): %v", req.GetId(), err)
	}
}

// recv receives one message or fails the test.
func recv(t *testing.T, st procStream) *eventv1.ProcessResponse {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return resp
}

// recvAnswers receives n answers (publishes are not expected) by id.
func recvAnswers(t *testing.T, st procStream, n int) map[uint64]*eventv1.ProcessResponse {
	t.Helper()
	got := make(map[uint64]*eventv1.ProcessResponse, n)
	for len(got) < n {
		resp := recv(t, st)
		if resp.GetPublish() != nil {
			t.Fatalf("unexpected publish %v", resp)
		}
		if _, dup := got[resp.GetId()]; dup {
			t.Fatalf("second answer for id %d: %v", resp.GetId(), resp)
		}
		got[resp.GetId()] = resp
	}
	return got
}

// errorCode returns the code of an error answer, or OK for other answers.
func errorCode(resp *eventv1.ProcessResponse) codes.Code {
	if e := resp.GetError(); e != nil {
		return codes.Code(e.GetCode())
	}
	return codes.OK
}

// closeAndExpectEnd half-closes st and expects the stream to end cleanly.
func closeAndExpectEnd(t *testing.T, st procStream) {
	t.Helper()
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: Recv = %v, %v; want EOF", resp, err)
	}
}

// wait receives from ch or fails the test when ctx ends first.
func wait[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		panic("unreachable")
	}
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
