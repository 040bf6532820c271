package pubsub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Hub fans published events out to subscriptions and retains a bounded
// history of each type for subscribers that resume. Create one with New.
// All methods are safe for concurrent use.
type Hub struct {
	cfg Config // with defaults applied

	mu     sync.Mutex
	seq    uint64                  // last sequence number assigned
	epoch  string                  // the history's epoch (External only)
	topics map[eventv1.Type]*topic // by event type, created on first use
	closed bool

	subscribers atomic.Int64  // live subscriptions, updated under mu
	published   atomic.Uint64 // mirrors seq for Stats
	dropped     atomic.Uint64 // events dropped from full buffers
	disconnect  atomic.Uint64 // subscriptions ended by a full buffer
}

// topic is the state the hub keeps for one event type.
type topic struct {
	subs []*Subscription // subscriptions that want this type, in no order
	hist *history
}

// Stats is a snapshot of a hub's counters.
type Stats struct {
	// Subscribers is the number of live subscriptions.
	Subscribers int
	// Published is the number of events published: the last sequence number.
	Published uint64
	// Dropped counts events discarded from full buffers (DropOldest).
	Dropped uint64
	// Disconnected counts subscriptions ended with ErrSlowSubscriber.
	Disconnected uint64
}

// New returns a hub configured by cfg, with defaults for zero fields; it
// starts no goroutines. It panics if cfg.Validate fails: validate first.
func New(cfg Config) *Hub {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Hub{cfg: cfg.withDefaults(), topics: make(map[eventv1.Type]*topic)}
}

// Publish gives ev the next sequence number, retains it in its type's
// history, buffers it for every subscription to its type and returns the
// number; it returns 0 and does nothing when ev is nil or the hub is closed.
// It never waits for a subscriber (see Config.Policy). Nobody may modify ev
// once published. An event of a type nobody can subscribe to is numbered
// but neither retained nor delivered.
func (h *Hub) Publish(ev *eventv1.Event) uint64 {
	if ev == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0
	}
	h.seq++
	h.publishLocked(entry{seq: h.seq, ev: ev})
	return h.seq
}

// PublishAt is Publish for a hub with Config.External: ev comes with its
// sequence number seq. It reports false, doing nothing, when ev is nil, the
// hub is closed, or seq is not above the latest sequence number (a
// repeat).
func (h *Hub) PublishAt(seq uint64, ev *eventv1.Event) bool {
	if ev == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || seq <= h.seq {
		return false
	}
	h.seq = seq
	h.publishLocked(entry{seq: seq, ev: ev})
	return true
}

// publishLocked records e, the event numbered h.seq, and fans it out.
func (h *Hub) publishLocked(e entry) {
	ev := e.ev
	h.published.Store(h.seq)
	if !validType(ev.GetType()) {
		return // nobody can subscribe to it
	}
	t := h.topicLocked(ev.GetType())
	t.hist.add(e)
	var (
		slow    []*Subscription
		dropped uint64
	)
	for _, s := range t.subs {
		if s.skip >= e.seq {
			continue // replayed already, or before its resume point
		}
		switch s.push(e, h.cfg.Policy) {
		case pushedDrop:
			dropped++
		case pushFull:
			slow = append(slow, s)
		}
	}
	if dropped > 0 {
		h.dropped.Add(dropped)
	}
	// End them after the loop: removal reorders t.subs.
	for _, s := range slow {
		h.endLocked(s, ErrSlowSubscriber)
	}
	if len(slow) > 0 {
		h.disconnect.Add(uint64(len(slow)))
	}
}

