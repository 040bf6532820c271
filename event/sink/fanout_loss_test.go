package sink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Every event published through the sink reaches each of 1,000 gRPC
// subscribers or is counted in the missed field of the next one it
// receives, also when buffers overflow: for every subscriber, delivered plus
// missed equals published, and each response's missed is exactly the
// number of its events published since the previous response.
//
// Some subscribers stop reading while large events are published: their
// gRPC streams fill (the client's windows are fixed at 64 KiB, so gRPC can
// hold only so much for them), the sink's Send blocks, and their hub buffers
// of 4 events must overflow. The others read all along and may or may not
// fall behind.
func TestFanOutLossAccounted(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const (
		subscribers = 1000
		stalledEach = 50 // every 50th subscriber stalls: 20 of them
		bufferSize  = 4  // per subscriber in the hub
		large       = 8  // goodbye events of largeSize, for the stalled ones
		largeSize   = 32 << 10
		small       = 200 // hello events, for everyone
	)
	p := &publisher{pub: make(chan *eventv1.Event)}
	addr, _ := startFake(t, p)
	s := startSink(t, Config{
		Routes:           helloRoute(addr),
		StreamsPerTarget: 1, // one ordered publish stream
		PubSub:           pubsub.Config{BufferSize: bufferSize},
	})
	client := serveSinkWindows(t, s)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	// The events in publishing order; the index of each is in its
	// metadata. One processor stream publishes them, so the hub assigns
	// sequence numbers in this order too.
	var events []*eventv1.Event
	event := func(typ eventv1.Type, payload string) {
		ev := &eventv1.Event{Type: typ, Payload: structpb.NewStringValue(payload),
			Metadata: map[string]string{"i": strconv.Itoa(len(events))}}
		events = append(events, ev)
	}
	event(eventv1.Type_TYPE_HELLO, "ready") // every subscriber receives it before the rest is published
	for range large {
		event(eventv1.Type_TYPE_GOODBYE, strings.Repeat("x", largeSize))
	}
	for i := range small {
		event(eventv1.Type_TYPE_HELLO, strconv.Itoa(i))
	}
	lastIndex := len(events) - 1 // the newest event: no buffer drops it
	publish := func(evs []*eventv1.Event) {
		for _, ev := range evs {
			select {
			case p.pub <- ev:
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}

	type result struct {
		delivered, missed uint64
		err               error
	}
	results := make([]result, subscribers)
	var ready, done sync.WaitGroup
	published := make(chan struct{}) // closed when the stalled may read on
	both := []eventv1.Type{eventv1.Type_TYPE_HELLO, eventv1.Type_TYPE_GOODBYE}
	for i := range subscribers {
		types := both[:1]
		stalled := i%stalledEach == 0
		if stalled {
			types = both
		}
		// Resume from 0, so that a subscriber registered after the first
		// event was published still receives it, from the history.
		sub, err := client.Subscribe(ctx, &eventv1.SubscribeRequest{Types: types, LastEventId: "0"})
		if err != nil {
			t.Fatal(err)
		}
		ready.Add(1)
		done.Go(func() {
			isReady := sync.OnceFunc(ready.Done)
			defer isReady()
			res := &results[i]
			prev := -1 // index of the previous event received
			for {
				resp, err := sub.Recv()
				if err != nil {
					res.err = fmt.Errorf("subscriber %d after index %d: %w", i, prev, err)
					return
				}
				idx, err := strconv.Atoi(resp.GetEvent().GetMetadata()["i"])
				if err != nil || idx <= prev || idx > lastIndex {
					res.err = fmt.Errorf("subscriber %d: event with index %q after %d", i, resp.GetEvent().GetMetadata()["i"], prev)
					return
				}
				// The events of its types published since the previous one
				// it received, and not received: exactly what missed says.
				var want uint64
				for j := prev + 1; j < idx; j++ {
					if slices.Contains(types, events[j].GetType()) {
						want++
					}
				}
				if resp.GetMissed() != want {
					res.err = fmt.Errorf("subscriber %d: event %d after %d has missed %d, want %d: %d lost unreported",
						i, idx, prev, resp.GetMissed(), want, int64(want)-int64(resp.GetMissed()))
					return
				}
				res.delivered++
				res.missed += resp.GetMissed()
				if prev < 0 {
					isReady()
					if stalled {
						select {
						case <-published:
						case <-ctx.Done():
							res.err = ctx.Err()
							return
						}
					}
				}
				prev = idx
				if idx == lastIndex {
					return
				}
			}
		})
	}
	publish(events[:1])
	waitGroup(t, ctx, &ready, "every subscriber to receive the first event")
	publish(events[1:])
	close(published)
	waitGroup(t, ctx, &done, "every subscriber to receive the last event")

	var missed, stalledMissed uint64
	for i, res := range results {
		if res.err != nil {
			t.Error(res.err)
			continue
		}
		want := uint64(1 + small) // hello
		if i%stalledEach == 0 {
			want += large
			stalledMissed += res.missed
		}
		if res.delivered+res.missed != want {
			t.Errorf("subscriber %d: %d delivered + %d missed, want %d published", i, res.delivered, res.missed, want)
		}
		missed += res.missed
	}
	st := s.Stats().PubSub
	if st.Dropped != missed {
		t.Errorf("the hub dropped %d events from buffers, subscribers were told of %d", st.Dropped, missed)
	}
	if stalledMissed == 0 {
		t.Error("no stalled subscriber missed an event: the test did not overflow their buffers")
	}
	t.Logf("%d subscribers, %d events published: %d missed, %d of them by the stalled", subscribers, st.Published, missed, stalledMissed)
}

// serveSinkWindows is serveSink with the client's flow-control windows
// fixed at 64 KiB per stream and 1 MiB per connection, so that a subscriber
// that does not read holds up its stream after a bounded amount of data.
func serveSinkWindows(t *testing.T, s *Sink) eventv1.SinkServiceClient {
	t.Helper()
	return serveSink(t, s, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(1<<20))
}

// waitGroup waits for wg, failing the test when ctx ends first.
func waitGroup(t *testing.T, ctx context.Context, wg *sync.WaitGroup, what string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}
