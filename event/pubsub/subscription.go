package pubsub

import (
	"context"
	"sync"
	"sync/atomic"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// item is one event waiting for delivery to a subscriber.
type item struct {
	seq    uint64
	ev     *eventv1.Event
	missed uint64 // matching events lost just before this one
	reset  bool   // the first event of a history new to the subscriber
}

// Subscription is one subscriber's stream of events, created by
// Hub.Subscribe. Events wait in a bounded buffer until Next takes them. One
// goroutine at a time may call Next; Close, Done, Err and Missed may be
// called from any goroutine, also while Next is blocked.
type Subscription struct {
	hub   *Hub
	types []eventv1.Type // sorted and unique; never changes

	// Guarded by hub.mu.
	pos        []int // pos[i] is the index of s in the hub's list for types[i]
	registered bool
	skip       uint64 // live events up to this sequence number are not for s

	epoch string // of the hub's history when s subscribed (Config.External)

	notify chan struct{} // capacity 1: something was pushed while waiting
	done   chan struct{} // closed when the subscription ends

	missed atomic.Uint64 // total events missed

	// Guarded by mu; the fields push uses come first, to share cache lines.
	mu         sync.Mutex
	buf        ring[item]  // live events; limit Config.BufferSize
	carry      uint64      // missed count owed to the next item pushed
	carryReset bool        // reset owed to the next item pushed
	waiting    bool        // Next found nothing and waits on notify
	err        error       // why the subscription ended; nil while live
	replay     []item      // history to deliver before buf
	stop       func() bool // stops the context.AfterFunc that ends s
}

// Next returns the next event, waiting until one is published, ctx is done
// or the subscription ends. The response's Missed field counts the matching
// events the subscriber lost just before this one.
//
// When ctx is done Next returns ctx.Err() and the subscription stays live.
// Once the subscription has ended Next returns why, every time: the error of
// the context given to Subscribe, ErrSlowSubscriber, or ErrClosed. Events
// still buffered at that point are discarded.
func (s *Subscription) Next(ctx context.Context) (*eventv1.SubscribeResponse, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		it, ok := s.popLocked()
		s.waiting = !ok
		s.mu.Unlock()
		if ok {
			resp := &eventv1.SubscribeResponse{Event: it.ev, Sequence: it.seq, Missed: it.missed, HistoryReset: it.reset}
			if s.epoch != "" {
				resp.LastEventId = EventID(s.epoch, it.seq)
			}
			return resp, nil
		}
		select {
		case <-s.notify:
		case <-s.done:
		case <-ctx.Done():
		}
	}
}

// Close ends the subscription, removes it from the hub and releases its
// buffer; Next then returns ErrClosed. Close is idempotent.
func (s *Subscription) Close() { s.end(ErrClosed) }

// Done returns a channel closed once the subscription ended and left the hub.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended, or nil while it is live.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Missed returns the total number of matching events this subscription has
// missed so far (dropped from its full buffer, or evicted from the history
// before it resumed), including losses no response has reported yet.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// popLocked removes and returns the oldest item, replayed history first.
func (s *Subscription) popLocked() (item, bool) {
	if len(s.replay) > 0 {
		it := s.replay[0]
		s.replay[0] = item{}
		s.replay = s.replay[1:]
		if len(s.replay) == 0 {
			s.replay = nil
		}
		return it, true
	}
	return s.buf.pop()
}

// pushResult says what push did.
type pushResult int

const (
	pushed     pushResult = iota // buffered the event
	pushedDrop                   // buffered it, dropping the oldest event
	pushFull                     // buffer full under Disconnect: end s
)

// push buffers an event, making room as the policy says; on pushFull the hub
// must end the subscription. The hub's mutex is held.
func (s *Subscription) push(e entry, policy Policy) pushResult {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return pushed // ended meanwhile; end removes it from the hub
	}
	if s.buf.len() == s.buf.limit && policy == Disconnect {
		s.mu.Unlock()
		return pushFull
	}
	result := pushed
	if old, full := s.buf.push(item{seq: e.seq, ev: e.ev, missed: s.carry, reset: s.carryReset}); full {
		// The item now oldest reports the dropped one and what it reported.
		front := s.buf.front()
		front.missed += old.missed + 1
		front.reset = front.reset || old.reset
		s.missed.Add(1)
		result = pushedDrop
	}
	s.carry, s.carryReset = 0, false
	// Signal only a waiting Next, sparing the channel while it is busy.
	wake := s.waiting
	s.waiting = false
	s.mu.Unlock()
	if wake {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return result
}

// end ends the subscription with err unless it has already ended. It must
// not be called with hub.mu held.
func (s *Subscription) end(err error) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.endLocked(s, err)
}