// Subscribe starts a subscription to the events of the given types. It ends
// when ctx is done, on Subscription.Close, on Hub.Close, or when it overflows
// under the Disconnect policy.
//
// With an empty lastEventID the subscription receives events published from
// now on. Otherwise lastEventID is the decimal sequence number of the last
// event the client received: the subscription first replays the retained
// events of its types after it, then continues live, with no duplicate and
// no gap. Replayed events do not count against the buffer. The first event
// delivered reports in Missed the matching events already evicted (see the
// package comment). A lastEventID beyond the latest sequence number, as
// after a restart of the hub, replays nothing.
//
// Subscribe returns an error wrapping ErrInvalidTypes, ErrInvalidLastEventID,
// ErrTooManySubscribers or ErrClosed, or ctx.Err() when ctx is already done.
func (h *Hub) Subscribe(ctx context.Context, types []eventv1.Type, lastEventID string) (*Subscription, error) {
	types, err := normalizeTypes(types)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Subscription{
		hub:    h,
		types:  types,
		pos:    make([]int, len(types)),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		buf:    ring[item]{limit: h.cfg.BufferSize},
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if n := h.subscribers.Load(); n >= int64(h.cfg.MaxSubscribers) {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: limit of %d reached", ErrTooManySubscribers, h.cfg.MaxSubscribers)
	}
	var (
		after, reset bool
		pos          uint64
	)
	if h.cfg.External {
		s.epoch = h.epoch
		pos, after, reset, err = parseExternalID(lastEventID, h.epoch)
	} else {
		pos, after, err = parseLastEventID(lastEventID)
	}
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	if after {
		// Under h.mu the snapshot and the registration meet exactly.
		h.replayLocked(s, pos, reset)
		if h.cfg.External {
			s.skip = max(pos, h.seq)
		}
	}
	for i, typ := range types {
		t := h.topicLocked(typ)
		s.pos[i] = len(t.subs)
		t.subs = append(t.subs, s)
	}
	s.registered = true
	h.subscribers.Add(1)
	h.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	s.mu.Lock()
	if s.err == nil {
		s.stop = stop
		stop = nil
	}
	s.mu.Unlock()
	if stop != nil {
		stop() // Already ended, by Hub.Close.
	}
	return s, nil
}

// Stats returns the hub's current counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Subscribers:  int(h.subscribers.Load()),
		Published:    h.published.Load(),
		Dropped:      h.dropped.Load(),
		Disconnected: h.disconnect.Load(),
	}
}

// Close ends every subscription with ErrClosed; afterwards Publish does
// nothing and Subscribe fails with ErrClosed. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	var all []*Subscription
	for _, t := range h.topics {
		all = append(all, t.subs...)
	}
	for _, s := range all {
		h.endLocked(s, ErrClosed) // once per subscription; repeats do nothing
	}
	h.topics = nil
}

// topicLocked returns the topic of typ, creating it on first use.
func (h *Hub) topicLocked(typ eventv1.Type) *topic {
	t := h.topics[typ]
	if t == nil {
		t = &topic{hist: newHistory(h.cfg.HistorySize, evictedLimit(h.cfg.HistorySize))}
		h.topics[typ] = t
	}
	return t
}

// replayLocked queues for s, in sequence order, the retained events of its
// types after the sequence number after, and counts those evicted; reset
// marks the first event delivered as the start of a new history.
func (h *Hub) replayLocked(s *Subscription, after uint64, reset bool) {
	var (
		runs         = make([][]entry, 0, len(s.types))
		total        int
		lost, newest uint64
	)
	for _, typ := range s.types {
		t := h.topics[typ]
		if t == nil {
			continue
		}
		run := t.hist.appendAfter(nil, after)
		runs = append(runs, run)
		total += len(run)
		l, n := t.hist.lostAfter(after)
		lost += l
		newest = max(newest, n)
	}
	// Events lost per type overlap in the sequence range they bound; the
	// whole range holds at most newest-after events.
	if lost > 0 {
		lost = min(lost, newest-after)
		s.missed.Add(lost)
	}
	if total == 0 {
		s.carry, s.carryReset = lost, reset
		return
	}
	s.replay = make([]item, 0, total)
	for len(s.replay) < total {
		k := -1
		for i, run := range runs {
			if len(run) > 0 && (k < 0 || run[0].seq < runs[k][0].seq) {
				k = i
			}
		}
		s.replay = append(s.replay, item{seq: runs[k][0].seq, ev: runs[k][0].ev})
		runs[k] = runs[k][1:]
	}
	s.replay[0].missed, s.replay[0].reset = lost, reset
}

// endLocked ends s with err unless it has already ended: it releases s's
// buffers and context watch, removes s from the hub, then closes s.done.
func (h *Hub) endLocked(s *Subscription, err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.replay, s.buf = nil, ring[item]{}
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	h.removeLocked(s)
	close(s.done)
}

