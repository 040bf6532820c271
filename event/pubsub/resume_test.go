package pubsub_test

import (
	"slices"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// alternate returns n event types, hello at odd sequence numbers and
// goodbye at even ones when published first on a new hub.
func alternate(n int) []eventv1.Type {
	var out []eventv1.Type
	for i := range n {
		out = append(out, []eventv1.Type{hello, goodbye}[i%2])
	}
	return out
}

func repeat(typ eventv1.Type, n int) []eventv1.Type {
	return slices.Repeat([]eventv1.Type{typ}, n)
}

func TestResume(t *testing.T) {
	both := []eventv1.Type{hello, goodbye}
	tests := []struct {
		name        string
		cfg         pubsub.Config
		before      []eventv1.Type // published before Subscribe
		types       []eventv1.Type
		lastEventID string
		after       []eventv1.Type // published after Subscribe
		want        []delivery
	}{
		{
			name: "new events only", before: alternate(10), types: []eventv1.Type{hello}, lastEventID: "",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 11}},
		},
		{
			name: "from zero", before: alternate(10), types: []eventv1.Type{hello}, lastEventID: "0",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 1}, {Seq: 3}, {Seq: 5}, {Seq: 7}, {Seq: 9}, {Seq: 11}},
		},
		{
			name: "after an event of another type", before: alternate(10), types: []eventv1.Type{hello}, lastEventID: "4",
			after: []eventv1.Type{goodbye, hello}, want: []delivery{{Seq: 5}, {Seq: 7}, {Seq: 9}, {Seq: 12}},
		},
		{
			name: "merged across types", before: alternate(10), types: both, lastEventID: "6",
			after: []eventv1.Type{goodbye}, want: []delivery{{Seq: 7}, {Seq: 8}, {Seq: 9}, {Seq: 10}, {Seq: 11}},
		},
		{
			name: "from the latest", before: alternate(10), types: both, lastEventID: "10",
			after: []eventv1.Type{goodbye}, want: []delivery{{Seq: 11}},
		},
		{
			name: "from beyond the latest", before: alternate(10), types: both, lastEventID: "500",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 11}},
		},
		{
			name: "nothing published yet", types: both, lastEventID: "3",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 1}},
		},
		{
			name: "evicted, one type", cfg: pubsub.Config{HistorySize: 4}, before: repeat(hello, 10), types: []eventv1.Type{hello}, lastEventID: "2",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 7, Missed: 4}, {Seq: 8}, {Seq: 9}, {Seq: 10}, {Seq: 11}},
		},
		{
			name: "evicted, other types interleaved", cfg: pubsub.Config{HistorySize: 2}, before: alternate(10), types: []eventv1.Type{hello}, lastEventID: "0",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 7, Missed: 3}, {Seq: 9}, {Seq: 11}},
		},
		{
			name: "evicted, other types interleaved after the id", cfg: pubsub.Config{HistorySize: 2}, before: alternate(10), types: []eventv1.Type{hello}, lastEventID: "2",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 7, Missed: 2}, {Seq: 9}, {Seq: 11}},
		},
		{
			// The hub remembers the sequence numbers of the latest 1024
			// evicted events of a type: hello 51 to 2097 here. It forgot
			// those of hello 1 to 49, so it bounds how many of them came
			// after 10 by min(25 forgotten, 49-10) = 25, where 19 did.
			name: "evicted long ago, upper bound", cfg: pubsub.Config{HistorySize: 1}, before: alternate(2100), types: []eventv1.Type{hello}, lastEventID: "10",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 2099, Missed: 1024 + 25}, {Seq: 2101}},
		},
		{
			name: "evicted long ago, exact count bound", cfg: pubsub.Config{HistorySize: 1}, before: alternate(2100), types: []eventv1.Type{hello}, lastEventID: "0",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 2099, Missed: 1049}, {Seq: 2101}},
		},
		{
			name: "evicted, both types", cfg: pubsub.Config{HistorySize: 2}, before: alternate(10), types: both, lastEventID: "0",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 7, Missed: 6}, {Seq: 8}, {Seq: 9}, {Seq: 10}, {Seq: 11}},
		},
		{
			name: "evicted only before the id", cfg: pubsub.Config{HistorySize: 4}, before: repeat(hello, 10), types: []eventv1.Type{hello}, lastEventID: "6",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 7}, {Seq: 8}, {Seq: 9}, {Seq: 10}, {Seq: 11}},
		},
		{
			name: "history disabled", cfg: pubsub.Config{DisableHistory: true}, before: repeat(hello, 5), types: []eventv1.Type{hello}, lastEventID: "2",
			after: []eventv1.Type{hello, hello}, want: []delivery{{Seq: 6, Missed: 3}, {Seq: 7}},
		},
		{
			name: "history disabled, up to date", cfg: pubsub.Config{DisableHistory: true}, before: repeat(hello, 5), types: []eventv1.Type{hello}, lastEventID: "5",
			after: []eventv1.Type{hello}, want: []delivery{{Seq: 6}},
		},
		{
			// Live events overflow the buffer while the replay waits: the
			// loss is reported where it happened, after the replay.
			name: "live overflow behind the replay", cfg: pubsub.Config{BufferSize: 2}, before: repeat(hello, 5), types: []eventv1.Type{hello}, lastEventID: "0",
			after: repeat(hello, 4), want: []delivery{{Seq: 1}, {Seq: 2}, {Seq: 3}, {Seq: 4}, {Seq: 5}, {Seq: 8, Missed: 2}, {Seq: 9}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(tt.cfg)
			t.Cleanup(h.Close)
			for i, typ := range tt.before {
				h.Publish(newEvent(typ, 0, i))
			}
			s := subscribe(t, ctx, h, tt.types, tt.lastEventID)
			for i, typ := range tt.after {
				h.Publish(newEvent(typ, 0, len(tt.before)+i))
			}
			var wantMissed uint64
			for _, d := range tt.want {
				wantMissed += d.Missed
			}
			if got := s.Missed(); got != wantMissed {
				t.Errorf("Missed() = %d before reading, want %d", got, wantMissed)
			}
			if got := deliveries(t, ctx, s, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("Subscribe(%v, %q) delivered %v, want %v", tt.types, tt.lastEventID, got, tt.want)
			}
		})
	}
}

// TestResumeWhilePublishing subscribes with a recent last event id while
// another goroutine keeps publishing, many times, and checks that the
// subscriber receives every event after the id exactly once, in order: the
// replay and the live events meet with no duplicate and no gap.
func TestResumeWhilePublishing(t *testing.T) {
	const (
		iterations = 200
		events     = 300
	)
	ctx := testContext(t)
	for i := range iterations {
		h := pubsub.New(pubsub.Config{BufferSize: events})
		halfway := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for n, typ := range alternate(events) {
				h.Publish(newEvent(typ, 0, n))
				if n == events/2 {
					close(halfway)
				}
			}
		}()
		waitFor(t, ctx, halfway, "half the events")
		last := h.Stats().Published - uint64(i%20) // sometimes "0"-like, mostly recent
		id := uint64ToString(last)
		s := subscribe(t, ctx, h, []eventv1.Type{hello, goodbye}, id)
		want := last + 1
		for want <= events {
			r := next(t, ctx, s)
			if r.GetSequence() != want || r.GetMissed() != 0 {
				t.Fatalf("iteration %d, resuming after %d: got sequence %d missed %d, want %d missed 0", i, last, r.GetSequence(), r.GetMissed(), want)
			}
			want++
		}
		waitFor(t, ctx, done, "the publisher")
		s.Close()
		h.Close()
	}
}
