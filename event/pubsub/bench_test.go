package pubsub_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fanout is what BenchmarkPublish measures: the hub, and as a baseline the
// simplest non-blocking fan-out, a buffered channel per subscriber that
// drops the newest event when full (no history, ordering or accounting).
type fanout interface {
	publish(ev *eventv1.Event)
	// subscribe returns a function that blocks for the next event and the
	// number missed before it.
	subscribe(ctx context.Context) func() (*eventv1.Event, uint64, error)
	// end delivers ev to every subscriber, waiting if need be.
	end(ev *eventv1.Event)
	close()
}

type hubFanout struct{ h *pubsub.Hub }

func (f hubFanout) publish(ev *eventv1.Event) { f.h.Publish(ev) }
func (f hubFanout) end(ev *eventv1.Event)     { f.h.Publish(ev) } // the newest event is never dropped
func (f hubFanout) close()                    { f.h.Close() }
func (f hubFanout) subscribe(ctx context.Context) func() (*eventv1.Event, uint64, error) {
	s, err := f.h.Subscribe(ctx, []eventv1.Type{hello}, "")
	if err != nil {
		panic(err)
	}
	return func() (*eventv1.Event, uint64, error) {
		r, err := s.Next(ctx)
		return r.GetEvent(), r.GetMissed(), err
	}
}

type chanFanout struct {
	mu   sync.RWMutex
	subs []chan *eventv1.Event
}

func (f *chanFanout) publish(ev *eventv1.Event) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, c := range f.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

func (f *chanFanout) end(ev *eventv1.Event) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, c := range f.subs {
		c <- ev
	}
}

func (f *chanFanout) close() {}

func (f *chanFanout) subscribe(ctx context.Context) func() (*eventv1.Event, uint64, error) {
	c := make(chan *eventv1.Event, pubsub.DefaultBufferSize)
	f.mu.Lock()
	f.subs = append(f.subs, c)
	f.mu.Unlock()
	return func() (*eventv1.Event, uint64, error) {
		select {
		case ev := <-c:
			return ev, 0, nil
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// BenchmarkPublish publishes b.N events to subscribers that each drain their
// subscription on a goroutine, and reports the events delivered per second,
// counted from the first Publish until every subscriber has drained, and
// the share of events dropped because a subscriber fell behind. The
// baseline runs first, so that each hub run also reports its deliveries/s as
// a multiple of the baseline's (x-baseline).
// publish-ns/event is the time spent in Publish per event; ns/op also
// includes the final drain.
func BenchmarkPublish(b *testing.B) {
	for _, subscribers := range []int{1, 100, 1000} {
		for _, publishers := range []int{1, 4} {
			prefix := fmt.Sprintf("subscribers=%d/publishers=%d/", subscribers, publishers)
			var baseline float64
			b.Run(prefix+"chan-baseline", func(b *testing.B) {
				baseline = benchPublish(b, &chanFanout{}, subscribers, publishers)
			})
			b.Run(prefix+"hub", func(b *testing.B) {
				rate := benchPublish(b, hubFanout{pubsub.New(pubsub.Config{})}, subscribers, publishers)
				if baseline > 0 {
					b.ReportMetric(rate/baseline, "x-baseline")
				}
			})
		}
	}
}

// benchPublish runs one measurement and returns the deliveries per second.
func benchPublish(b *testing.B, f fanout, subscribers, publishers int) float64 {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	defer f.close()
	ev := &eventv1.Event{Type: hello, Id: "bench"}
	endMarker := &eventv1.Event{Type: hello, Id: "end"}

	var delivered, missed atomic.Uint64
	var drainers sync.WaitGroup
	for range subscribers {
		next := f.subscribe(ctx)
		drainers.Go(func() {
			var n, m uint64
			for {
				got, lost, err := next()
				if err != nil {
					b.Errorf("Next: %v", err)
					return
				}
				m += lost
				if got == endMarker {
					break
				}
				n++
			}
			delivered.Add(n)
			missed.Add(m)
		})
	}

	b.ResetTimer()
	start := time.Now()
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for i := p; i < b.N; i += publishers {
				f.publish(ev)
			}
		})
	}
	pubs.Wait()
	publishing := time.Since(start)
	f.end(endMarker)
	drainers.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	rate := float64(delivered.Load()) / elapsed.Seconds()
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(float64(publishing.Nanoseconds())/float64(b.N), "publish-ns/event")
	total := float64(b.N) * float64(subscribers)
	b.ReportMetric(float64(total-float64(delivered.Load()))/total, "dropped/event")
	if _, ok := f.(hubFanout); ok && delivered.Load()+missed.Load() != uint64(total) {
		b.Errorf("delivered %d + missed %d, want %d events", delivered.Load(), missed.Load(), uint64(total))
	}
	return rate
}

// BenchmarkPublishStuck measures Publish when no subscriber reads: every
// buffer is full, so each event replaces the oldest one of each subscriber.
// ns/op is the cost of one Publish; per-subscriber/op divides it by the
// number of subscribers.
func BenchmarkPublishStuck(b *testing.B) {
	for _, subscribers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			h := pubsub.New(pubsub.Config{})
			defer h.Close()
			for range subscribers {
				if _, err := h.Subscribe(b.Context(), []eventv1.Type{hello}, ""); err != nil {
					b.Fatal(err)
				}
			}
			ev := &eventv1.Event{Type: hello}
			for range pubsub.DefaultBufferSize {
				h.Publish(ev)
			}
			b.ResetTimer()
			for range b.N {
				h.Publish(ev)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/subscriber")
		})
	}
}
