package pubsub_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestStuckSubscriber publishes N events while one subscriber never calls
// Next: a fast subscriber receives each event as soon as it is published,
// and the stuck one then finds what its policy left it.
func TestStuckSubscriber(t *testing.T) {
	const (
		bufferSize = 16
		n          = 100
	)
	tests := []struct {
		name    string
		policy  pubsub.Policy
		want    []delivery // what the stuck subscriber receives
		wantErr error      // then how it ended, or nil if live
		stats   pubsub.Stats
	}{
		{
			name:   "drop oldest",
			policy: pubsub.DropOldest,
			// The newest bufferSize events, the first carrying the count
			// of the n-bufferSize dropped.
			want:  append([]delivery{{Seq: n - bufferSize + 1, Missed: n - bufferSize}}, consecutive(n-bufferSize+2, n)...),
			stats: pubsub.Stats{Subscribers: 2, Published: n, Dropped: n - bufferSize},
		},
		{
			name:    "disconnect",
			policy:  pubsub.Disconnect,
			wantErr: pubsub.ErrSlowSubscriber,
			stats:   pubsub.Stats{Subscribers: 1, Published: n, Disconnected: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(pubsub.Config{BufferSize: bufferSize, Policy: tt.policy})
			t.Cleanup(h.Close)
			stuck := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
			fast := subscribe(t, ctx, h, []eventv1.Type{hello}, "")

			for i := range n {
				seq := h.Publish(newEvent(hello, 0, i))
				// Next must not wait: the event is already buffered.
				if r := next(t, ctx, fast); r.GetSequence() != seq || r.GetMissed() != 0 {
					t.Fatalf("fast subscriber got sequence %d missed %d, want %d missed 0", r.GetSequence(), r.GetMissed(), seq)
				}
			}
			if got := h.Stats(); got != tt.stats {
				t.Errorf("Stats() = %+v, want %+v", got, tt.stats)
			}

			if tt.wantErr != nil {
				if err := waitEnded(t, ctx, stuck); !errors.Is(err, tt.wantErr) {
					t.Errorf("stuck subscription ended with %v, want %v", err, tt.wantErr)
				}
				if _, err := stuck.Next(ctx); !errors.Is(err, tt.wantErr) {
					t.Errorf("stuck.Next() = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if got := stuck.Missed(); got != n-bufferSize {
				t.Errorf("stuck.Missed() = %d, want %d", got, n-bufferSize)
			}
			if got := deliveries(t, ctx, stuck, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("stuck subscriber got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDropOldestAccounting interleaves publishing and reading at random and
// checks that every delivery's Missed counts exactly the events skipped
// since the previous delivery.
func TestDropOldestAccounting(t *testing.T) {
	for _, bufferSize := range []int{1, 2, 5, 64} {
		t.Run("buffer="+strconv.Itoa(bufferSize), func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(pubsub.Config{BufferSize: bufferSize})
			t.Cleanup(h.Close)
			s := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
			rng := rand.New(rand.NewPCG(1, uint64(bufferSize)))
			var last, published, sum uint64
			for range 5000 {
				if rng.IntN(3) > 0 { // publish twice as often as read
					published = h.Publish(newEvent(hello, 0, 0))
					continue
				}
				if last == published {
					continue // nothing buffered: Next would wait
				}
				r := next(t, ctx, s)
				if got, want := r.GetMissed(), r.GetSequence()-last-1; got != want {
					t.Fatalf("got sequence %d missed %d after sequence %d, want missed %d", r.GetSequence(), got, last, want)
				}
				sum += r.GetMissed()
				last = r.GetSequence()
			}
			// Missed counts the drops reported so far and those still owed to
			// the oldest buffered event.
			pending := published - last - min(published-last, uint64(bufferSize))
			if got, want := s.Missed(), sum+pending; got != want {
				t.Errorf("Missed() = %d, want %d reported + %d pending", got, sum, pending)
			}
			if got := h.Stats().Dropped; got != s.Missed() {
				t.Errorf("Stats().Dropped = %d, want Missed() = %d", got, s.Missed())
			}
		})
	}
}

func TestSubscriptionEnd(t *testing.T) {
	tests := []struct {
		name     string
		end      func(cancel context.CancelFunc, h *pubsub.Hub, s *pubsub.Subscription)
		wantErr  error
		wantSubs int // subscribers left
	}{
		{name: "context canceled", end: func(cancel context.CancelFunc, _ *pubsub.Hub, _ *pubsub.Subscription) { cancel() }, wantErr: context.Canceled, wantSubs: 1},
		{name: "subscription closed", end: func(_ context.CancelFunc, _ *pubsub.Hub, s *pubsub.Subscription) { s.Close(); s.Close() }, wantErr: pubsub.ErrClosed, wantSubs: 1},
		{name: "hub closed", end: func(_ context.CancelFunc, h *pubsub.Hub, _ *pubsub.Subscription) { h.Close() }, wantErr: pubsub.ErrClosed, wantSubs: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(pubsub.Config{})
			t.Cleanup(h.Close)
			subCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			s := subscribe(t, subCtx, h, []eventv1.Type{hello, goodbye}, "")
			other := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
			h.Publish(newEvent(hello, 0, 0))
			next(t, ctx, s)
			h.Publish(newEvent(goodbye, 0, 1)) // buffered, then discarded

			errc := make(chan error, 1)
			go func() {
				_, err := s.Next(ctx)
				for err == nil { // the buffered event, if Next won the race
					_, err = s.Next(ctx)
				}
				errc <- err
			}()
			tt.end(cancel, h, s)

			if err := waitEnded(t, ctx, s); !errors.Is(err, tt.wantErr) {
				t.Errorf("Err() = %v, want %v", err, tt.wantErr)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Next() = %v, want %v", err, tt.wantErr)
				}
			case <-ctx.Done():
				t.Fatal("Next did not return when the subscription ended")
			}
			if _, err := s.Next(ctx); !errors.Is(err, tt.wantErr) {
				t.Errorf("Next() after the end = %v, want %v", err, tt.wantErr)
			}
			if got := h.Stats().Subscribers; got != tt.wantSubs {
				t.Errorf("Stats().Subscribers = %d, want %d", got, tt.wantSubs)
			}
			if tt.wantSubs == 0 {
				return
			}
			// The hub no longer delivers to s; the other subscriber goes on.
			seq := h.Publish(newEvent(hello, 0, 2))
			if got := deliveries(t, ctx, other, 2); !slices.Equal(got, []delivery{{Seq: 1}, {Seq: seq}}) {
				t.Errorf("other subscriber got %v, want sequences 1 and %d", got, seq)
			}
		})
	}
}

// TestUnsubscribeFreesSlots subscribes and unsubscribes many times and
// checks that the hub ends with no subscriber.
func TestUnsubscribeFreesSlots(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{MaxSubscribers: 10})
	t.Cleanup(h.Close)
	for i := range 100 {
		subCtx, cancel := context.WithCancel(ctx)
		var subs []*pubsub.Subscription
		for range 10 {
			subs = append(subs, subscribe(t, subCtx, h, []eventv1.Type{hello, goodbye}, ""))
		}
		h.Publish(newEvent(goodbye, 0, i))
		if i%2 == 0 {
			cancel()
		} else {
			for _, s := range subs {
				s.Close()
			}
			cancel()
		}
		for _, s := range subs {
			waitEnded(t, ctx, s)
		}
	}
	if got := h.Stats().Subscribers; got != 0 {
		t.Errorf("Stats().Subscribers = %d, want 0", got)
	}
}

func TestSubscribeWithDoneContext(t *testing.T) {
	h := pubsub.New(pubsub.Config{})
	t.Cleanup(h.Close)
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if _, err := h.Subscribe(ctx, []eventv1.Type{hello}, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe(canceled ctx) = %v, want context.Canceled", err)
	}
	if got := h.Stats().Subscribers; got != 0 {
		t.Errorf("Stats().Subscribers = %d, want 0", got)
	}
}

func TestNextContextKeepsSubscription(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{})
	t.Cleanup(h.Close)
	s := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
	nextCtx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Next(nextCtx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next(canceled ctx) = %v, want context.Canceled", err)
	}
	seq := h.Publish(newEvent(hello, 0, 0))
	if r := next(t, ctx, s); r.GetSequence() != seq {
		t.Errorf("Next() after a canceled Next = sequence %d, want %d", r.GetSequence(), seq)
	}
}

// consecutive returns deliveries of sequences from..to with nothing missed.
func consecutive(from, to uint64) []delivery {
	var out []delivery
	for s := from; s <= to; s++ {
		out = append(out, delivery{Seq: s})
	}
	return out
}
