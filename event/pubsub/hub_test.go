package pubsub_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestFanOut has several goroutines publish to 1,000 subscribers with
// different type filters, and checks that each subscriber receives every
// event of its types exactly once, in sequence order and so in each
// publisher's order.
func TestFanOut(t *testing.T) {
	const (
		subscribers = 1000
		publishers  = 4
		perPub      = 50 // events per publisher, alternating types
	)
	filters := [][]eventv1.Type{{hello}, {goodbye}, {hello, goodbye}}
	ctx := testContext(t)
	// A buffer holding everything means no drop, however the goroutines run.
	h := pubsub.New(pubsub.Config{BufferSize: publishers*perPub + 2})
	t.Cleanup(h.Close)

	typeOf := func(n int) eventv1.Type { return []eventv1.Type{hello, goodbye}[n%2] }
	subs := make([]*pubsub.Subscription, subscribers)
	for i := range subs {
		subs[i] = subscribe(t, ctx, h, filters[i%len(filters)], "")
	}

	var readers sync.WaitGroup
	for i, s := range subs {
		readers.Go(func() {
			filter := filters[i%len(filters)]
			got := make([][]int, publishers) // counters received, per publisher
			var last uint64
			for {
				r, err := s.Next(ctx)
				if err != nil {
					t.Errorf("subscriber %d: Next: %v", i, err)
					return
				}
				if r.GetSequence() <= last || r.GetMissed() != 0 {
					t.Errorf("subscriber %d: got sequence %d missed %d after %d, want increasing sequences and missed 0", i, r.GetSequence(), r.GetMissed(), last)
				}
				last = r.GetSequence()
				ev := r.GetEvent()
				if !slices.Contains(filter, ev.GetType()) {
					t.Errorf("subscriber %d for %v: got a %v event", i, filter, ev.GetType())
				}
				if ev.GetMetadata()["end"] != "" {
					break
				}
				p, _ := strconv.Atoi(ev.GetMetadata()["publisher"])
				n, _ := strconv.Atoi(ev.GetMetadata()["n"])
				got[p] = append(got[p], n)
			}
			for p := range publishers {
				var want []int
				for n := range perPub {
					if slices.Contains(filter, typeOf(n)) {
						want = append(want, n)
					}
				}
				if !slices.Equal(got[p], want) {
					t.Errorf("subscriber %d for %v: from publisher %d got counters %v, want %v", i, filter, p, got[p], want)
				}
			}
		})
	}

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for n := range perPub {
				h.Publish(newEvent(typeOf(n), p, n))
			}
		})
	}
	waitFor(t, ctx, doneChan(&pubs), "publishers")
	// Everything published before the end markers reaches a subscriber
	// before the first of them.
	for _, typ := range []eventv1.Type{hello, goodbye} {
		h.Publish(&eventv1.Event{Type: typ, Metadata: map[string]string{"end": "1"}})
	}
	waitFor(t, ctx, doneChan(&readers), "subscribers")

	if got, want := h.Stats(), (pubsub.Stats{Subscribers: subscribers, Published: publishers*perPub + 2}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestPublishSequence(t *testing.T) {
	h := pubsub.New(pubsub.Config{})
	t.Cleanup(h.Close)
	for want := uint64(1); want <= 5; want++ {
		if got := h.Publish(newEvent(hello, 0, int(want))); got != want {
			t.Errorf("Publish() = %d, want %d", got, want)
		}
	}
	if got := h.Publish(nil); got != 0 {
		t.Errorf("Publish(nil) = %d, want 0", got)
	}
	if got := h.Stats().Published; got != 5 {
		t.Errorf("Stats().Published = %d, want 5", got)
	}
}

func TestTypeFiltering(t *testing.T) {
	tests := []struct {
		name    string
		types   []eventv1.Type
		publish []eventv1.Type
		want    []uint64 // sequence numbers received
	}{
		{name: "hello only", types: []eventv1.Type{hello}, publish: []eventv1.Type{hello, goodbye, hello, goodbye}, want: []uint64{1, 3}},
		{name: "goodbye only", types: []eventv1.Type{goodbye}, publish: []eventv1.Type{hello, goodbye, hello, goodbye}, want: []uint64{2, 4}},
		{name: "both", types: []eventv1.Type{goodbye, hello}, publish: []eventv1.Type{hello, goodbye, goodbye, hello}, want: []uint64{1, 2, 3, 4}},
		{name: "duplicates count once", types: []eventv1.Type{hello, hello}, publish: []eventv1.Type{hello, goodbye, hello}, want: []uint64{1, 3}},
		{name: "unsubscribed types are skipped", types: []eventv1.Type{hello}, publish: []eventv1.Type{goodbye, eventv1.Type(42), hello}, want: []uint64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(pubsub.Config{})
			t.Cleanup(h.Close)
			s := subscribe(t, ctx, h, tt.types, "")
			for i, typ := range tt.publish {
				h.Publish(newEvent(typ, 0, i))
			}
			// A final event of every subscribed type marks the end.
			end := h.Publish(newEvent(tt.types[0], 0, -1))
			var got []uint64
			for {
				r := next(t, ctx, s)
				if r.GetSequence() == end {
					break
				}
				if !slices.Contains(tt.types, r.GetEvent().GetType()) {
					t.Errorf("got a %v event, want only %v", r.GetEvent().GetType(), tt.types)
				}
				got = append(got, r.GetSequence())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got sequences %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSubscribeErrors(t *testing.T) {
	tests := []struct {
		name        string
		types       []eventv1.Type
		lastEventID string
		wantErr     error
		wantMsg     string
	}{
		{name: "no types", types: nil, wantErr: pubsub.ErrInvalidTypes, wantMsg: "no types"},
		{name: "unspecified", types: []eventv1.Type{hello, eventv1.Type_TYPE_UNSPECIFIED}, wantErr: pubsub.ErrInvalidTypes, wantMsg: "TYPE_UNSPECIFIED"},
		{name: "undefined value", types: []eventv1.Type{eventv1.Type(99)}, wantErr: pubsub.ErrInvalidTypes, wantMsg: "99"},
		{name: "negative value", types: []eventv1.Type{eventv1.Type(-1)}, wantErr: pubsub.ErrInvalidTypes, wantMsg: "-1"},
		{name: "word id", types: []eventv1.Type{hello}, lastEventID: "abc", wantErr: pubsub.ErrInvalidLastEventID, wantMsg: `"abc"`},
		{name: "negative id", types: []eventv1.Type{hello}, lastEventID: "-1", wantErr: pubsub.ErrInvalidLastEventID},
		{name: "signed id", types: []eventv1.Type{hello}, lastEventID: "+1", wantErr: pubsub.ErrInvalidLastEventID},
		{name: "spaced id", types: []eventv1.Type{hello}, lastEventID: " 1", wantErr: pubsub.ErrInvalidLastEventID},
		{name: "fraction id", types: []eventv1.Type{hello}, lastEventID: "1.5", wantErr: pubsub.ErrInvalidLastEventID},
		{name: "hex id", types: []eventv1.Type{hello}, lastEventID: "0x1", wantErr: pubsub.ErrInvalidLastEventID},
		{name: "id overflows uint64", types: []eventv1.Type{hello}, lastEventID: "18446744073709551616", wantErr: pubsub.ErrInvalidLastEventID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pubsub.New(pubsub.Config{})
			t.Cleanup(h.Close)
			s, err := h.Subscribe(testContext(t), tt.types, tt.lastEventID)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
				t.Errorf("Subscribe(%v, %q) = %v, want %v mentioning %q", tt.types, tt.lastEventID, err, tt.wantErr, tt.wantMsg)
			}
			if s != nil {
				t.Errorf("Subscribe returned a subscription with error %v", err)
			}
			if got := h.Stats().Subscribers; got != 0 {
				t.Errorf("Stats().Subscribers = %d after a failed Subscribe, want 0", got)
			}
		})
	}
}

func TestMaxSubscribers(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{MaxSubscribers: 3})
	t.Cleanup(h.Close)
	var subs []*pubsub.Subscription
	for range 3 {
		subs = append(subs, subscribe(t, ctx, h, []eventv1.Type{hello}, ""))
	}
	if _, err := h.Subscribe(ctx, []eventv1.Type{hello}, ""); !errors.Is(err, pubsub.ErrTooManySubscribers) {
		t.Fatalf("fourth Subscribe() = %v, want ErrTooManySubscribers", err)
	}
	subs[1].Close()
	if _, err := h.Subscribe(ctx, []eventv1.Type{goodbye}, ""); err != nil {
		t.Fatalf("Subscribe() after a Close = %v, want a free slot", err)
	}
}

func TestHubClose(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{})
	a := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
	b := subscribe(t, ctx, h, []eventv1.Type{hello, goodbye}, "")
	h.Publish(newEvent(hello, 0, 0))

	h.Close()
	h.Close() // idempotent

	for name, s := range map[string]*pubsub.Subscription{"a": a, "b": b} {
		if _, err := s.Next(ctx); !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("%s.Next() after Hub.Close = %v, want ErrClosed", name, err)
		}
	}
	if got := h.Publish(newEvent(hello, 0, 1)); got != 0 {
		t.Errorf("Publish() after Close = %d, want 0", got)
	}
	if _, err := h.Subscribe(ctx, []eventv1.Type{hello}, ""); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Subscribe() after Close = %v, want ErrClosed", err)
	}
	if got := h.Stats().Subscribers; got != 0 {
		t.Errorf("Stats().Subscribers = %d after Close, want 0", got)
	}
}

func TestPublishUnsubscribableTypes(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{})
	t.Cleanup(h.Close)
	for i, typ := range []eventv1.Type{eventv1.Type_TYPE_UNSPECIFIED, eventv1.Type(77), eventv1.Type(-5)} {
		if got, want := h.Publish(newEvent(typ, 0, i)), uint64(i+1); got != want {
			t.Errorf("Publish(%v) = %d, want %d", typ, got, want)
		}
	}
	// Replaying everything finds only the valid event.
	h.Publish(newEvent(hello, 0, 3))
	s := subscribe(t, ctx, h, []eventv1.Type{hello, goodbye}, "0")
	if r := next(t, ctx, s); r.GetSequence() != 4 || r.GetMissed() != 0 {
		t.Errorf("Next() = sequence %d missed %d, want 4 missed 0", r.GetSequence(), r.GetMissed())
	}
}
