package sink

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/natsembed"
)

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// startStore starts an embedded store in a temporary directory, closed
// when the test ends (after the sinks started later).
func startStore(t *testing.T) *natsembed.Store {
	t.Helper()
	st, err := natsembed.Start(natsembed.Options{DataDir: t.TempDir(), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// startDurableSink runs a sink whose TYPE_HELLO route is durable, and waits
// until its store is set up (not for processors).
func startDurableSink(t *testing.T, st *natsembed.Store, addr string, d DurableConfig) *Sink {
	t.Helper()
	return startDurableSinkMetrics(t, st, addr, d, nil)
}

// startDurableSinkMetrics is startDurableSink with metrics in reg.
func startDurableSinkMetrics(t *testing.T, st *natsembed.Store, addr string, d DurableConfig, reg prometheus.Registerer) *Sink {
	t.Helper()
	d.Conn = st.Conn()
	s := runSink(t, Config{
		Routes:       []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}, Durable: true}},
		ReconnectMax: 100 * time.Millisecond,
		Durable:      d,
		Timeout:      2 * time.Second,
		Metrics:      reg,
	})
	eventually(t, s.Ready)
	ctx := testCtx(t)
	for {
		if _, err := s.js.Consumer(ctx, durableStream, consumerPrefix+"TYPE_HELLO"); err == nil {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatal("the durable consumer was not created")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// recorder is a processor that records the events it gets and answers
// each as answer says.
type recorder struct {
	mu     sync.Mutex
	events []*eventv1.Event
	got    chan struct{} // a token per event
	answer func(ev *eventv1.Event) *eventv1.ProcessResponse
}

func newRecorder(answer func(ev *eventv1.Event) *eventv1.ProcessResponse) *recorder {
	return &recorder{got: make(chan struct{}, 1000), answer: answer}
}

func (r *recorder) process(_ context.Context, req *eventv1.ProcessRequest) *eventv1.ProcessResponse {
	r.mu.Lock()
	r.events = append(r.events, req.GetEvent())
	r.mu.Unlock()
	r.got <- struct{}{}
	resp := r.answer(req.GetEvent())
	resp.Id = req.GetId()
	return resp
}

func consumed(*eventv1.Event) *eventv1.ProcessResponse {
	return &eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Consumed{Consumed: true}}
}

// wait waits for n more events.
func (r *recorder) wait(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-r.got:
		case <-ctx.Done():
			t.Fatalf("processor got %d of %d events", i, n)
		}
	}
}

func TestDurableStoredWhileProcessorDown(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	addr := freeAddr(t)
	s := startDurableSink(t, st, addr, DurableConfig{})
	ids := map[string]bool{}
	for i := range 3 {
		resp, err := send(s, ctx, hello(strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if resp.GetOutcome() != eventv1.Outcome_OUTCOME_STORED || resp.GetSequence() != uint64(i+1) ||
			resp.GetId() == "" || resp.GetDuplicate() {
			t.Fatalf("send %d = %v, want OUTCOME_STORED, sequence %d, an id, not a duplicate", i, resp, i+1)
		}
		ids[resp.GetId()] = true
	}
	rec := newRecorder(consumed)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveFake(t, &fakeProcessor{answer: rec.process}, lis)
	rec.wait(t, ctx, 3)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ev := range rec.events {
		if !ids[ev.GetId()] {
			t.Errorf("delivered event %q, not one of those stored", ev.GetId())
		}
		md := ev.GetMetadata()
		if md[MetadataDelivery] != "1" {
			t.Errorf("%s = %q, want 1", MetadataDelivery, md[MetadataDelivery])
		}
		if at, err := time.Parse(time.RFC3339Nano, md[MetadataAccepted]); err != nil || time.Since(at) > time.Minute {
			t.Errorf("%s = %q (%v), want the time it was stored", MetadataAccepted, md[MetadataAccepted], err)
		}
	}
	eventually(t, func() bool { return streamMsgs(t, s, durableStream) == 0 })
}

// eventually polls cond, which the store changes without telling the sink's
// waiters, until it holds.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in time")
		case <-tick.C:
		}
	}
}

