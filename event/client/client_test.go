package client

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func hello(id, payload string) *eventv1.Event {
	return &eventv1.Event{Id: id, Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue(payload)}
}

// wantCode marks the test failed unless err is a status error with code.
// It may be called from any goroutine.
func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Errorf("error %v: code %v, want %v", err, got, code)
	}
}

// Send returns the processor's reply, keeps the caller's id, gives an event
// without one an id of its own and leaves the caller's event as it was.
func TestSendEcho(t *testing.T) {
	e := startEnv(t, echo)
	c := newClient(t, e.conn, Options{})
	ctx := testCtx(t)

	resp, err := c.Send(ctx, hello("ev-1", "hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED || resp.GetEvent().GetId() != "ev-1" ||
		resp.GetEvent().GetPayload().GetStringValue() != "hi" {
		t.Fatalf("answer %v, want the event ev-1 echoed", resp)
	}

	ids := map[string]bool{}
	for range 3 {
		ev := hello("", "anonymous")
		before := proto.Clone(ev)
		resp, err := c.Send(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetEvent().GetId()
		if id == "" || ids[id] {
			t.Fatalf("reply id %q: want a fresh id", id)
		}
		ids[id] = true
		if !proto.Equal(ev, before) {
			t.Fatalf("Send changed the caller's event to %v", ev)
		}
	}
}

// Every answer is the one the unary Send gives for the same event: a reply,
// consumed, the processor's error, the sink's error for a type without a
// route.
func TestSendLikeUnary(t *testing.T) {
	e := startEnv(t, func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		switch ev.GetPayload().GetStringValue() {
		case "consume":
			return nil, nil
		case "refuse":
			return nil, status.Error(codes.FailedPrecondition, "not now")
		}
		return ev, nil
	})
	c := newClient(t, e.conn, Options{})
	unary := eventv1.NewSinkServiceClient(e.conn)
	ctx := testCtx(t)

	for _, ev := range []*eventv1.Event{
		hello("a", "reply"),
		hello("b", "consume"),
		hello("c", "refuse"),
		{Id: "d", Type: eventv1.Type_TYPE_GOODBYE},
		{Id: "e"},
	} {
		ev.Time = timestamppb.New(time.Unix(1795888656, 0)) // else the sink stamps each
		want, wantErr := unary.Send(ctx, &eventv1.SendRequest{Event: ev})
		got, gotErr := c.Send(ctx, ev)
		if status.Code(gotErr) != status.Code(wantErr) || status.Convert(gotErr).Message() != status.Convert(wantErr).Message() {
			t.Errorf("event %q: error %v, unary Send's %v", ev.GetId(), gotErr, wantErr)
		}
		if !proto.Equal(got, want) {
			t.Errorf("event %q: answer %v, unary Send's %v", ev.GetId(), got, want)
		}
	}
}

// Many goroutines sending at once each get their own answers.
func TestSendConcurrent(t *testing.T) {
	e := startEnv(t, echo)
	c := newClient(t, e.conn, Options{})
	ctx := testCtx(t)

	const senders, each = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				payload := fmt.Sprintf("%d/%d", g, i)
				id := ""
				if i%2 == 0 {
					id = "id-" + payload
				}
				resp, err := c.Send(ctx, hello(id, payload))
				if err != nil {
					errs <- err
					return
				}
				if got := resp.GetEvent().GetPayload().GetStringValue(); got != payload {
					errs <- fmt.Errorf("sent %q, answer carries %q", payload, got)
					return
				}
				if id != "" && resp.GetEvent().GetId() != id {
					errs <- fmt.Errorf("sent id %q, answer carries %q", id, resp.GetEvent().GetId())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total, batched := 0, 0
	for _, n := range e.msgs.get() {
		total += n
		if n > 1 {
			batched += n
		}
	}
	if total != senders*each {
		t.Errorf("the sink read %d events, want %d", total, senders*each)
	}
	t.Logf("%d of %d events went in batches", batched, total)
}

// A caller's deadline travels with its event: the sink gives up on it at
// that deadline, not at its own default timeout, and the event's slot is
// free again.
func TestDeadlineTravels(t *testing.T) {
	e := startEnv(t, func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		if ev.GetPayload().GetStringValue() == "block" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return ev, nil
	})
	c := newClient(t, e.conn, Options{MaxInFlight: 1})

	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, hello("slow", "block"))
	wantCode(t, err, codes.DeadlineExceeded)

	// The one slot is taken until the sink answers "slow", which it
	// does at its deadline; its default timeout (10 s) would outlast this.
	ctx, cancel = context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	if _, err := c.Send(ctx, hello("next", "hi")); err != nil {
		t.Fatal(err)
	}
}

// Events waiting together go out in one message, up to MaxBatch events and
// MaxMessageBytes bytes; MaxBatch 1 sends each alone.
func TestBatches(t *testing.T) {
	const n = 100
	ev := func(i int) *eventv1.Event { return hello(fmt.Sprintf("e-%03d", i), "same size") }
	entry := proto.Size(&eventv1.StreamRequest{Event: ev(0)})
	inBatch := 1 + 1 + entry // tag, length (one byte), entry

	for _, tc := range []struct {
		name string
		opts Options
		want []int
	}{
		{"default", Options{}, []int{64, 36}},
		{"MaxBatch 10", Options{MaxBatch: 10}, []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}},
		{"MaxBatch 1", Options{MaxBatch: 1}, repeat(1, n)},
		{"MaxMessageBytes", Options{MaxMessageBytes: 30*inBatch + inBatch/2}, []int{30, 30, 30, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []int
			f := &fakeSink{stream: func(_ int, ss eventv1.SinkService_StreamServer) error {
				for {
					req, err := ss.Recv()
					if err != nil {
						return nil
					}
					mu.Lock()
					got = append(got, len(events(req)))
					mu.Unlock()
					for _, r := range events(req) {
						if err := ss.Send(echoed(r)); err != nil {
							return err
						}
					}
				}
			}}
			// The sink starts serving only once every event waits in
			// the client's queue: the client waits for it to be ready.
			lis := listen(t)
			srv := grpc.NewServer()
			eventv1.RegisterSinkServiceServer(srv, f)
			defer srv.Stop()
			conn := dial(t, lis.Addr().String())
			tc.opts.CallOptions = []grpc.CallOption{grpc.WaitForReady(true)}
			c := newClient(t, conn, tc.opts)

			ctx, cancel := context.WithCancel(context.Background()) // no deadline: same sizes
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					resp, err := c.Send(ctx, ev(i))
					if err == nil && resp.GetEvent().GetId() != ev(i).GetId() {
						err = fmt.Errorf("event %s answered with %v", ev(i).GetId(), resp)
					}
					if err != nil {
						errs <- err
					}
				})
			}
			waitFor(t, "every event queued", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.cur != nil && len(c.cur.queue) == n
			})
			go func() { _ = srv.Serve(lis) }()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("messages of %v events, want %v", got, tc.want)
			}
		})
	}
}

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// recorder is a fake sink stream that records what it receives and
// answers nothing until release is closed, then echoes everything.
type recorder struct {
	mu       sync.Mutex
	received []*eventv1.StreamRequest
	release  chan struct{}
}

