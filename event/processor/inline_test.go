package processor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// inlined is a Handler that is also an Inliner: Inline decides per event.
type inlined struct {
	processor.Handler
	inline func(ev *eventv1.Event) bool
}

func (h inlined) Inline(ev *eventv1.Event) bool { return h.inline(ev) }

func always(*eventv1.Event) bool { return true }

// Inlined handlers answer exactly as handlers on workers do: reply,
// consumed, each error, a panic contained to its event; the trace context
// reaches them.
func TestInlineAnswers(t *testing.T) {
	ctx := testCtx(t)
	var logs logBuffer
	h := start(t, inlined{processor.HandlerFunc(answerHandler), always}, processor.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	st := h.open(t, ctx, "")

	tests := []struct {
		eventID   string
		wantReply string
		consumed  bool
		wantCode  codes.Code
	}{
		{eventID: "reply", wantReply: "reply-to-reply"},
		{eventID: "consume", consumed: true},
		{eventID: "status", wantCode: codes.NotFound},
		{eventID: "plain", wantCode: codes.Unknown},
		{eventID: "deadline", wantCode: codes.DeadlineExceeded},
		{eventID: "panic", wantCode: codes.Internal},
		{eventID: "reply", wantReply: "reply-to-reply"}, // after the panic
	}
	for i, tt := range tests {
		send(t, st, request(uint64(i+1), tt.eventID, 0))
	}
	got := recvAnswers(t, st, len(tests))
	for i, tt := range tests {
		resp := got[uint64(i+1)]
		switch {
		case tt.wantReply != "":
			if resp.GetReply().GetId() != tt.wantReply {
				t.Errorf("%s: got %v, want reply %q", tt.eventID, resp, tt.wantReply)
			}
		case tt.consumed:
			if !resp.GetConsumed() {
				t.Errorf("%s: got %v, want consumed", tt.eventID, resp)
			}
		default:
			if errorCode(resp) != tt.wantCode {
				t.Errorf("%s: got %v, want error %v", tt.eventID, resp, tt.wantCode)
			}
		}
	}

	tc := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	req := request(100, "trace", 0)
	req.TraceContext = tc
	send(t, st, req)
	if md := recv(t, st).GetReply().GetMetadata(); !proto.Equal(&eventv1.Event{Metadata: md}, &eventv1.Event{Metadata: tc}) {
		t.Errorf("TraceContext = %v, want %v", md, tc)
	}
	closeAndExpectEnd(t, st)
	if log := logs.String(); !strings.Contains(log, "handler bug") {
		t.Errorf("log lacks the panic:\n%s", log)
	}
}

// Inlined events run one after the other on the receiving goroutine, so
// their answers leave in the order the requests came; the deadline
// reaches them.
func TestInlineOrderAndDeadline(t *testing.T) {
	ctx := testCtx(t)
	var noDeadline atomic.Int32
	h := start(t, inlined{processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if _, ok := ctx.Deadline(); !ok {
			noDeadline.Add(1)
		}
		return ev, ctx.Err()
	}), always}, processor.Options{})
	st := h.open(t, ctx, "")
	const n = 200
	for i := range n {
		send(t, st, request(uint64(i+1), fmt.Sprint("ev-", i), time.Minute))
	}
	for i := range n {
		if resp := recv(t, st); resp.GetId() != uint64(i+1) || resp.GetReply() == nil {
			t.Fatalf("answer %d: got %v, want reply to %d", i, resp, i+1)
		}
	}
	if got := noDeadline.Load(); got != 0 {
		t.Errorf("%d handlers saw no deadline", got)
	}
	closeAndExpectEnd(t, st)
}

// Events that Inline turns down (or panics on) still run concurrently on
// workers and can be cancelled, while inlined events keep being answered.
func TestInlineMixed(t *testing.T) {
	ctx := testCtx(t)
	started := make(chan struct{}, 1)
	h := start(t, inlined{processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if ev.GetId() == "slow" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return ev, nil
	}), func(ev *eventv1.Event) bool {
		if ev.GetId() == "inline-panics" {
			panic("Inline bug")
		}
		return ev.GetId() != "slow"
	}}, processor.Options{})
	st := h.open(t, ctx, "")

	send(t, st, request(1, "slow", 0))
	wait(t, ctx, started, "slow handler start")
	send(t, st, request(2, "fast", 0))
	send(t, st, request(3, "inline-panics", 0))
	got := recvAnswers(t, st, 2)
	if got[2].GetReply().GetId() != "fast" || got[3].GetReply().GetId() != "inline-panics" {
		t.Errorf("got %v, want replies to 2 and 3 while 1 runs", got)
	}
	send(t, st, &eventv1.ProcessRequest{Id: 1, Cancel: true})
	if resp := recv(t, st); resp.GetId() != 1 || errorCode(resp) != codes.Canceled {
		t.Errorf("got %v, want CANCELED for 1", resp)
	}
	closeAndExpectEnd(t, st)
}

// Draining that starts while an inlined handler runs still waits for its
// answer, which is delivered before the stream ends cleanly.
func TestInlineDrain(t *testing.T) {
	ctx := testCtx(t)
	stop := make(chan func(), 1)
	notServing := make(chan struct{})
	h := start(t, inlined{processor.HandlerFunc(func(context.Context, *eventv1.Event) (*eventv1.Event, error) {
		// Serve starts draining, and is draining once health says
		// NOT_SERVING.
		(<-stop)()
		select {
		case <-notServing:
		case <-ctx.Done():
		}
		return &eventv1.Event{Id: "answered"}, nil
	}), always}, processor.Options{})
	stop <- h.stop
	st := h.open(t, ctx, "")
	health := watchHealth(t, ctx, h)
	go func() {
		defer close(notServing)
		for {
			resp, err := health.Recv()
			if err != nil || resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
				return
			}
		}
	}()

	send(t, st, request(1, "x", 0))
	if resp := recv(t, st); resp.GetId() != 1 || resp.GetReply().GetId() != "answered" {
		t.Errorf("got %v, want the reply to 1", resp)
	}
	if resp, err := st.Recv(); err != io.EOF {
		t.Errorf("after the answer: Recv = %v, %v; want EOF", resp, err)
	}
	if err := h.shutdown(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}
