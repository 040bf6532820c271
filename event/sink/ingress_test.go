package sink

import (
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// serveSink serves s's SinkService on a loopback port until the test ends
// and returns a client for it, dialed with opts as well.
func serveSink(t *testing.T, s *Sink, opts ...grpc.DialOption) eventv1.SinkServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	eventv1.RegisterSinkServiceServer(srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return eventv1.NewSinkServiceClient(conn)
}

// Many events in flight on one client stream are each answered once, with
// their own id, and one event's error leaves the others alone.
func TestStreamIngress(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	client := serveSink(t, s)
	ctx := testCtx(t)

	ss, err := client.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	sendErr := make(chan error, 1)
	go func() {
		for i := range n {
			ev := hello(fmt.Sprint(i))
			ev.Id = fmt.Sprintf("id-%d", i)
			if i%50 == 7 {
				ev.Type = eventv1.Type_TYPE_GOODBYE // no route
			}
			if err := ss.Send(&eventv1.StreamRequest{Event: ev, Timeout: durationpb.New(testTimeout)}); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- ss.CloseSend()
	}()
	seen := make(map[string]bool, n)
	for range n {
		resp, err := ss.Recv()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(seen), err)
		}
		id := resp.GetId()
		if seen[id] {
			t.Fatalf("answered %s twice", id)
		}
		seen[id] = true
		var i int
		if _, err := fmt.Sscanf(id, "id-%d", &i); err != nil {
			t.Fatalf("answer for unknown id %q", id)
		}
		if i%50 == 7 {
			if got := codes.Code(resp.GetError().GetCode()); got != codes.Unimplemented {
				t.Errorf("%s: code %v, want Unimplemented", id, got)
			}
			continue
		}
		if got, want := resp.GetResponse().GetEvent().GetPayload().GetStringValue(), fmt.Sprint(i); got != want {
			t.Errorf("%s: payload %q, want %q", id, got, want)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Recv(); err == nil {
		t.Error("stream not closed after the last answer")
	}
}

func TestStreamIngressBadTimeout(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	client := serveSink(t, s)
	ss, err := client.Stream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Send(&eventv1.StreamRequest{Event: hello("x"), Timeout: durationpb.New(-1)}); err != nil {
		t.Fatal(err)
	}
	resp, err := ss.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := codes.Code(resp.GetError().GetCode()); got != codes.InvalidArgument {
		t.Errorf("code %v, want InvalidArgument", got)
	}
	_ = ss.CloseSend()
}
