package sink

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/natsembed"
)

// countingProcessor answers each event with a reply naming how many events
// it got before, so that a replayed reply is told from a fresh one. Events
// with payload "block" wait for release; "fail" is refused with
// INVALID_ARGUMENT.
type countingProcessor struct {
	calls   atomic.Int64
	release chan struct{}
	delay   time.Duration
}

func (p *countingProcessor) answer(ctx context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
	n := p.calls.Add(1)
	switch req.GetEvent().GetPayload().GetStringValue() {
	case "block":
		select {
		case <-p.release:
		case <-ctx.Done():
			return nil
		}
	case "fail":
		return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Error{
			Error: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "refused"}}}
	}
	time.Sleep(p.delay)
	reply := &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("reply " + strconv.FormatInt(n, 10))}
	return &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Reply{Reply: reply}}
}

// startIdempotentSink runs a sink whose TYPE_HELLO route is a
// request/response route honouring idempotency keys, kept for window.
func startIdempotentSink(t *testing.T, st *natsembed.Store, addr string, window time.Duration) *Sink {
	t.Helper()
	return startSink(t, Config{
		Routes:       []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}, Idempotent: true}},
		ReconnectMax: 100 * time.Millisecond,
		Durable:      DurableConfig{Conn: st.Conn(), DedupWindow: window},
		Timeout:      5 * time.Second,
	})
}

func TestIdempotentReplay(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	p := &countingProcessor{release: make(chan struct{}), delay: 20 * time.Millisecond}
	addr, _ := startFake(t, &fakeProcessor{answer: p.answer})
	const window = 1500 * time.Millisecond
	s := startIdempotentSink(t, st, addr, window)
	wantCalls := func(want int64) {
		t.Helper()
		if got := p.calls.Load(); got != want {
			t.Fatalf("processor got %d events, want %d", got, want)
		}
	}

	first, err := sendKey(s, ctx, "k1", hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED || first.GetEvent().GetPayload().GetStringValue() != "reply 1" {
		t.Fatalf("first answer %v, want the reply \"reply 1\"", first)
	}
	again, err := sendKey(s, ctx, "k1", hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, again) {
		t.Errorf("retry answered %v, want the first answer %v", again, first)
	}
	wantCalls(1)

	// Another event under the key is refused; without a key, nothing is kept.
	_, err = sendKey(s, ctx, "k1", hello("b"))
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := send(s, ctx, hello("a")); err != nil {
		t.Fatal(err)
	}
	wantCalls(2)

	// A failed first attempt is not kept: its retry is sent again.
	_, err = sendKey(s, ctx, "k-fail", hello("fail"))
	wantCode(t, err, codes.InvalidArgument)
	_, err = sendKey(s, ctx, "k-fail", hello("fail"))
	wantCode(t, err, codes.InvalidArgument)
	wantCalls(4)

	// The answer expires with the window: the key is then new again.
	kv := *s.kv.Load()
	idem := keyOf(t, "k1", hello("a"))
	deadline := time.Now().Add(window + 10*time.Second)
	for {
		if _, err := kv.Get(ctx, idem.key); errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept answer outlived the window by 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := sendKey(s, ctx, "k1", hello("b")); err != nil {
		t.Fatalf("after the window, another event under the key: %v", err)
	}
	wantCalls(5)
}

// keyOf is the idempotency key of ev sent with key on TYPE_HELLO.
func keyOf(t *testing.T, key string, ev *eventv1.Event) *idempotency {
	t.Helper()
	b, err := ev.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	idem, err := readIdempotencyKey(metadata.NewIncomingContext(context.Background(), metadata.Pairs("idempotency-key", key)),
		eventv1.Type_TYPE_HELLO, b)
	if err != nil {
		t.Fatal(err)
	}
	return idem
}

// Concurrent retries with one key: one reaches the processor, and all get
// its reply.
func TestIdempotentConcurrentRetries(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	p := &countingProcessor{release: make(chan struct{}), delay: 100 * time.Millisecond}
	addr, _ := startFake(t, &fakeProcessor{answer: p.answer})
	s := startIdempotentSink(t, st, addr, time.Minute)
	const n = 20
	resps := make([]*eventv1.SendResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := sendKey(s, ctx, "k", hello("c"))
			if err != nil {
				t.Error(err)
			}
			resps[i] = r
		})
	}
	wg.Wait()
	if got := p.calls.Load(); got != 1 {
		t.Errorf("processor got %d events from %d concurrent retries, want 1", got, n)
	}
	for _, r := range resps {
		if r.GetEvent().GetPayload().GetStringValue() != "reply 1" {
			t.Errorf("a retry was answered %v, want the reply \"reply 1\"", r)
		}
	}
}

// A retry that waits longer than its deadline for the first request is
// told ABORTED; one that finds a claim whose claimant is long gone takes
// it over.
func TestIdempotentInProgress(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	p := &countingProcessor{release: make(chan struct{})}
	addr, _ := startFake(t, &fakeProcessor{answer: p.answer})
	s := startIdempotentSink(t, st, addr, time.Minute)

	firstDone := make(chan error, 1)
	go func() {
		_, err := sendKey(s, ctx, "slow", hello("block"))
		firstDone <- err
	}()
	for p.calls.Load() == 0 {
		select {
		case err := <-firstDone:
			t.Fatalf("first request: %v, want it to wait for the processor", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := sendKey(s, short, "slow", hello("block"))
	cancel()
	wantCode(t, err, codes.Aborted)
	close(p.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("processor got %d events, want 1", got)
	}

	// A claim left pending by a sink that stopped, past its deadline.
	kv := *s.kv.Load()
	idem := keyOf(t, "orphan", hello("d"))
	stale := claimRecord{hash: idem.hash, until: time.Now().Add(-claimGrace - time.Second)}
	if _, err := kv.Create(ctx, idem.key, stale.encode()); err != nil {
		t.Fatal(err)
	}
	r, err := sendKey(s, ctx, "orphan", hello("d"))
	if err != nil {
		t.Fatal(err)
	}
	if r.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED || p.calls.Load() != 2 {
		t.Errorf("after a stale claim: %v, %d events processed; want a fresh reply, 2", r, p.calls.Load())
	}
}

func TestClaimRecordEncoding(t *testing.T) {
	at := time.Unix(0, 1234567890)
	for _, r := range []claimRecord{
		{hash: "abc", until: at},
		{hash: "abc", done: true, resp: []byte("x\ny z")},
		{hash: "abc", done: true, resp: []byte{}},
	} {
		got, err := decodeClaim(r.encode())
		if err != nil || got.hash != r.hash || got.done != r.done || !got.until.Equal(r.until) && !r.done ||
			string(got.resp) != string(r.resp) {
			t.Errorf("decodeClaim(%q) = %+v, %v; want %+v", r.encode(), got, err, r)
		}
	}
	for _, bad := range []string{"", "abc", "abc p x", "abc q 1", "abc d extra\n"} {
		if _, err := decodeClaim([]byte(bad)); err == nil {
			t.Errorf("decodeClaim(%q) succeeded, want an error", bad)
		}
	}
}
