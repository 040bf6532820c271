package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// answerHandler answers according to the event id (see TestAnswers).
func answerHandler(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
	switch ev.GetId() {
	case "reply":
		return &eventv1.Event{Id: "reply-to-" + ev.GetId(), Type: ev.GetType()}, nil
	case "consume":
		return nil, nil
	case "status":
		return nil, status.Error(codes.NotFound, "no such thing")
	case "wrapped-status":
		return nil, fmt.Errorf("lookup: %w", status.Error(codes.PermissionDenied, "not yours"))
	case "plain":
		return nil, errors.New("boom")
	case "deadline":
		return nil, fmt.Errorf("work: %w", context.DeadlineExceeded)
	case "canceled":
		return nil, context.Canceled
	case "ok-status":
		return nil, okStatusError{}
	case "reply-and-error":
		return ev, status.Error(codes.Aborted, "error wins")
	case "panic":
		panic("handler bug")
	case "trace":
		return &eventv1.Event{Id: ev.GetId(), Metadata: processor.TraceContext(ctx)}, nil
	case "otel-trace":
		sc := trace.SpanContextFromContext(ctx)
		return &eventv1.Event{Id: ev.GetId(), Metadata: map[string]string{"trace_id": sc.TraceID().String(), "remote_or_valid": fmt.Sprint(sc.IsValid())}}, nil
	}
	return nil, status.Errorf(codes.Internal, "test has no case %q", ev.GetId())
}

// okStatusError is an error that claims status OK.
type okStatusError struct{}

func (okStatusError) Error() string              { return "ok?" }
func (okStatusError) GRPCStatus() *status.Status { return status.New(codes.OK, "") }

func TestAnswers(t *testing.T) {
	ctx := testCtx(t)
	var logs logBuffer
	h := start(t, processor.HandlerFunc(answerHandler), processor.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	st := h.open(t, ctx, "")

	tests := []struct {
		eventID   string
		wantReply string // reply event id, when a reply is expected
		consumed  bool
		wantCode  codes.Code
		wantMsg   string
	}{
		{eventID: "reply", wantReply: "reply-to-reply"},
		{eventID: "consume", consumed: true},
		{eventID: "status", wantCode: codes.NotFound, wantMsg: "no such thing"},
		{eventID: "wrapped-status", wantCode: codes.PermissionDenied, wantMsg: "lookup: rpc error: code = PermissionDenied desc = not yours"},
		{eventID: "plain", wantCode: codes.Unknown, wantMsg: "boom"},
		{eventID: "deadline", wantCode: codes.DeadlineExceeded},
		{eventID: "canceled", wantCode: codes.Canceled},
		{eventID: "ok-status", wantCode: codes.Unknown, wantMsg: "ok?"},
		{eventID: "reply-and-error", wantCode: codes.Aborted, wantMsg: "error wins"},
		{eventID: "panic", wantCode: codes.Internal, wantMsg: "processor: handler panicked"},
	}
	// All on one stream at once: each failure must stay with its event.
	for i, tt := range tests {
		send(t, st, request(uint64(i+1), tt.eventID, 0))
	}
	got := recvAnswers(t, st, len(tests))
	for i, tt := range tests {
		t.Run(tt.eventID, func(t *testing.T) {
			resp := got[uint64(i+1)]
			switch {
			case tt.wantReply != "":
				if resp.GetReply().GetId() != tt.wantReply {
					t.Errorf("got %v, want reply %q", resp, tt.wantReply)
				}
			case tt.consumed:
				if !resp.GetConsumed() {
					t.Errorf("got %v, want consumed", resp)
				}
			default:
				if errorCode(resp) != tt.wantCode {
					t.Errorf("got %v, want error %v", resp, tt.wantCode)
				}
				if tt.wantMsg != "" && resp.GetError().GetMessage() != tt.wantMsg {
					t.Errorf("got message %q, want %q", resp.GetError().GetMessage(), tt.wantMsg)
				}
			}
		})
	}

	// The panic failed its event only: the stream still works.
	send(t, st, request(100, "reply", 0))
	if resp := recv(t, st); resp.GetId() != 100 || resp.GetReply() == nil {
		t.Errorf("after the panic: got %v, want reply to 100", resp)
	}
	closeAndExpectEnd(t, st)

	log := logs.String()
	for _, want := range []string{"handler panicked", "handler bug", "goroutine "} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestTraceContext(t *testing.T) {
	ctx := testCtx(t)
	h := start(t, processor.HandlerFunc(answerHandler), processor.Options{})
	st := h.open(t, ctx, "")
	tc := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	req := request(1, "trace", 0)
	req.TraceContext = tc
	send(t, st, req)
	send(t, st, request(2, "trace", 0))
	got := recvAnswers(t, st, 2)
	if md := got[1].GetReply().GetMetadata(); !proto.Equal(&eventv1.Event{Metadata: md}, &eventv1.Event{Metadata: tc}) {
		t.Errorf("TraceContext = %v, want %v", md, tc)
	}
	if md := got[2].GetReply().GetMetadata(); len(md) != 0 {
		t.Errorf("TraceContext without one = %v, want empty", md)
	}
	closeAndExpectEnd(t, st)
}

// The sink's trace context becomes the OpenTelemetry parent of the
// handler's context, so handlers continue the client's trace.
func TestTraceContextContinuesOTelTrace(t *testing.T) {
	ctx := testCtx(t)
	h := start(t, processor.HandlerFunc(answerHandler), processor.Options{})
	st := h.open(t, ctx, "")
	req := request(1, "otel-trace", 0)
	req.TraceContext = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	send(t, st, req)
	got := recvAnswers(t, st, 1)
	if id := got[1].GetReply().GetMetadata()["trace_id"]; id != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("handler's trace id %q, want the client's 4bf92f3577b34da6a3ce929d0e0e4736", id)
	}
	closeAndExpectEnd(t, st)
}
