package sink

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// streamAnswers sends reqs on one Stream and returns the answers by id.
func streamAnswers(t *testing.T, ctx context.Context, c eventv1.SinkServiceClient, reqs ...*eventv1.StreamRequest) map[string]*eventv1.StreamResponse {
	t.Helper()
	ss, err := c.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range reqs {
		n += max(1, len(r.GetBatch()))
		if err := ss.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[string]*eventv1.StreamResponse)
	for range n {
		r, err := ss.Recv()
		if err != nil {
			t.Fatalf("after %d of %d answers: %v", len(got), n, err)
		}
		got[r.GetId()] = r
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return got
}

// keyed is a StreamRequest of a hello event with id and payload, and key.
func keyed(id, payload, key string) *eventv1.StreamRequest {
	ev := hello(payload)
	ev.Id = id
	return &eventv1.StreamRequest{Event: ev, IdempotencyKey: key}
}

// A Stream's events carry their own idempotency keys, in a batch too: on a
// durable route, retries are stored once and answered as duplicates of the
// first, another event under a key is refused, a malformed key fails its
// event only.
func TestStreamIdempotencyKeyDurable(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	s := startDurableSink(t, st, freeAddr(t), DurableConfig{})
	c := serveSink(t, s)

	first := streamAnswers(t, ctx, c, keyed("a1", "a", "k1"))["a1"].GetResponse()
	if first.GetOutcome() != eventv1.Outcome_OUTCOME_STORED || first.GetDuplicate() || first.GetSequence() == 0 {
		t.Fatalf("first event answered %v, want stored", first)
	}
	got := streamAnswers(t, ctx, c, &eventv1.StreamRequest{Batch: []*eventv1.StreamRequest{
		keyed("a2", "a", "k1"), keyed("a3", "a", "k1"), // retries, at once
		keyed("b1", "b", "k1"),                     // another event, same key
		keyed("c1", "c", "k2"),                     // another key
		keyed("d1", "d", strings.Repeat("x", 257)), // too long
	}})
	for _, id := range []string{"a2", "a3"} {
		r := got[id].GetResponse()
		if !r.GetDuplicate() || r.GetId() != "a1" || r.GetSequence() != first.GetSequence() {
			t.Errorf("retry %s answered %v, want a duplicate of a1 at sequence %d", id, got[id], first.GetSequence())
		}
	}
	if code := codes.Code(got["b1"].GetError().GetCode()); code != codes.FailedPrecondition {
		t.Errorf("another event under k1 answered %v, want FAILED_PRECONDITION", got["b1"])
	}
	if r := got["c1"].GetResponse(); r.GetDuplicate() || r.GetSequence() == first.GetSequence() || r.GetOutcome() != eventv1.Outcome_OUTCOME_STORED {
		t.Errorf("another key answered %v, want a new stored event", got["c1"])
	}
	if code := codes.Code(got["d1"].GetError().GetCode()); code != codes.InvalidArgument {
		t.Errorf("a 257-byte key answered %v, want INVALID_ARGUMENT", got["d1"])
	}
	if n := streamMsgs(t, s, durableStream); n != 2 {
		t.Errorf("%d events stored, want 2 (k1, k2)", n)
	}
}

// On a request/response route honouring keys, concurrent retries on a
// Stream reach the processor once and all get its reply; the Go client
// takes the key from the context's metadata, as a unary Send would carry
// it.
func TestStreamIdempotencyKeyReplay(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	p := &countingProcessor{release: make(chan struct{}), delay: 50 * time.Millisecond}
	addr, _ := startFake(t, &fakeProcessor{answer: p.answer})
	s := startIdempotentSink(t, st, addr, time.Minute)
	eventually(t, s.Ready)
	cl := client.New(serveSinkConn(t, s, nil), client.Options{})
	t.Cleanup(func() { _ = cl.Close() })

	kctx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "pay-7")
	const n = 10
	resps := make([]*eventv1.SendResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := cl.Send(kctx, hello("c"))
			if err != nil {
				t.Error(err)
			}
			resps[i] = r
		})
	}
	wg.Wait()
	if got := p.calls.Load(); got != 1 {
		t.Errorf("processor got %d events from %d retries on a Stream, want 1", got, n)
	}
	for _, r := range resps {
		if r.GetEvent().GetPayload().GetStringValue() != "reply 1" {
			t.Errorf("a retry was answered %v, want the reply \"reply 1\"", r)
		}
	}
	// Without a key, each is processed.
	if r, err := cl.Send(ctx, hello("c")); err != nil || r.GetEvent().GetPayload().GetStringValue() != "reply 2" {
		t.Errorf("without a key: %v, %v; want \"reply 2\"", r, err)
	}
	_, err := cl.Send(metadata.AppendToOutgoingContext(kctx, "idempotency-key", "other"), hello("c"))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("two keys: %v, want INVALID_ARGUMENT", err)
	}
}
