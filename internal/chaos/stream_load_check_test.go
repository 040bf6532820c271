//go:build unix

package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fakeSink serves SinkService.Stream on loopback, answering each event as
// answer says, in the order the events arrive.
type fakeSink struct {
	eventv1.UnimplementedSinkServiceServer
	// answer handles the n-th event (from 0) of the stream: it sends
	// what it likes; an error ends the stream with it, errEndOK with OK.
	answer func(n int, req *eventv1.StreamRequest, send func(*eventv1.StreamResponse)) error
}

var errEndOK = errors.New("end the stream with OK")

func (f *fakeSink) Stream(ss eventv1.SinkService_StreamServer) error {
	for n := 0; ; n++ {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f.answer(n, req, func(r *eventv1.StreamResponse) { _ = ss.Send(r) }); err != nil {
			if errors.Is(err, errEndOK) {
				return nil
			}
			return err
		}
	}
}

// serveFake serves f on a loopback port until the test ends.
func serveFake(t *testing.T, f *fakeSink) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	eventv1.RegisterSinkServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// echo is the answer the echo processor gives to req.
func echo(req *eventv1.StreamRequest) *eventv1.StreamResponse {
	ev := req.GetEvent()
	reply := &eventv1.Event{Id: ev.GetId(), Type: ev.GetType(), Payload: ev.GetPayload(), Metadata: map[string]string{"processed_by": "A"}}
	return &eventv1.StreamResponse{Id: ev.GetId(), Result: &eventv1.StreamResponse_Response{
		Response: &eventv1.SendResponse{Event: reply, Outcome: eventv1.Outcome_OUTCOME_REPLIED}}}
}

// TestStreamLoad checks the Stream load generator against a fake sink that
// misbehaves: every wrong answer must end up in a record or a fault.
func TestStreamLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const clientTimeout = 300 * time.Millisecond
	reached := make(chan struct{})
	addr := serveFake(t, &fakeSink{answer: func(n int, req *eventv1.StreamRequest, send func(*eventv1.StreamResponse)) error {
		if req.GetTimeout().AsDuration() != deadline {
			t.Errorf("event %d: timeout %v, want %v", n, req.GetTimeout().AsDuration(), deadline)
		}
		switch n {
		case 3: // no answer: the client-side timeout
		case 5: // answered twice
			send(echo(req))
			send(echo(req))
		case 6: // an answer for an event nobody sent, then the right one
			send(&eventv1.StreamResponse{Id: "nope", Result: echo(req).Result})
			send(echo(req))
		case 7:
			send(&eventv1.StreamResponse{Id: req.GetEvent().GetId(), Result: &eventv1.StreamResponse_Error{
				Error: status.New(codes.Unavailable, "replica down").Proto()}})
		case 8: // another event's reply under this event's id
			r := echo(req)
			r.GetResponse().GetEvent().Id = "other"
			r.GetResponse().GetEvent().GetPayload().Kind = nil
			send(r)
		case 9:
			send(&eventv1.StreamResponse{Id: req.GetEvent().GetId(), Result: &eventv1.StreamResponse_Error{
				Error: status.New(codes.Canceled, "gone").Proto()}})
		case 30:
			close(reached)
			send(echo(req))
		default:
			send(echo(req))
		}
		return nil
	}})

	g := newStreamLoad(addr, deadline, clientTimeout, "test")
	stop := make(chan struct{})
	done := make(chan streamLoadResult, 1)
	go func() { done <- g.run(ctx, 1, 2, stop) }()
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the load never sent 31 events")
	}
	close(stop)
	res := <-done

	var byStatus = map[int]int{}
	var noAnswer, wrongReply int
	for _, r := range res.records {
		switch {
		case r.err != "":
			noAnswer++
			if !strings.Contains(r.err, "no answer on stream 1 within 300ms") {
				t.Errorf("record %s: err %q, want the client-side timeout", r.payload, r.err)
			}
			if r.latency() < clientTimeout {
				t.Errorf("record %s: gave up after %s, want %s", r.payload, r.latency(), clientTimeout)
			}
		case r.status == http.StatusOK && (r.replyID != r.id || r.echoed != r.payload):
			wrongReply++
		default:
			byStatus[r.status]++
		}
		if r.via != viaStream || r.stream != 1 || r.id == "" || !r.end.After(r.start) {
			t.Errorf("record %+v: want a Stream record with an id and its times", r)
		}
	}
	if noAnswer != 1 || wrongReply != 1 || byStatus[http.StatusServiceUnavailable] != 1 || byStatus[499] != 1 {
		t.Errorf("%d no answer, %d wrong replies, statuses %v; want 1, 1, and one 503 and one 499", noAnswer, wrongReply, byStatus)
	}
	want := []string{`answer for event id "nope"`, "not in flight"}
	if len(res.faults) != 2 || !slices.ContainsFunc(res.faults, func(f fault) bool { return strings.Contains(f.what, want[0]) }) {
		t.Errorf("faults %+v; want two answers not in flight, one of them %s", res.faults, want[0])
	}
	for _, f := range res.faults {
		if !strings.Contains(f.what, want[1]) {
			t.Errorf("fault %q, want an answer %s", f.what, want[1])
		}
	}
}

// TestStreamLoadEnds checks that a stream the sink ends, with an error or
// OK, is a fault, answers the requests in flight with an error, and stops
// the workers without a stop from the test.
func TestStreamLoadEnds(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  error
		want string
	}{
		{"broken", status.Error(codes.Internal, "boom"), "stream 1: broke with rpc error: code = Internal desc = boom"},
		{"ended", errEndOK, "stream 1: the sink ended the stream (OK) while events were being sent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			addr := serveFake(t, &fakeSink{answer: func(n int, req *eventv1.StreamRequest, send func(*eventv1.StreamResponse)) error {
				if n == 5 {
					return tt.end
				}
				send(echo(req))
				return nil
			}})
			res := newStreamLoad(addr, deadline, 5*time.Second, "test").run(ctx, 1, 2, make(chan struct{}))
			if ctx.Err() != nil {
				t.Fatal("the workers did not stop when the stream ended")
			}
			if len(res.faults) != 1 || !strings.Contains(res.faults[0].what, tt.want) {
				t.Errorf("faults %+v, want one: %s", res.faults, tt.want)
			}
			var ok, ended int
			for _, r := range res.records {
				switch {
				case r.err == "" && r.status == http.StatusOK && r.echoed == r.payload:
					ok++
				case strings.Contains(r.err, "stream 1 ended before the answer"):
					ended++
				default:
					t.Errorf("record %+v: want a 200 echo, or the stream's end", r)
				}
			}
			if ok != 5 || ended < 1 || ended > 2 {
				t.Errorf("%d answered, %d ended with the stream; want 5, and 1 or 2", ok, ended)
			}
		})
	}
}
