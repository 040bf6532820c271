package processor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
)

// gates blocks handlers until the test opens their gate, and counts how
// many run at once.
type gates struct {
	mu      sync.Mutex
	gate    map[string]chan struct{}
	started chan string
	running atomic.Int32
	max     atomic.Int32
}

func newGates(ids ...string) *gates {
	g := &gates{gate: make(map[string]chan struct{}), started: make(chan string, len(ids))}
	for _, id := range ids {
		g.gate[id] = make(chan struct{})
	}
	return g
}

// open lets the handler of event id finish.
func (g *gates) open(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate[id])
}

// Handle waits for the event's gate, then echoes the event.
func (g *gates) Handle(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
	n := g.running.Add(1)
	for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
	}
	g.mu.Lock()
	gate := g.gate[ev.GetId()]
	g.mu.Unlock()
	g.started <- ev.GetId()
	defer g.running.Add(-1)
	select {
	case <-gate:
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestConcurrencyLimit(t *testing.T) {
	ctx := testCtx(t)
	const limit, perStream = 3, 5
	var ids []string
	for i := range 2 * perStream {
		ids = append(ids, fmt.Sprint("ev-", i))
	}
	g := newGates(ids...)
	h := start(t, g, processor.Options{MaxConcurrency: limit})
	// The limit is shared by all streams of the Server.
	streams := []procStream{h.open(t, ctx, "a"), h.open(t, ctx, "b")}
	for i, id := range ids {
		send(t, streams[i%2], request(uint64(i+1), id, 0))
	}

	// Each handler that finishes lets exactly one more start.
	var running []string
	for range limit {
		running = append(running, wait(t, ctx, g.started, "handler start"))
	}
	for startedCount := limit; startedCount < len(ids); startedCount++ {
		g.open(running[0])
		running = append(running[1:], wait(t, ctx, g.started, "handler start"))
	}
	for _, id := range running {
		g.open(id)
	}
	for _, st := range streams {
		for id, resp := range recvAnswers(t, st, perStream) {
			if want := ids[id-1]; resp.GetReply().GetId() != want {
				t.Errorf("answer to %d = %v, want reply %s", id, resp, want)
			}
		}
		closeAndExpectEnd(t, st)
	}
	if got := g.max.Load(); got != limit {
		t.Errorf("max concurrent handlers = %d, want %d", got, limit)
	}
}

func TestLimitBlocksReceiving(t *testing.T) {
	ctx := testCtx(t)
	g := newGates("first", "second")
	h := start(t, g, processor.Options{MaxConcurrency: 1})
	st := h.open(t, ctx, "")
	send(t, st, request(1, "first", 0))
	send(t, st, request(2, "second", 0)) // waits for the only slot...
	send(t, st, request(3, "third", -1)) // ...so this is not read yet
	if id := wait(t, ctx, g.started, "handler start"); id != "first" {
		t.Fatalf("started %q, want first", id)
	}
	g.open("first")
	// Request 3 needs no slot and is answered as soon as it is read, which
	// happens only after the first handler has answered and freed the slot.
	if resp := recv(t, st); resp.GetId() != 1 {
		t.Errorf("first answer = %v, want the answer to 1", resp)
	}
	if resp := recv(t, st); resp.GetId() != 3 || errorCode(resp) != codes.DeadlineExceeded {
		t.Errorf("second answer = %v, want DEADLINE_EXCEEDED for 3", resp)
	}
	if id := wait(t, ctx, g.started, "handler start"); id != "second" {
		t.Fatalf("started %q, want second", id)
	}
	g.open("second")
	if resp := recv(t, st); resp.GetId() != 2 || resp.GetReply() == nil {
		t.Errorf("third answer = %v, want reply to 2", resp)
	}
	closeAndExpectEnd(t, st)
}

func TestManyRequestsOutOfOrder(t *testing.T) {
	ctx := testCtx(t)
	const n = 300
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprint("ev-", i))
	}
	g := newGates(ids...)
	h := start(t, g, processor.Options{})
	st := h.open(t, ctx, "")
	for i, id := range ids {
		send(t, st, request(uint64(i+1), id, 0))
	}
	for range n {
		wait(t, ctx, g.started, "handler start")
	}
	for _, i := range rand.Perm(n) {
		g.open(ids[i])
	}
	got := recvAnswers(t, st, n)
	for id, resp := range got {
		if id < 1 || id > n || resp.GetReply().GetId() != ids[id-1] {
			t.Errorf("answer to %d = %v, want reply %s", id, resp, ids[id-1])
		}
	}
	closeAndExpectEnd(t, st)
	if got := g.max.Load(); got != n {
		t.Errorf("max concurrent handlers = %d, want %d", got, n)
	}
}
