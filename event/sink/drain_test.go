package sink

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

func drainingStatus(t *testing.T) *status.Status {
	t.Helper()
	st, err := status.New(codes.Unavailable, "shutting down").WithDetails(&errdetails.ErrorInfo{
		Reason: eventv1.ErrorReason_ERROR_REASON_PROCESSOR_DRAINING.String(), Domain: protocol.ErrorDomain})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Events a draining processor turns away go to another replica, and the
// draining processor's streams get no more events.
func TestDrainingProcessorSkipped(t *testing.T) {
	st := drainingStatus(t)
	var turnedAway atomic.Int64
	draining, _ := startFake(t, &fakeProcessor{answer: func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		turnedAway.Add(1)
		return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Error{Error: st.Proto()}}
	}})
	healthy, _ := startFake(t, &fakeProcessor{answer: echo})
	for _, path := range sendPaths {
		t.Run(path.name, func(t *testing.T) {
			turnedAway.Store(0)
			s := startSink(t, Config{Routes: helloRoute(draining, healthy), StreamsPerTarget: 2})
			waitAllLive(t, s)
			send := path.sender(t, s)
			for i := range 50 {
				resp, err := send(hello(fmt.Sprint(i)))
				if err != nil {
					t.Fatalf("event lost to a draining processor: %v", err)
				}
				if resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED || resp.GetEvent().GetPayload().GetStringValue() != fmt.Sprint(i) {
					t.Fatalf("answer %v", resp)
				}
			}
			if n := turnedAway.Load(); n > 2 {
				t.Errorf("draining processor was sent %d events, want at most one per stream (2)", n)
			}
		})
	}
}

// A processor's own UNAVAILABLE without the draining detail is not retried:
// the processor may have acted on the event.
func TestUnavailableAnswerNotRetried(t *testing.T) {
	var calls atomic.Int64
	f := func(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
		calls.Add(1)
		return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Error{Error: status.New(codes.Unavailable, "db down").Proto()}}
	}
	a, _ := startFake(t, &fakeProcessor{answer: f})
	b, _ := startFake(t, &fakeProcessor{answer: f})
	s := startSink(t, Config{Routes: helloRoute(a, b)})
	waitAllLive(t, s)
	for _, path := range sendPaths {
		t.Run(path.name, func(t *testing.T) {
			calls.Store(0)
			_, err := path.sender(t, s)(hello("x"))
			wantCode(t, err, codes.Unavailable)
			if n := calls.Load(); n != 1 {
				t.Errorf("event handled %d times, want exactly 1", n)
			}
		})
	}
}
