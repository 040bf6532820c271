package pubsub_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestChurn runs publishers against subscribers that come and go every way
// a subscription can end, for the race detector, and checks that each
// subscriber sees strictly increasing sequence numbers, that every
// subscription ends as asked, and that the hub ends with no subscriber.
func TestChurn(t *testing.T) {
	const (
		publishers  = 4
		subscribers = 16
		rounds      = 30
	)
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{BufferSize: 8, HistorySize: 16, MaxSubscribers: subscribers})
	stop := make(chan struct{})

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				h.Publish(newEvent([]eventv1.Type{hello, goodbye}[n%2], p, n))
			}
		})
	}

	filters := [][]eventv1.Type{{hello}, {goodbye}, {hello, goodbye}}
	var subs sync.WaitGroup
	for i := range subscribers {
		subs.Go(func() {
			var last uint64 // resume point across rounds
			for round := range rounds {
				filter := filters[(i+round)%len(filters)]
				id := ""
				if round%2 == 1 {
					id = strconv.FormatUint(last, 10)
				}
				subCtx, cancel := context.WithCancel(ctx)
				s, err := h.Subscribe(subCtx, filter, id)
				if err != nil {
					cancel()
					t.Errorf("subscriber %d: Subscribe: %v", i, err)
					return
				}
				prev := uint64(0)
				for range 20 {
					r, err := s.Next(ctx)
					if err != nil {
						t.Errorf("subscriber %d: Next: %v", i, err)
						break
					}
					if r.GetSequence() <= prev {
						t.Errorf("subscriber %d: sequence %d after %d", i, r.GetSequence(), prev)
					}
					prev, last = r.GetSequence(), r.GetSequence()
				}
				switch round % 3 {
				case 0:
					cancel()
				case 1:
					s.Close()
				case 2:
					cancel()
					s.Close()
				}
				select {
				case <-s.Done():
				case <-ctx.Done():
					t.Errorf("subscriber %d: subscription did not end", i)
					cancel()
					return
				}
				if err := s.Err(); !errors.Is(err, context.Canceled) && !errors.Is(err, pubsub.ErrClosed) {
					t.Errorf("subscriber %d: ended with %v", i, err)
				}
				cancel()
			}
		})
	}
	waitFor(t, ctx, doneChan(&subs), "subscribers")
	close(stop)
	waitFor(t, ctx, doneChan(&pubs), "publishers")
	if got := h.Stats().Subscribers; got != 0 {
		t.Errorf("Stats().Subscribers = %d, want 0", got)
	}
	h.Close()
}
