package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestDeadlineReachesHandler(t *testing.T) {
	ctx := testCtx(t)
	type seen struct {
		deadline time.Time
		ok       bool
	}
	deadlines := make(chan seen, 2)
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		d, ok := ctx.Deadline()
		deadlines <- seen{d, ok}
		if ev.GetId() == "wait" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return ev, nil
	}), processor.Options{})
	// A stream without a gRPC deadline (as the sink's), ended with ctx.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer context.AfterFunc(ctx, cancel)()
	defer cancel()
	st := h.open(t, streamCtx, "")

	t.Run("timeout sets the deadline", func(t *testing.T) {
		const timeout = 5 * time.Second
		before := time.Now()
		send(t, st, request(1, "x", timeout))
		recv(t, st)
		after := time.Now()
		got := wait(t, ctx, deadlines, "deadline")
		// The deadline counts from receipt, which lies between before and after.
		if !got.ok || got.deadline.Before(before.Add(timeout)) || got.deadline.After(after.Add(timeout)) {
			t.Errorf("deadline = %v (set %v), want within [%v, %v]", got.deadline, got.ok, before.Add(timeout), after.Add(timeout))
		}
	})
	t.Run("no timeout, no deadline", func(t *testing.T) {
		send(t, st, request(2, "x", 0))
		recv(t, st)
		if got := wait(t, ctx, deadlines, "deadline"); got.ok {
			t.Errorf("deadline = %v, want none", got.deadline)
		}
	})
	t.Run("expiry ends the handler with DEADLINE_EXCEEDED", func(t *testing.T) {
		send(t, st, request(3, "wait", 20*time.Millisecond))
		wait(t, ctx, deadlines, "deadline")
		if resp := recv(t, st); resp.GetId() != 3 || errorCode(resp) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DEADLINE_EXCEEDED for 3", resp)
		}
	})
	closeAndExpectEnd(t, st)
}

func TestRequestsAnsweredWithoutHandler(t *testing.T) {
	ctx := testCtx(t)
	var calls atomic.Int32
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		calls.Add(1)
		return ev, nil
	}), processor.Options{})
	st := h.open(t, ctx, "")

	tests := []struct {
		name string
		req  *eventv1.ProcessRequest
		want codes.Code
	}{
		{"zero timeout", request(1, "x", 0), codes.DeadlineExceeded},
		{"negative timeout", request(2, "x", -time.Second), codes.DeadlineExceeded},
		{"invalid timeout", request(3, "x", 0), codes.InvalidArgument},
		{"no event", &eventv1.ProcessRequest{Id: 4}, codes.InvalidArgument},
	}
	tests[0].req.Timeout = durationpb.New(0)
	tests[2].req.Timeout = &durationpb.Duration{Seconds: 1, Nanos: -1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, st, tt.req)
			if resp := recv(t, st); resp.GetId() != tt.req.GetId() || errorCode(resp) != tt.want {
				t.Errorf("got %v, want %v for id %d", resp, tt.want, tt.req.GetId())
			}
		})
	}
	closeAndExpectEnd(t, st)
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times, want 0", n)
	}
}

func TestCancelRequest(t *testing.T) {
	ctx := testCtx(t)
	started := make(chan string, 1)
	ctxErrs := make(chan error, 1)
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if ev.GetId() != "block" {
			return ev, nil
		}
		started <- ev.GetId()
		<-ctx.Done()
		ctxErrs <- ctx.Err()
		return nil, ctx.Err()
	}), processor.Options{})
	st := h.open(t, ctx, "")

	send(t, st, request(1, "block", 0))
	wait(t, ctx, started, "handler start")
	send(t, st, &eventv1.ProcessRequest{Id: 99, Cancel: true}) // unknown: ignored
	send(t, st, &eventv1.ProcessRequest{Id: 1, Cancel: true})
	if err := wait(t, ctx, ctxErrs, "handler ctx"); err != context.Canceled {
		t.Errorf("handler ctx error = %v, want %v", err, context.Canceled)
	}
	if resp := recv(t, st); resp.GetId() != 1 || errorCode(resp) != codes.Canceled {
		t.Errorf("got %v, want CANCELED for 1", resp)
	}
	// The stream goes on.
	send(t, st, request(2, "other", 0))
	if resp := recv(t, st); resp.GetId() != 2 || resp.GetReply() == nil {
		t.Errorf("got %v, want reply to 2", resp)
	}
	closeAndExpectEnd(t, st)
}

func TestSinkClosingCancelsHandlers(t *testing.T) {
	ctx := testCtx(t)
	started := make(chan struct{}, 1)
	ctxErrs := make(chan error, 1)
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		started <- struct{}{}
		<-ctx.Done()
		ctxErrs <- ctx.Err()
		return nil, ctx.Err()
	}), processor.Options{})
	st := h.open(t, ctx, "")
	send(t, st, request(1, "block", 0))
	wait(t, ctx, started, "handler start")
	closeAndExpectEnd(t, st)
	if err := wait(t, ctx, ctxErrs, "handler ctx"); err != context.Canceled {
		t.Errorf("handler ctx error = %v, want %v", err, context.Canceled)
	}
}