// streamMsgs is the number of messages in a stream.
func streamMsgs(t *testing.T, s *Sink, name string) uint64 {
	t.Helper()
	str, err := s.js.Stream(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A poison event is retried MaxDeliver times, then moved to the dead
// letters with its reason, while the events after it are delivered; an
// event answered with a permanent error goes there at once.
func TestDurableDeadLetters(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	addr := freeAddr(t)
	reg := prometheus.NewPedanticRegistry()
	s := startDurableSinkMetrics(t, st, addr, DurableConfig{MaxDeliver: 3, RetryDelay: 10 * time.Millisecond}, reg)
	rec := newRecorder(func(ev *eventv1.Event) *eventv1.ProcessResponse {
		switch ev.GetPayload().GetStringValue() {
		case "poison":
			return &eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Error{
				Error: status.New(codes.Unavailable, "poison").Proto()}}
		case "bad":
			return &eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Error{
				Error: status.New(codes.InvalidArgument, "bad event").Proto()}}
		}
		return consumed(ev)
	})
	for _, p := range []string{"poison", "a", "bad", "b", "c"} {
		if _, err := send(s, ctx, hello(p)); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveFake(t, &fakeProcessor{answer: rec.process}, lis)
	rec.wait(t, ctx, 3+1+3) // poison 3 times, bad once, a b c
	eventually(t, func() bool { return streamMsgs(t, s, deadStream) == 2 && streamMsgs(t, s, durableStream) == 0 })

	rec.mu.Lock()
	var poison []string
	for _, ev := range rec.events {
		if ev.GetPayload().GetStringValue() == "poison" {
			poison = append(poison, ev.GetMetadata()[MetadataDelivery])
		}
	}
	rec.mu.Unlock()
	if len(poison) != 3 || poison[0] != "1" || poison[1] != "2" || poison[2] != "3" {
		t.Errorf("poison delivered with counts %q, want 1, 2, 3", poison)
	}
	dead, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ code, deliveries string }{
		"bad":    {"InvalidArgument", "1"},
		"poison": {"Unavailable", "3"},
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := dead.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev := new(eventv1.Event)
		if err := ev.UnmarshalVT(m.Data); err != nil {
			t.Fatal(err)
		}
		p := ev.GetPayload().GetStringValue()
		w, ok := want[p]
		if !ok {
			t.Errorf("dead letter %q, want only poison and bad", p)
			continue
		}
		if m.Subject != deadSubject+"TYPE_HELLO" || m.Header.Get(HeaderDeadCode) != w.code ||
			m.Header.Get(HeaderDeliveries) != w.deliveries || m.Header.Get(HeaderDeadReason) == "" ||
			m.Header.Get(HeaderAccepted) == "" {
			t.Errorf("dead letter %q: subject %s, headers %v; want code %s after %s deliveries, with a reason",
				p, m.Subject, m.Header, w.code, w.deliveries)
		}
	}

	got := gather(t, reg)
	for key, want := range map[string]float64{
		`eventproc_durable_stored_total{type="TYPE_HELLO"}`:                                  5,
		`eventproc_durable_duplicates_total{type="TYPE_HELLO"}`:                              0,
		`eventproc_durable_delivered_total{type="TYPE_HELLO"}`:                               3,
		`eventproc_durable_deliveries_again_total{type="TYPE_HELLO"}`:                        2,
		`eventproc_durable_redelivered_total{reason="unavailable",type="TYPE_HELLO"}`:        2,
		`eventproc_durable_dead_lettered_total{reason="max_deliveries",type="TYPE_HELLO"}`:   1,
		`eventproc_durable_dead_lettered_total{reason="invalid_argument",type="TYPE_HELLO"}`: 1,
		`eventproc_durable_store_errors_total{op="publish",type="TYPE_HELLO"}`:               0,
		`eventproc_durable_dead_letters{type="TYPE_HELLO"}`:                                  2,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", key, v, ok, want)
		}
	}
	// The backlog empties once every event was acked or moved.
	eventually(t, func() bool { return gather(t, reg)[`eventproc_durable_waiting{type="TYPE_HELLO"}`] == 0 })
}