func newRecorder() *recorder { return &recorder{release: make(chan struct{})} }

func (r *recorder) stream(_ int, ss eventv1.SinkService_StreamServer) error {
	reqs := make(chan *eventv1.StreamRequest, 1024)
	go func() {
		defer close(reqs)
		for {
			req, err := ss.Recv()
			if err != nil {
				return
			}
			for _, e := range events(req) {
				r.mu.Lock()
				r.received = append(r.received, e)
				r.mu.Unlock()
				reqs <- e
			}
		}
	}()
	select {
	case <-r.release:
	case <-ss.Context().Done():
		return nil
	}
	for req := range reqs {
		if err := ss.Send(echoed(req)); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, req := range r.received {
		ids = append(ids, req.GetEvent().GetId())
	}
	return ids
}

// The caller's deadline ends its wait even when the sink never answers,
// and the sink is told the time left.
func TestCallerDeadline(t *testing.T) {
	r := newRecorder()
	c := newClient(t, serveFake(t, &fakeSink{stream: r.stream}), Options{})
	// Long enough for the stream to open on a loaded machine: an event
	// whose caller gave up before it was written is not sent at all.
	const timeout = time.Second
	ctx, cancel := context.WithTimeout(testCtx(t), timeout)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, hello("x", "hi"))
	wantCode(t, err, codes.DeadlineExceeded)
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("Send returned after %v", waited)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.received) != 1 {
		t.Fatalf("the sink got %d events, want 1", len(r.received))
	}
	if d := r.received[0].GetTimeout().AsDuration(); d <= 0 || d > timeout {
		t.Fatalf("timeout sent %v, want the time left of %v", d, timeout)
	}
}

// At most MaxInFlight events are in flight: the next Send waits for room
// within its context and sends nothing.
func TestMaxInFlight(t *testing.T) {
	r := newRecorder()
	c := New(serveFake(t, &fakeSink{stream: r.stream}), Options{MaxInFlight: 2})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			_, err := c.Send(context.Background(), hello(fmt.Sprint(i), "hi"))
			wantCode(t, err, codes.Canceled) // by Close below
		})
	}
	waitFor(t, "two events at the sink", func() bool { return r.count() == 2 })

	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, hello("third", "hi"))
	wantCode(t, err, codes.DeadlineExceeded)

	c.Close()
	wg.Wait()
	if ids := r.ids(); len(ids) != 2 {
		t.Fatalf("the sink got %v, want two events", ids)
	}
}

