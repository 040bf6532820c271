package pubsub

import (
	"sort"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// entry is one published event and its hub-wide sequence number.
type entry struct {
	seq uint64
	ev  *eventv1.Event
}

// history is what the hub remembers of one event type: the latest events,
// and the sequence numbers of the latest evicted ones, to count exactly
// what a resuming subscriber lost. The hub's mutex guards it.
type history struct {
	events  ring[entry]  // retained events, oldest first
	evicted ring[uint64] // sequence numbers of evicted events, oldest first

	// Evicted events whose sequence numbers were evicted in turn: how many,
	// and the newest sequence number among them.
	forgotten     uint64
	lastForgotten uint64
}

// newHistory returns a history of limit events and evictedLimit evictions.
func newHistory(limit, evictedLimit int) *history {
	return &history{events: ring[entry]{limit: limit}, evicted: ring[uint64]{limit: evictedLimit}}
}

// evictedLimit is how many evicted sequence numbers a history keeps.
func evictedLimit(historySize int) int { return max(4*historySize, 1024) }

// add appends e, evicting the oldest event when the history is full.
// Sequence numbers must be added in increasing order.
func (h *history) add(e entry) {
	old, ok := h.events.push(e)
	if !ok {
		return
	}
	if seq, ok := h.evicted.push(old.seq); ok {
		if h.forgotten < unknownLost {
			h.forgotten++
		}
		h.lastForgotten = seq
	}
}

// unknownLost as a history's forgotten count means any number: lostAfter
// then bounds the loss by the sequence numbers alone.
const unknownLost = 1 << 62

// appendAfter appends to dst the retained events after after, oldest first.
func (h *history) appendAfter(dst []entry, after uint64) []entry {
	n := h.events.len()
	i := sort.Search(n, func(i int) bool { return h.events.at(i).seq > after })
	for ; i < n; i++ {
		dst = append(dst, h.events.at(i))
	}
	return dst
}

// lostAfter returns how many evicted events have a sequence number greater
// than after, and the newest such number (0 if none). Forgotten ones add an
// upper bound: all of them, but no more than the events published between
// after and the newest forgotten one.
func (h *history) lostAfter(after uint64) (lost, newest uint64) {
	n := h.evicted.len()
	i := sort.Search(n, func(i int) bool { return h.evicted.at(i) > after })
	lost = uint64(n - i)
	if lost > 0 {
		newest = h.evicted.at(n - 1)
	}
	if h.lastForgotten > after {
		lost += min(h.forgotten, h.lastForgotten-after)
		newest = max(newest, h.lastForgotten)
	}
	return lost, newest
}
