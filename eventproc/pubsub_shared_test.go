package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitReady polls /readyz until it answers 200: the routes are live and
// shared pub/sub has caught up with its stream.
func (s *sinkProc) waitReady(ctx context.Context) {
	s.t.Helper()
	for ctx.Err() == nil {
		if resp, _ := s.get(ctx, "/readyz"); resp.StatusCode == http.StatusOK {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.t.Fatalf("sink never became ready: %v", ctx.Err())
}

// seen is an SSE event as a subscriber saw it: its id and payload.
type seen struct{ id, payload string }

func (sub *subscription) seen(t *testing.T) seen {
	t.Helper()
	f := sub.nextEvent(nil)
	if f.event != "TYPE_HELLO" {
		t.Fatalf("SSE block %+v, want a TYPE_HELLO event", f)
	}
	return seen{f.id, parseEvent(t, f.data).GetPayload().GetStringValue()}
}

// TestSharedPubSub: two sinks share one embedded NATS (--nats-listen on
// one, --nats-url on the other) and one publishing processor, which
// publishes every event through both. Each event is stored once and seen
// once, under the same id, by subscribers of either sink; a client resumes
// on the other sink with no duplicate and no gap; a resume point beyond the
// history is reported as missed, and an id of another history as a reset.
func TestSharedPubSub(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	proc := startPublisher(t)
	const history = 4
	common := []string{"--route", "hello=" + proc, "--history", strconv.Itoa(history)}
	a := startSink(t, append(common, "--nats-listen", "127.0.0.1:0", "--data-dir", t.TempDir())...)
	natsURL := "nats://" + a.log.addr("nats")
	b := startSink(t, append(common, "--nats-url", natsURL)...)
	a.waitReady(ctx)
	b.waitReady(ctx)

	const sse = "text/event-stream"
	onA := a.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse)
	onB := b.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse)
	const n = 6
	var want []seen
	for i := range n {
		s := []*sinkProc{a, b}[i%2] // sent through either sink
		s.publish(ctx, "TYPE_HELLO", "ev-"+strconv.Itoa(i+1))
	}
	for i := range n {
		gotA, gotB := onA.seen(t), onB.seen(t)
		payload := "ev-" + strconv.Itoa(i+1)
		// Stored once each: the stream sequence goes up by one per event.
		if !strings.HasSuffix(gotA.id, "-"+strconv.Itoa(i+1)) || gotA.payload != payload || gotB != gotA {
			t.Fatalf("event %d: sink A saw %+v, sink B %+v; want %s with id EPOCH-%d on both", i+1, gotA, gotB, payload, i+1)
		}
		want = append(want, gotA)
	}
	epoch, _, _ := strings.Cut(want[0].id, "-")

	// Resume across sinks: read up to k on A, go on from B.
	const k = 3
	onA.close()
	resumed := b.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse, "Last-Event-ID", want[k-1].id)
	for i := k; i < n; i++ {
		if got := resumed.seen(t); got != want[i] {
			t.Fatalf("resumed on B after %s: got %+v, want %+v", want[k-1].id, got, want[i])
		}
	}
	a.publish(ctx, "TYPE_HELLO", "live")
	if got := resumed.seen(t); got.payload != "live" || got.id != epoch+"-"+strconv.Itoa(n+1) {
		t.Fatalf("after the replay on B: %+v, want the live event %s-%d (no duplicate)", got, epoch, n+1)
	}
	if got := onB.seen(t); got.payload != "live" {
		t.Fatalf("live subscriber on B: %+v, want the live event", got)
	}

	// The history holds the latest 4 of 7: resuming after the first on
	// either sink reports the 2 evicted ones, then the 4 retained.
	for name, s := range map[string]*sinkProc{"A": a, "B": b} {
		sub := s.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse, "Last-Event-ID", want[0].id)
		if f := sub.nextEvent(nil); f.event != "missed" || f.data != `{"missed":2}` || f.hasID {
			t.Errorf("sink %s, resuming after %s: first block %+v, want event: missed with {\"missed\":2}", name, want[0].id, f)
		}
		if got := sub.seen(t); got != want[3] {
			t.Errorf("sink %s: then %+v, want %+v", name, got, want[3])
		}
		sub.close()
	}

	// A sink started after the evictions never saw them, yet tells.
	c := startSink(t, append(common, "--nats-url", natsURL)...)
	c.waitReady(ctx)
	late := c.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse, "Last-Event-ID", want[0].id)
	if f := late.nextEvent(nil); f.event != "missed" || f.data != `{"missed":2}` {
		t.Errorf("late sink, resuming after %s: first block %+v, want event: missed with {\"missed\":2}", want[0].id, f)
	}
	if got := late.seen(t); got != want[3] {
		t.Errorf("late sink: then %+v, want %+v", got, want[3])
	}

	// An id of another history: a decimal one from a sink that kept
	// pub/sub to itself, or another epoch's. The client is told, then gets
	// what this history retains.
	for _, id := range []string{"2", "zz-2"} {
		sub := b.subscribe(ctx, "/v1/events:subscribe?types=hello", "Accept", sse, "Last-Event-ID", id)
		if f := sub.nextEvent(nil); f.event != "reset" || f.data != `{"reset":true}` || f.hasID {
			t.Errorf("Last-Event-ID %s: first block %+v, want event: reset", id, f)
		}
		if f := sub.nextEvent(nil); f.event != "missed" {
			t.Errorf("Last-Event-ID %s: second block %+v, want event: missed (the evicted ones)", id, f)
		}
		if got := sub.seen(t); got != want[3] {
			t.Errorf("Last-Event-ID %s: then %+v, want %+v", id, got, want[3])
		}
		sub.close()
	}
}
