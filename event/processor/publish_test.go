package processor_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publishesBeforePing sends a request on st and counts the publishes that
// arrive before its answer. Publish queues its message before it returns
// and each stream sends in order, so the count is final for publishes made
// before the call.
func publishesBeforePing(t *testing.T, st procStream, id uint64) (n int) {
	t.Helper()
	send(t, st, request(id, "ping", 0))
	for {
		resp := recv(t, st)
		if resp.GetPublish() == nil {
			if resp.GetId() != id {
				t.Fatalf("got %v, want the answer to %d", resp, id)
			}
			return n
		}
		if resp.GetId() != 0 || resp.GetPublish().GetId() != "news" {
			t.Errorf("publish = %v, want id 0 with event news", resp)
		}
		n++
	}
}

func echo(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) { return ev, nil }

func TestPublishOncePerSink(t *testing.T) {
	tests := []struct {
		name    string
		sinkIDs []string // one stream each
		want    []int    // publishes per stream; -1 means "one of the group"
	}{
		{"one sink, one stream", []string{"a"}, []int{1}},
		{"one sink, two streams", []string{"a", "a"}, []int{-1, -1}},
		{"two sinks", []string{"a", "b"}, []int{1, 1}},
		{"two sinks, one with two streams", []string{"a", "b", "a"}, []int{-1, 1, -1}},
		{"streams without sink id", []string{"", ""}, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			h := start(t, processor.HandlerFunc(echo), processor.Options{})
			var streams []procStream
			for _, id := range tt.sinkIDs {
				streams = append(streams, h.open(t, ctx, id))
			}
			if err := h.srv.Publish(ctx, &eventv1.Event{Id: "news", Type: eventv1.Type_TYPE_HELLO}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			groupTotal := 0
			for i, st := range streams {
				n := publishesBeforePing(t, st, uint64(i+1))
				if tt.want[i] == -1 {
					groupTotal += n
				} else if n != tt.want[i] {
					t.Errorf("stream %d (sink %q) got %d publishes, want %d", i, tt.sinkIDs[i], n, tt.want[i])
				}
			}
			if groupTotal > 1 || (groupTotal == 0 && slices.Contains(tt.want, -1)) {
				t.Errorf("streams of the same sink got %d publishes, want 1", groupTotal)
			}
			for _, st := range streams {
				closeAndExpectEnd(t, st)
			}
		})
	}
}

func TestPublishWithoutSink(t *testing.T) {
	ctx := testCtx(t)
	h := start(t, processor.HandlerFunc(echo), processor.Options{})
	err := h.srv.Publish(ctx, &eventv1.Event{Id: "news"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Publish without sink = %v, want UNAVAILABLE", err)
	}
	// A stream that is gone no longer counts.
	st := h.open(t, ctx, "a")
	closeAndExpectEnd(t, st)
	if err := h.srv.Publish(ctx, &eventv1.Event{Id: "news"}); status.Code(err) != codes.Unavailable {
		t.Errorf("Publish after the stream closed = %v, want UNAVAILABLE", err)
	}
	if err := h.srv.Publish(ctx, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Publish(nil) = %v, want INVALID_ARGUMENT", err)
	}
}

func TestPublishFromHandler(t *testing.T) {
	ctx := testCtx(t)
	var srv *processor.Server
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if err := srv.Publish(ctx, &eventv1.Event{Id: "news", Type: ev.GetType()}); err != nil {
			return nil, err
		}
		return nil, nil
	}), processor.Options{})
	srv = h.srv
	st := h.open(t, ctx, "a")
	send(t, st, request(7, "trigger", 0))
	// The publish is queued before the handler returns, so it comes first.
	if resp := recv(t, st); resp.GetId() != 0 || resp.GetPublish().GetId() != "news" {
		t.Errorf("first message = %v, want the publish", resp)
	}
	if resp := recv(t, st); resp.GetId() != 7 || !resp.GetConsumed() {
		t.Errorf("second message = %v, want consumed for 7", resp)
	}
	closeAndExpectEnd(t, st)
}
