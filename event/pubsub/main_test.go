package pubsub_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	hello   = eventv1.Type_TYPE_HELLO
	goodbye = eventv1.Type_TYPE_GOODBYE
)

// testContext bounds every wait of a test.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newEvent returns an event of type typ tagged with a publisher and counter.
func newEvent(typ eventv1.Type, publisher, n int) *eventv1.Event {
	return &eventv1.Event{Type: typ, Metadata: map[string]string{
		"publisher": strconv.Itoa(publisher),
		"n":         strconv.Itoa(n),
	}}
}

// subscribe subscribes or fails the test; the subscription is closed when
// the test ends.
func subscribe(t testing.TB, ctx context.Context, h *pubsub.Hub, types []eventv1.Type, lastEventID string) *pubsub.Subscription {
	t.Helper()
	s, err := h.Subscribe(ctx, types, lastEventID)
	if err != nil {
		t.Fatalf("Subscribe(%v, %q): %v", types, lastEventID, err)
	}
	t.Cleanup(s.Close)
	return s
}

// next calls Next or fails the test.
func next(t testing.TB, ctx context.Context, s *pubsub.Subscription) *eventv1.SubscribeResponse {
	t.Helper()
	resp, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return resp
}

// delivery is the part of a SubscribeResponse the tests compare.
type delivery struct {
	Seq, Missed uint64
}

func deliveries(t testing.TB, ctx context.Context, s *pubsub.Subscription, n int) []delivery {
	t.Helper()
	var got []delivery
	for range n {
		r := next(t, ctx, s)
		got = append(got, delivery{r.GetSequence(), r.GetMissed()})
	}
	return got
}

// waitEnded waits until s has ended and returns why.
func waitEnded(t testing.TB, ctx context.Context, s *pubsub.Subscription) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-ctx.Done():
		t.Fatalf("subscription did not end: %v", ctx.Err())
		return nil
	}
}

func uint64ToString(n uint64) string { return strconv.FormatUint(n, 10) }

// waitFor waits until ch is closed, failing the test when ctx is done first.
func waitFor(t testing.TB, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

// doneChan returns a channel closed when wg.Wait returns.
func doneChan(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}
