package pubsub_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestMissedCountsEveryLoss checks the hub's accounting contract under
// load: every event of a subscriber's types that it does not receive is
// counted, exactly, in the Missed field of the next event it receives.
//
// Concurrent publishers publish events of both types and of none
// (TYPE_UNSPECIFIED: it takes a sequence number but reaches nobody) to
// subscribers with tiny buffers: some read as fast as they can, some read
// nothing until publishing is over, so that their buffers overflow again and
// again, and some join while events are being published, new or resuming
// from a sequence number a publisher was given. Each publisher records the
// sequence number and type of every event it published. Afterwards, for each
// subscriber and each event it received, the number of events of its types
// published between the previous one it received (or its resume point) and
// this one must equal Missed; and the Missed fields must add up to
// Subscription.Missed.
//
// Publishing ends with one sentinel of each type. A sentinel is the newest
// event of its type, so no buffer drops it, and a subscriber reads until it
// has one: by then it has received, or been told it missed, everything
// published before.
func TestMissedCountsEveryLoss(t *testing.T) {
	const (
		publishers   = 4
		perPublisher = 500 // each type ≤ 1,024 events: resume counts stay exact
		fast         = 24  // subscribers reading all along
		stalled      = 16  // subscribers reading only once publishing is over
		joining      = 24  // subscribers joining midway, half of them resuming
	)
	tests := []struct {
		name string
		cfg  pubsub.Config
	}{
		{"drop oldest, buffer 1", pubsub.Config{BufferSize: 1, HistorySize: 16}},
		{"drop oldest, buffer 4", pubsub.Config{BufferSize: 4, HistorySize: 16}},
		{"drop oldest, no history", pubsub.Config{BufferSize: 4, DisableHistory: true}},
		{"disconnect", pubsub.Config{BufferSize: 64, HistorySize: 16, Policy: pubsub.Disconnect}},
	}
	filters := [][]eventv1.Type{{hello}, {goodbye}, {hello, goodbye}}
	kinds := []eventv1.Type{hello, goodbye, hello, eventv1.Type_TYPE_UNSPECIFIED}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			h := pubsub.New(tt.cfg)
			t.Cleanup(h.Close)

			type published struct {
				seq uint64
				typ eventv1.Type
			}
			// One subscriber's view.
			type subscriber struct {
				name  string
				types []eventv1.Type
				// after is the sequence number from which every event of
				// types must be accounted for; known bounds the start of
				// the check: a new subscriber that joined midway registered
				// at an unknown point, so its first event is checked from
				// the event before it only.
				after uint64
				known bool
				// resumed: it subscribed with a last event id.
				resumed bool
				sub     *pubsub.Subscription
				got     []delivery
				err     error // how Next ended, if not at a sentinel
			}
			var (
				mu   sync.Mutex
				subs []*subscriber
			)
			add := func(s *subscriber) {
				mu.Lock()
				subs = append(subs, s)
				mu.Unlock()
			}
			// read takes events until one is a sentinel or the subscription
			// ends.
			read := func(s *subscriber) {
				for {
					r, err := s.sub.Next(ctx)
					if err != nil {
						s.err = err
						return
					}
					s.got = append(s.got, delivery{r.GetSequence(), r.GetMissed()})
					if r.GetEvent().GetMetadata()["sentinel"] != "" {
						return
					}
				}
			}
			newSub := func(name string, types []eventv1.Type, lastEventID string) *subscriber {
				sub, err := h.Subscribe(ctx, types, lastEventID)
				if err != nil {
					t.Errorf("%s: Subscribe: %v", name, err)
					return nil
				}
				t.Cleanup(sub.Close)
				return &subscriber{name: name, types: types, sub: sub}
			}

			var readers sync.WaitGroup
			publishingDone := make(chan struct{})
			for i := range fast + stalled {
				s := newSub(fmt.Sprintf("subscriber %d", i), filters[i%len(filters)], "")
				if s == nil {
					continue
				}
				s.known = true // registered before the first event
				add(s)
				readers.Go(func() {
					if i >= fast {
						<-publishingDone
					}
					read(s)
				})
			}

			// Publisher 0 hands out resume points as it goes, for the
			// subscribers joining midway.
			resumeAt := make(chan uint64, joining)
			records := make([][]published, publishers)
			var pubs sync.WaitGroup
			for p := range publishers {
				pubs.Go(func() {
					for n := range perPublisher {
						typ := kinds[(n+p)%len(kinds)]
						seq := h.Publish(newEvent(typ, p, n))
						records[p] = append(records[p], published{seq, typ})
						if p == 0 && n%(perPublisher/joining) == 0 && len(resumeAt) < joining {
							resumeAt <- seq
						}
					}
				})
			}
			var joiners sync.WaitGroup
			joiners.Go(func() {
				for j := range joining {
					var seq uint64
					select {
					case seq = <-resumeAt:
					case <-ctx.Done():
						t.Errorf("joining subscriber %d: %v", j, ctx.Err())
						return
					}
					id := ""
					if j%2 == 1 {
						id = uint64ToString(seq)
					}
					s := newSub(fmt.Sprintf("joining subscriber %d (last id %q)", j, id), filters[j%len(filters)], id)
					if s == nil {
						continue
					}
					s.after, s.known, s.resumed = seq, id != "", id != ""
					add(s)
					readers.Go(func() { read(s) })
				}
			})
			waitFor(t, ctx, doneChan(&pubs), "publishers")
			waitFor(t, ctx, doneChan(&joiners), "joining subscribers")
			var sentinels []published
			for _, typ := range []eventv1.Type{hello, goodbye} {
				ev := newEvent(typ, -1, 0)
				ev.Metadata["sentinel"] = "true"
				sentinels = append(sentinels, published{h.Publish(ev), typ})
			}
			close(publishingDone)
			waitFor(t, ctx, doneChan(&readers), "subscribers")
			if t.Failed() {
				return
			}

			last := sentinels[len(sentinels)-1].seq
			typeOf := make([]eventv1.Type, last+1) // by sequence number
			for _, rec := range append(records, sentinels) {
				for _, e := range rec {
					if e.seq == 0 || e.seq > last || typeOf[e.seq] != eventv1.Type_TYPE_UNSPECIFIED {
						t.Fatalf("Publish returned sequence number %d twice or out of range", e.seq)
					}
					typeOf[e.seq] = e.typ
				}
			}
			// matching counts the events of types published after from
			// and before to.
			matching := func(types []eventv1.Type, from, to uint64) uint64 {
				var n uint64
				for seq := from + 1; seq < to; seq++ {
					for _, typ := range types {
						if typeOf[seq] == typ {
							n++
						}
					}
				}
				return n
			}

			var (
				disconnected int
				dropped      uint64 // missed by subscribers that did not resume
			)
			for _, s := range subs {
				if s.err != nil {
					if tt.cfg.Policy != pubsub.Disconnect || !errors.Is(s.err, pubsub.ErrSlowSubscriber) {
						t.Errorf("%s: Next: %v", s.name, s.err)
						continue
					}
					disconnected++
				}
				var total uint64 // Missed fields
				for _, d := range s.got {
					total += d.Missed
				}
				if s.err == nil && s.sub.Missed() != total {
					t.Errorf("%s: Missed fields add up to %d, Subscription.Missed() = %d", s.name, total, s.sub.Missed())
				}
				if !s.resumed {
					dropped += total
				}
				if tt.cfg.Policy == pubsub.Disconnect && !s.resumed && total != 0 {
					t.Errorf("%s: Missed fields add up to %d under Disconnect, want 0", s.name, total)
				}

				// Every matching event published after start must be
				// received or reported. A new subscriber that joined
				// midway registered at an unknown point: account from its
				// first event on.
				start, got := s.after, s.got
				if !s.known {
					if len(got) == 0 {
						continue
					}
					start, got = got[0].Seq, got[1:]
				}
				var reported uint64
				prev := start
				for k, d := range got {
					if d.Seq <= prev {
						t.Errorf("%s: sequence %d after %d", s.name, d.Seq, prev)
						break
					}
					if !slices.Contains(s.types, typeOf[d.Seq]) {
						t.Errorf("%s: received sequence %d of type %v", s.name, d.Seq, typeOf[d.Seq])
					}
					reported += d.Missed
					// Matching events published before this one that the
					// subscriber did not receive.
					lost := matching(s.types, start, d.Seq) - uint64(k)
					// Exact at every event; but a resuming subscriber's
					// first event reports all the matching events already
					// evicted from the history, and with two types some of
					// them may follow it in sequence order: then the count
					// comes early, and is exact once they are behind.
					final := k == len(got)-1 && s.err == nil
					if reported < lost || (reported > lost && (!s.resumed || final)) {
						t.Errorf("%s: at sequence %d (after %d) the Missed fields add up to %d, want %d: %d lost unreported",
							s.name, d.Seq, prev, reported, lost, int64(lost)-int64(reported))
						break
					}
					prev = d.Seq
				}
			}
			// The stalled subscribers' buffers cannot have held everything:
			// the test must have exercised the overflow it checks.
			if tt.cfg.Policy == pubsub.Disconnect {
				if disconnected < stalled {
					t.Errorf("%d subscriptions disconnected, want at least the %d stalled ones", disconnected, stalled)
				}
			} else if dropped == 0 {
				t.Error("no subscriber missed an event: the test did not overflow any buffer")
			}
			t.Logf("%d subscribers, %d events, %d dropped from buffers, %d disconnected", len(subs), last, dropped, disconnected)
		})
	}
}
