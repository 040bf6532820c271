package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestMaxStreamsPerConn: with --max-streams-per-conn 2, a connection that
// holds two calls open gets no third until one ends, while another
// connection is served as usual.
func TestMaxStreamsPerConn(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	p := startProcessor(t)
	s := startSink(t, "--route", "hello="+p.addr, "--max-streams-per-conn", "2")
	s.waitRoute(ctx, "TYPE_HELLO", true)
	client := s.sinkClient()

	// Two Stream calls, each known to be open: an event went through.
	var streams []eventv1.SinkService_StreamClient
	for i := range 2 {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := client.Stream(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&eventv1.StreamRequest{Event: hello()}); err != nil {
			t.Fatal(err)
		}
		if resp, err := st.Recv(); err != nil || resp.GetResponse().GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
			t.Fatalf("stream %d: %v, %v", i, resp, err)
		}
		streams = append(streams, st)
	}

	// A third call on the same connection waits for a free stream.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := client.Send(short, &eventv1.SendRequest{Event: hello()})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third call on a full connection: %v, want DEADLINE_EXCEEDED", err)
	}

	// Another connection is not held up.
	other, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := eventv1.NewSinkServiceClient(other).Send(ctx, &eventv1.SendRequest{Event: hello()}); err != nil {
		t.Fatalf("call on another connection: %v", err)
	}

	// Once a stream ends, the waiting call goes through.
	if err := streams[0].CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := streams[0].Recv(); err == nil {
		t.Fatal("stream 0 did not end after CloseSend")
	}
	if _, err := client.Send(ctx, &eventv1.SendRequest{Event: hello()}); err != nil {
		t.Fatalf("call after a stream ended: %v", err)
	}
}
