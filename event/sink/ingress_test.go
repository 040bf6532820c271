package sink

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// serveSink serves s's SinkService on a loopback port until the test ends
// and returns a client for it, dialed with opts as well.
func serveSink(t testing.TB, s *Sink, opts ...grpc.DialOption) eventv1.SinkServiceClient {
	t.Helper()
	return serveSinkWith(t, s, nil, opts...)
}

// serveSinkWith is serveSink with options for the server, by default
// those of eventproc's: internal/vtcodec as the codec.
func serveSinkWith(t testing.TB, s *Sink, srvOpts []grpc.ServerOption, opts ...grpc.DialOption) eventv1.SinkServiceClient {
	t.Helper()
	return eventv1.NewSinkServiceClient(serveSinkConn(t, s, srvOpts, opts...))
}

// serveSinkConn is serveSinkWith, returning the connection.
func serveSinkConn(t testing.TB, s *Sink, srvOpts []grpc.ServerOption, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srvOpts == nil {
		// The codec eventproc registers as gRPC's proto codec.
		srvOpts = []grpc.ServerOption{grpc.ForceServerCodecV2(vtcodec.Codec{})}
	}
	srv := grpc.NewServer(srvOpts...)
	s.Register(srv)
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
	return conn
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

// echoStream opens a SinkService.Stream to a sink routing TYPE_HELLO to
// an echoing fake processor.
func echoStream(t *testing.T) eventv1.SinkService_StreamClient {
	t.Helper()
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ss, err := serveSink(t, s).Stream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func TestStreamIngressBadTimeout(t *testing.T) {
	ss := echoStream(t)
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

// sendPaths are the ways a client's event reaches the sink: the in-process
// call (reply decoded), and the two gRPC methods (reply relayed).
var sendPaths = []struct {
	name   string
	sender func(t *testing.T, s *Sink) func(*eventv1.Event) (*eventv1.SendResponse, error)
}{
	{"in-process Send", func(t *testing.T, s *Sink) func(*eventv1.Event) (*eventv1.SendResponse, error) {
		ctx := testCtx(t)
		return func(ev *eventv1.Event) (*eventv1.SendResponse, error) { return send(s, ctx, ev) }
	}},
	{"Send", func(t *testing.T, s *Sink) func(*eventv1.Event) (*eventv1.SendResponse, error) {
		ctx, client := testCtx(t), serveSink(t, s)
		return func(ev *eventv1.Event) (*eventv1.SendResponse, error) {
			return client.Send(ctx, &eventv1.SendRequest{Event: ev})
		}
	}},
	{"Send with gRPC's codec", func(t *testing.T, s *Sink) func(*eventv1.Event) (*eventv1.SendResponse, error) {
		ctx, client := testCtx(t), serveSinkWith(t, s, []grpc.ServerOption{})
		return func(ev *eventv1.Event) (*eventv1.SendResponse, error) {
			return client.Send(ctx, &eventv1.SendRequest{Event: ev})
		}
	}},
	{"Stream", func(t *testing.T, s *Sink) func(*eventv1.Event) (*eventv1.SendResponse, error) {
		ss, err := serveSink(t, s).Stream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ss.CloseSend() })
		return func(ev *eventv1.Event) (*eventv1.SendResponse, error) {
			if err := ss.Send(&eventv1.StreamRequest{Event: ev}); err != nil {
				return nil, err
			}
			resp, err := ss.Recv()
			if err != nil {
				return nil, err
			}
			if e := resp.GetError(); e != nil {
				return nil, status.ErrorProto(e)
			}
			return resp.GetResponse(), nil
		}
	}},
}

// When a Stream client goes away, the sink answers its events in flight at
// once rather than at their deadlines: their processor slots are freed and
// the processor is told to cancel them.
func TestStreamIngressClientGoesAway(t *testing.T) {
	const n = 20
	received := make(chan struct{}, n)
	cancels := make(chan uint64, n)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		received <- struct{}{}
		<-ctx.Done() // never answers
		return nil
	}}
	addr, _ := startFake(t, &cancelSpy{fakeProcessor: f, cancels: cancels})
	s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1}) // one stream: distinct ids
	wait := testCtx(t)
	ctx, cancel := context.WithCancel(wait)
	defer cancel()
	ss, err := serveSink(t, s).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := ss.Send(&eventv1.StreamRequest{Event: hello(fmt.Sprint(i)), Timeout: durationpb.New(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		<-received
	}
	cancel()
	seen := map[uint64]bool{}
	for range n {
		select {
		case id := <-cancels:
			seen[id] = true
		case <-wait.Done():
			t.Fatalf("the processor was told to cancel %d of %d events", len(seen), n)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct cancels, want %d", len(seen), n)
	}
	// Cancels are sent after the calls left the streams.
	if p := s.Status()[0].Targets[0].Pending; p != 0 {
		t.Errorf("%d events still pending at the processor", p)
	}
}

// An event whose timeout passes is answered DEADLINE_EXCEEDED, and the
// processor is told; events after it on the same stream are unaffected.
func TestStreamIngressDeadline(t *testing.T) {
	cancels := make(chan uint64, 1)
	f := &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		if req.GetEvent().GetPayload().GetStringValue() == "hold" {
			<-ctx.Done()
			return nil
		}
		return echo(ctx, req)
	}}
	addr, _ := startFake(t, &cancelSpy{fakeProcessor: f, cancels: cancels})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ctx := testCtx(t)
	ss, err := serveSink(t, s).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := hello("hold")
	held.Id = "held"
	if err := ss.Send(&eventv1.StreamRequest{Event: held, Timeout: durationpb.New(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	resp, err := ss.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := codes.Code(resp.GetError().GetCode()); resp.GetId() != "held" || got != codes.DeadlineExceeded {
		t.Fatalf("answer %v, want DEADLINE_EXCEEDED for held", resp)
	}
	select {
	case <-cancels:
	case <-ctx.Done():
		t.Fatal("the processor was not told to cancel the expired event")
	}
	if err := ss.Send(&eventv1.StreamRequest{Event: hello("next")}); err != nil {
		t.Fatal(err)
	}
	if resp, err := ss.Recv(); err != nil || resp.GetResponse().GetEvent().GetPayload().GetStringValue() != "next" {
		t.Fatalf("next event: %v, %v", resp, err)
	}
	_ = ss.CloseSend()
	if _, err := ss.Recv(); err == nil {
		t.Error("stream not closed after the last answer")
	}
}

// Events sent without an id or a time get them from the sink, as on the
// other paths; a client's own id and time are kept.
func TestStreamIngressFillsIDAndTime(t *testing.T) {
	ss := echoStream(t)
	own := hello("own")
	own.Id, own.Time = "client-id", timestamppb.New(time.Unix(1000, 5))
	ids := map[string]bool{}
	for _, ev := range []*eventv1.Event{hello("a"), hello("b"), own} {
		if err := ss.Send(&eventv1.StreamRequest{Event: ev}); err != nil {
			t.Fatal(err)
		}
		resp, err := ss.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetResponse().GetEvent()
		if got.GetId() == "" || got.GetId() != resp.GetId() || ids[got.GetId()] {
			t.Fatalf("reply id %q, answer id %q (ids so far %v)", got.GetId(), resp.GetId(), ids)
		}
		ids[got.GetId()] = true
		if got.GetTime() == nil {
			t.Fatalf("%s: no time", got.GetId())
		}
		if ev == own && (got.GetId() != "client-id" || !proto.Equal(got.GetTime(), own.GetTime())) {
			t.Fatalf("client's id and time not kept: %v", got)
		}
	}
	_ = ss.CloseSend()
}

// A message that is not a StreamRequest ends the stream with
// INVALID_ARGUMENT, as gRPC does when it cannot decode one.
func TestStreamIngressMalformed(t *testing.T) {
	ss := echoStream(t)
	// Field 1 (the event) holding an invalid UTF-8 id.
	bad := &eventv1.StreamRequest{}
	bad.ProtoReflect().SetUnknown([]byte{0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe})
	if err := ss.Send(bad); err != nil {
		t.Fatal(err)
	}
	_, err := ss.Recv()
	wantCode(t, err, codes.InvalidArgument)
}

// An event nested too deeply for a processor to decode is answered
// INVALID_ARGUMENT, exactly where the in-process Send draws the line, and never
// reaches the processor stream, which it would break for every event on it.
func TestStreamIngressTooDeep(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	ss, err := serveSink(t, s).Stream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for n := 4990; n <= 4999; n++ { // 5,000 is past what the StreamRequest itself may hold
		ev := &eventv1.Event{Id: fmt.Sprint("deep-", n), Type: typeHello, Time: timestamppb.Now(), Payload: nestedLists(n)}
		_, want := send(s, testCtx(t), proto.Clone(ev).(*eventv1.Event))
		if err := ss.Send(&eventv1.StreamRequest{Event: ev}); err != nil {
			t.Fatal(err)
		}
		resp, err := ss.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got := codes.Code(resp.GetError().GetCode())
		if got != status.Code(want) || got == codes.Unavailable {
			t.Errorf("%d lists: Stream answered %v %q, Send %v", n, got, resp.GetError().GetMessage(), want)
		}
		if n == 4990 && got != codes.OK {
			t.Errorf("%d lists: %v, want it relayed", n, got)
		}
	}
	_ = ss.CloseSend()
}
