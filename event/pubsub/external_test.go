package pubsub_test

import (
	"errors"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// externalHub returns a hub numbered from outside, of epoch "e1", with
// events of types published at sequence numbers 10, 20, 30, ...
func externalHub(t *testing.T, cfg pubsub.Config, types []eventv1.Type) *pubsub.Hub {
	t.Helper()
	cfg.External = true
	h := pubsub.New(cfg)
	t.Cleanup(h.Close)
	h.Reset("e1")
	for i, typ := range types {
		if !h.PublishAt(uint64(10*(i+1)), newEvent(typ, 0, i)) {
			t.Fatalf("PublishAt(%d) = false", 10*(i+1))
		}
	}
	return h
}

func TestExternalResume(t *testing.T) {
	both := []eventv1.Type{hello, goodbye}
	tests := []struct {
		name        string
		lastEventID string
		want        []delivery
		wantReset   bool
	}{
		{name: "same epoch", lastEventID: "e1-20", want: []delivery{{Seq: 30}, {Seq: 40}, {Seq: 50}}},
		{name: "between sequence numbers", lastEventID: "e1-25", want: []delivery{{Seq: 30}, {Seq: 40}, {Seq: 50}}},
		{name: "other epoch", lastEventID: "e0-40", want: []delivery{{Seq: 10}, {Seq: 20}, {Seq: 30}}, wantReset: true},
		{name: "decimal id from a hub numbering its own", lastEventID: "3", want: []delivery{{Seq: 10}, {Seq: 20}, {Seq: 30}}, wantReset: true},
		{name: "new events only", lastEventID: "", want: []delivery{{Seq: 60}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := externalHub(t, pubsub.Config{}, alternate(5))
			s := subscribe(t, ctx, h, both, tt.lastEventID)
			h.PublishAt(60, newEvent(hello, 0, 6))
			for i, want := range tt.want {
				r := next(t, ctx, s)
				if got := (delivery{r.GetSequence(), r.GetMissed()}); got != want {
					t.Fatalf("delivery %d = %+v, want %+v", i, got, want)
				}
				if got, want := r.GetLastEventId(), pubsub.EventID("e1", want.Seq); got != want {
					t.Errorf("delivery %d: LastEventId = %q, want %q", i, got, want)
				}
				if got := r.GetHistoryReset(); got != (tt.wantReset && i == 0) {
					t.Errorf("delivery %d: HistoryReset = %v, want %v", i, got, tt.wantReset && i == 0)
				}
			}
		})
	}
}

// A subscriber resuming ahead of a lagging hub gets no event twice: the
// hub skips live events up to the resume point.
func TestExternalResumeAhead(t *testing.T) {
	ctx := testContext(t)
	h := externalHub(t, pubsub.Config{}, alternate(2))
	s := subscribe(t, ctx, h, []eventv1.Type{hello, goodbye}, "e1-40")
	for seq := uint64(30); seq <= 50; seq += 10 {
		h.PublishAt(seq, newEvent(hello, 0, int(seq)))
	}
	h.PublishAt(50, newEvent(hello, 0, 99)) // a repeat: ignored
	if got := deliveries(t, ctx, s, 1); got[0] != (delivery{Seq: 50}) {
		t.Fatalf("got %+v, want only sequence 50", got)
	}
}

// Events evicted before the hub saw them are reported, not skipped silently.
func TestExternalLostBefore(t *testing.T) {
	ctx := testContext(t)
	h := pubsub.New(pubsub.Config{External: true})
	t.Cleanup(h.Close)
	h.Reset("e1")
	h.LostBefore(hello, 100)
	h.PublishAt(100, newEvent(hello, 0, 1))
	h.PublishAt(101, newEvent(hello, 0, 2))
	s := subscribe(t, ctx, h, []eventv1.Type{hello}, "e1-90")
	got := deliveries(t, ctx, s, 2)
	if got[0].Seq != 100 || got[0].Missed == 0 || got[0].Missed > 9 || got[1] != (delivery{Seq: 101}) {
		t.Fatalf("got %+v, want 100 with 1..9 missed, then 101", got)
	}
	// Resuming from where the shared history starts misses nothing.
	s = subscribe(t, ctx, h, []eventv1.Type{hello}, "e1-99")
	if got := deliveries(t, ctx, s, 1); got[0] != (delivery{Seq: 100}) {
		t.Fatalf("from 99: got %+v, want 100 with nothing missed", got)
	}
}

func TestExternalReset(t *testing.T) {
	ctx := testContext(t)
	h := externalHub(t, pubsub.Config{}, alternate(3))
	s := subscribe(t, ctx, h, []eventv1.Type{hello}, "")
	h.Reset("e2")
	if err := waitEnded(t, ctx, s); !errors.Is(err, pubsub.ErrReset) {
		t.Fatalf("subscription ended with %v, want ErrReset", err)
	}
	h.PublishAt(1, newEvent(hello, 0, 1))
	s = subscribe(t, ctx, h, []eventv1.Type{hello}, "e1-30")
	r := next(t, ctx, s)
	if r.GetSequence() != 1 || !r.GetHistoryReset() || r.GetLastEventId() != "e2-1" {
		t.Fatalf("got %v, want e2-1 marked reset", r)
	}
}

func TestExternalBadLastEventID(t *testing.T) {
	h := externalHub(t, pubsub.Config{}, nil)
	for _, id := range []string{"-5", "e1-", "e1-x", "abc"} {
		if _, err := h.Subscribe(testContext(t), []eventv1.Type{hello}, id); !errors.Is(err, pubsub.ErrInvalidLastEventID) {
			t.Errorf("Subscribe(%q) error = %v, want ErrInvalidLastEventID", id, err)
		}
	}
}