// The backlog gauge reads the store: events stored while no processor is
// up are waiting, on every sink sharing the store.
func TestDurableWaitingGauge(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	addr := freeAddr(t)
	regA, regB := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	a := startDurableSinkMetrics(t, st, addr, DurableConfig{}, regA)
	startDurableSinkMetrics(t, st, addr, DurableConfig{}, regB)
	const key = `eventproc_durable_waiting{type="TYPE_HELLO"}`
	if v, ok := gather(t, regA)[key]; !ok || v != 0 {
		t.Errorf("before any event: %s = %v (exported: %v), want 0", key, v, ok)
	}
	for i := range 3 {
		if _, err := send(a, ctx, hello(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for name, reg := range map[string]*prometheus.Registry{"the sink that stored them": regA, "the other sink": regB} {
		if v := gather(t, reg)[key]; v != 3 {
			t.Errorf("%s: %s = %v, want 3", name, key, v)
		}
	}
	rec := newRecorder(consumed)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveFake(t, &fakeProcessor{answer: rec.process}, lis)
	rec.wait(t, ctx, 3)
	eventually(t, func() bool { return gather(t, regB)[key] == 0 })
}

// A full store answers RESOURCE_EXHAUSTED with a retry delay; a closed one
// UNAVAILABLE at once, and the route is not ready.
func TestDurableStoreFullOrDown(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	reg := prometheus.NewPedanticRegistry()
	s := startDurableSinkMetrics(t, st, freeAddr(t), DurableConfig{MaxBytes: 2048}, reg)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = send(s, ctx, hello("0123456789012345678901234567890123456789"))
	}
	wantCode(t, err, codes.ResourceExhausted)
	if d := retryDelayOf(err); d <= 0 {
		t.Errorf("full store: %v, want a RetryInfo", err)
	}

	st.Close()
	eventually(t, func() bool { return !s.Ready() })
	if rs := s.Status()[0]; rs.Ready || !rs.Durable || rs.Store == "connected" {
		t.Errorf("status with the store closed = %+v, want durable, not ready", rs)
	}
	start := time.Now()
	_, err = send(s, ctx, hello("x"))
	wantCode(t, err, codes.Unavailable)
	// One refused as full, one with the store down.
	if n := gather(t, reg)[`eventproc_durable_store_errors_total{op="publish",type="TYPE_HELLO"}`]; n != 2 {
		t.Errorf("store errors on publish = %v, want 2", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("answered after %v with the store closed, want at once", d)
	}
}

func retryDelayOf(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// sendKey sends ev with an idempotency key, as a gRPC server would hand
// it to Send.
func sendKey(s *Sink, ctx context.Context, key string, ev *eventv1.Event) (*eventv1.SendResponse, error) {
	return send(s, metadata.NewIncomingContext(ctx, metadata.Pairs("idempotency-key", key)), ev)
}

func TestDurableIdempotencyKey(t *testing.T) {
	ctx := testCtx(t)
	st := startStore(t)
	s := startDurableSink(t, st, freeAddr(t), DurableConfig{})
	first, err := sendKey(s, ctx, "k1", hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := sendKey(s, ctx, "k1", hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetDuplicate() || !again.GetDuplicate() || again.GetId() != first.GetId() || again.GetSequence() != first.GetSequence() {
		t.Errorf("first %v, again %v; want the same id and sequence, the second a duplicate", first, again)
	}
	_, err = sendKey(s, ctx, "k1", hello("b"))
	wantCode(t, err, codes.FailedPrecondition)
	// Another type, or another key: another event.
	other, err := sendKey(s, ctx, "k2", hello("a"))
	if err != nil || other.GetDuplicate() || other.GetSequence() == first.GetSequence() {
		t.Errorf("another key: %v, %v; want a new event", other, err)
	}

	// Concurrent retries with one key: stored once, all answered alike.
	const n = 20
	resps := make([]*eventv1.SendResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := sendKey(s, ctx, "k3", hello("c"))
			if err != nil {
				t.Error(err)
			}
			resps[i] = r
		})
	}
	wg.Wait()
	dups := 0
	for _, r := range resps {
		if r.GetId() != resps[0].GetId() || r.GetSequence() != resps[0].GetSequence() {
			t.Errorf("concurrent retries answered %v and %v, want the same id and sequence", resps[0], r)
		}
		if r.GetDuplicate() {
			dups++
		}
	}
	if dups != n-1 {
		t.Errorf("%d of %d concurrent retries were duplicates, want %d", dups, n, n-1)
	}
	if got := streamMsgs(t, s, durableStream); got != 3 {
		t.Errorf("%d events stored, want 3 (k1, k2, k3)", got)
	}
}