// removeLocked takes s out of the hub's lists, if it is still there.
func (h *Hub) removeLocked(s *Subscription) {
	if !s.registered {
		return
	}
	s.registered = false
	h.subscribers.Add(-1)
	for i, typ := range s.types {
		t := h.topics[typ]
		last := len(t.subs) - 1
		moved := t.subs[last]
		t.subs[s.pos[i]] = moved
		moved.pos[slices.Index(moved.types, typ)] = s.pos[i]
		t.subs[last] = nil
		t.subs = t.subs[:last]
	}
}

// normalizeTypes validates types and returns them sorted and unique.
func normalizeTypes(types []eventv1.Type) ([]eventv1.Type, error) {
	if len(types) == 0 {
		return nil, fmt.Errorf("%w: no types given", ErrInvalidTypes)
	}
	for _, typ := range types {
		if !validType(typ) {
			return nil, fmt.Errorf("%w: %v is not a valid type", ErrInvalidTypes, typ)
		}
	}
	types = slices.Clone(types)
	slices.Sort(types)
	return slices.Compact(types), nil
}

// validType reports whether typ is an enum value other than TYPE_UNSPECIFIED.
func validType(typ eventv1.Type) bool {
	_, ok := eventv1.Type_name[int32(typ)]
	return ok && typ != eventv1.Type_TYPE_UNSPECIFIED
}

// Reset starts a new history for a hub with Config.External, as when its
// shared stream was created anew: it ends every subscription with ErrReset,
// forgets the history and the latest sequence number, and makes epoch the
// one resume points carry. A resume point of another epoch is then
// answered with the whole retained history, the first event marked reset.
func (h *Hub) Reset(epoch string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	var all []*Subscription
	for _, t := range h.topics {
		all = append(all, t.subs...)
	}
	for _, s := range all {
		h.endLocked(s, ErrReset)
	}
	h.topics = make(map[eventv1.Type]*topic)
	h.seq, h.epoch = 0, epoch
	h.published.Store(0)
}

// LostBefore tells a hub with Config.External that events of typ numbered
// below seq may have been evicted from the shared history before this hub
// saw them, in unknown number: a subscriber resuming before seq is told it
// missed events (at most as many as the sequence numbers in between).
func (h *Hub) LostBefore(typ eventv1.Type, seq uint64) {
	if !validType(typ) || seq <= 1 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	t := h.topicLocked(typ)
	t.hist.forgotten = unknownLost
	t.hist.lastForgotten = max(t.hist.lastForgotten, seq-1)
}

// EventID returns the resume point of the event numbered seq: its decimal
// sequence number, preceded by the epoch and a dash for a hub with
// Config.External.
func EventID(epoch string, seq uint64) string {
	if epoch == "" {
		return strconv.FormatUint(seq, 10)
	}
	return epoch + "-" + strconv.FormatUint(seq, 10)
}

// parseExternalID parses a last event id for a hub of the given epoch:
// "EPOCH-SEQ" of this epoch resumes after SEQ; one of another epoch, or a
// bare decimal number (an id from a hub that numbered its own events),
// resumes from the start of the retained history with reset set.
func parseExternalID(id, epoch string) (after uint64, resume, reset bool, err error) {
	if id == "" {
		return 0, false, false, nil
	}
	e, seq, found := strings.Cut(id, "-")
	if !found {
		e, seq = "", id
	}
	after, err = strconv.ParseUint(seq, 10, 64)
	if err != nil || (found && e == "") {
		return 0, false, false, fmt.Errorf("%w: %q is neither EPOCH-SEQUENCE nor a decimal sequence number", ErrInvalidLastEventID, id)
	}
	if e != epoch {
		return 0, true, true, nil
	}
	return after, true, false, nil
}

// parseLastEventID parses a last event id: resume is false for the empty
// string, else after is the decimal sequence number it holds.
func parseLastEventID(id string) (after uint64, resume bool, err error) {
	if id == "" {
		return 0, false, nil
	}
	after, err = strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %q is not a decimal sequence number", ErrInvalidLastEventID, id)
	}
	return after, true, nil
}
