package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// batchHeader is the header by which a sink says it reads batches, and up
// to what size.
const batchHeader = "eventproc-batch"

// openBatching opens a stream as a sink that reads batches of up to limit
// bytes (none when limit is 0), and checks that the processor says it
// reads batches too.
func openBatching(t *testing.T, h *harness, limit int) procStream {
	t.Helper()
	ctx := testCtx(t)
	if limit > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, batchHeader, strconv.Itoa(limit))
	}
	st, err := h.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md, err := st.Header()
	if err != nil {
		t.Fatal(err)
	}
	if v := md.Get(batchHeader); len(v) != 1 {
		t.Fatalf("processor's header %v: want %s", md, batchHeader)
	} else if n, err := strconv.Atoi(v[0]); err != nil || n <= 0 {
		t.Fatalf("processor's %s: %q, want a size", batchHeader, v[0])
	}
	return st
}

// batchOf returns a batch of n echo requests with ids from first on.
func batchOf(first uint64, n int) *eventv1.ProcessRequest {
	b := &eventv1.ProcessRequest{}
	for i := range uint64(n) {
		b.Batch = append(b.Batch, request(first+i, fmt.Sprint("event-", first+i), 0))
	}
	return b
}

// recvFlat receives until it has n answers, taking batches apart; it
// returns them by id, and the messages they came in.
func recvFlat(t *testing.T, st procStream, n int) (map[uint64]*eventv1.ProcessResponse, []*eventv1.ProcessResponse) {
	t.Helper()
	got := map[uint64]*eventv1.ProcessResponse{}
	var msgs []*eventv1.ProcessResponse
	for len(got) < n {
		m := recv(t, st)
		msgs = append(msgs, m)
		answers := m.GetBatch()
		if len(answers) == 0 {
			answers = []*eventv1.ProcessResponse{m}
		}
		for _, a := range answers {
			if _, dup := got[a.GetId()]; dup || a.GetId() == 0 {
				t.Fatalf("answer %v: duplicate or without id", a)
			}
			got[a.GetId()] = a
		}
	}
	return got, msgs
}

// Every request of a batch is handled as if it came alone. Handlers run
// inline answer in one batch when the sink reads batches, and one by one
// when it does not; answers are split so that none is over the sink's
// limit; a batch larger than MaxConcurrency still gets every answer.
func TestBatchRequests(t *testing.T) {
	for _, tt := range []struct {
		name        string
		limit       int // the sink's
		concurrency int
		wantMsgs    func(n int) bool
	}{
		{"one batch back", 4 << 20, 0, func(n int) bool { return n == 1 }},
		{"sink reads no batches", 0, 0, func(n int) bool { return n == 20 }},
		{"split at the sink's limit", 200, 0, func(n int) bool { return n > 1 && n < 20 }},
		{"more than MaxConcurrency", 4 << 20, 3, func(n int) bool { return n >= 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, inlined{processor.HandlerFunc(echo), always}, processor.Options{MaxConcurrency: tt.concurrency})
			st := openBatching(t, h, tt.limit)
			const n = 20
			send(t, st, batchOf(1, n))
			got, msgs := recvFlat(t, st, n)
			for id := uint64(1); id <= n; id++ {
				if want := fmt.Sprint("event-", id); got[id].GetReply().GetId() != want {
					t.Fatalf("answer to %d: %v, want the echo of %s", id, got[id], want)
				}
			}
			if !tt.wantMsgs(len(msgs)) {
				t.Errorf("%d answers came in %d messages", n, len(msgs))
			}
			for _, m := range msgs {
				if tt.limit > 0 && proto.Size(m) > tt.limit {
					t.Errorf("a message of %d bytes, over the sink's %d", proto.Size(m), tt.limit)
				}
				if tt.limit == 0 && len(m.GetBatch()) > 0 {
					t.Errorf("a batch to a sink that reads none: %v", m)
				}
			}
			closeAndExpectEnd(t, st)
		})
	}
}

// A cancellation in a batch reaches the handler of a request still running
// from an earlier message; requests on workers answer on their own.
func TestBatchCancel(t *testing.T) {
	started := make(chan string, 1)
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if ev.GetId() == "slow" {
			started <- ev.GetId()
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return ev, nil
	}), processor.Options{})
	st := openBatching(t, h, 4<<20)
	send(t, st, request(1, "slow", 0))
	wait(t, testCtx(t), started, "the slow handler")
	b := batchOf(2, 3)
	b.Batch = append(b.Batch, &eventv1.ProcessRequest{Id: 1, Cancel: true})
	send(t, st, b)
	got, _ := recvFlat(t, st, 4)
	if got[1].GetError() == nil {
		t.Errorf("cancelled request answered %v, want its context's error", got[1])
	}
	for id := uint64(2); id <= 4; id++ {
		if got[id].GetReply() == nil {
			t.Errorf("answer to %d: %v, want a reply", id, got[id])
		}
	}
	closeAndExpectEnd(t, st)
}