// When the stream breaks, the events in flight on it fail with its status,
// and the next Send opens a new one.
func TestStreamBreaks(t *testing.T) {
	got := make(chan struct{}, 3)
	f := &fakeSink{stream: func(n int, ss eventv1.SinkService_StreamServer) error {
		if n > 0 {
			return echoStream(ss)
		}
		for range 3 {
			req, err := ss.Recv()
			if err != nil {
				return err
			}
			for range events(req) {
				got <- struct{}{}
			}
			if len(got) == 3 {
				break
			}
		}
		return status.Error(codes.Unavailable, "sink restarting")
	}}
	c := newClient(t, serveFake(t, f), Options{})
	ctx := testCtx(t)

	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			_, err := c.Send(ctx, hello(fmt.Sprint(i), "hi"))
			if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "sink restarting" {
				t.Errorf("event %d: %v, want the stream's UNAVAILABLE: sink restarting", i, err)
			}
		})
	}
	wg.Wait()
	if _, err := c.Send(ctx, hello("after", "hi")); err != nil {
		t.Fatal(err)
	}
	if n := f.streams(); n != 2 {
		t.Fatalf("%d streams opened, want 2", n)
	}
}

// echoStream echoes every event until the client closes the stream.
func echoStream(ss eventv1.SinkService_StreamServer) error {
	for {
		req, err := ss.Recv()
		if err != nil {
			return nil
		}
		for _, r := range events(req) {
			if err := ss.Send(echoed(r)); err != nil {
				return err
			}
		}
	}
}

// A sink that ends the stream without an error fails what is in flight
// with UNAVAILABLE.
func TestSinkEndsStream(t *testing.T) {
	f := &fakeSink{stream: func(int, eventv1.SinkService_StreamServer) error { return nil }}
	c := newClient(t, serveFake(t, f), Options{})
	_, err := c.Send(testCtx(t), hello("x", "hi"))
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), "ended the stream") {
		t.Fatalf("error %v, want it to say the sink ended the stream", err)
	}
}

// Close fails what is in flight with CANCELLED, and every Send after it.
func TestClose(t *testing.T) {
	r := newRecorder()
	c := New(serveFake(t, &fakeSink{stream: r.stream}), Options{})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			_, err := c.Send(context.Background(), hello(fmt.Sprint(i), "hi"))
			wantCode(t, err, codes.Canceled)
		})
	}
	waitFor(t, "three events at the sink", func() bool { return r.count() == 3 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_, err := c.Send(testCtx(t), hello("late", "hi"))
	wantCode(t, err, codes.Canceled)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Events the client cannot send fail alone, with the sink's codes, and
// never reach the stream.
func TestBadEvents(t *testing.T) {
	f := &fakeSink{stream: func(_ int, ss eventv1.SinkService_StreamServer) error { return echoStream(ss) }}
	c := newClient(t, serveFake(t, f), Options{MaxMessageBytes: 200})
	ctx := testCtx(t)

	_, err := c.Send(ctx, nil)
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Send(ctx, &eventv1.Event{Id: "bad-\xff", Type: eventv1.Type_TYPE_HELLO})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Send(ctx, hello("big", strings.Repeat("x", 300)))
	wantCode(t, err, codes.ResourceExhausted)
	expired, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Send(expired, hello("late", "hi"))
	wantCode(t, err, codes.Canceled)

	if _, err := c.Send(ctx, hello("good", "hi")); err != nil {
		t.Fatal(err)
	}
	if n := f.streams(); n != 1 {
		t.Fatalf("%d streams opened, want 1", n)
	}
}

// An id already in flight is refused; the first event is unaffected.
func TestDuplicateID(t *testing.T) {
	r := newRecorder()
	c := newClient(t, serveFake(t, &fakeSink{stream: r.stream}), Options{})
	ctx := testCtx(t)
	first := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, hello("dup", "first"))
		first <- err
	}()
	waitFor(t, "the first event at the sink", func() bool { return r.count() == 1 })
	_, err := c.Send(ctx, hello("dup", "second"))
	wantCode(t, err, codes.AlreadyExists)
	close(r.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// An event whose caller gave up before it was sent is not sent, and its
// slot is free again.
func TestDropsAbandoned(t *testing.T) {
	r := newRecorder()
	close(r.release)
	lis := listen(t)
	srv := grpc.NewServer()
	eventv1.RegisterSinkServiceServer(srv, &fakeSink{stream: r.stream})
	defer srv.Stop()
	c := newClient(t, dial(t, lis.Addr().String()), Options{
		MaxInFlight: 1,
		CallOptions: []grpc.CallOption{grpc.WaitForReady(true)},
	})

	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := c.Send(ctx, hello("abandoned", "hi"))
		done <- err
	}()
	waitFor(t, "the event queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.cur != nil && len(c.cur.queue) == 1
	})
	cancel()
	wantCode(t, <-done, codes.Canceled)
	go func() { _ = srv.Serve(lis) }()
	if _, err := c.Send(testCtx(t), hello("kept", "hi")); err != nil {
		t.Fatal(err)
	}
	if ids := r.ids(); fmt.Sprint(ids) != "[kept]" {
		t.Fatalf("the sink got %v, want only [kept]", ids)
	}
}
