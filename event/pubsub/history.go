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

// history is a bounded ring of the latest events of one type, oldest first.
// It grows on demand up to its limit, so that types seldom published cost
// little. It is not safe for concurrent use: the hub's mutex guards it.
type history struct {
	limit   int     // most entries retained; 0 retains nothing
	buf     []entry // ring storage, len(buf) <= limit
	start   int     // index in buf of the oldest entry
	n       int     // number of entries retained
	evicted uint64  // number of events evicted (or never retained)
	lastOut uint64  // sequence number of the newest evicted event, 0 if none
}

func newHistory(limit int) *history { return &history{limit: limit} }

// add appends e, evicting the oldest entry when the history is full.
// Sequence numbers must be added in increasing order.
func (h *history) add(e entry) {
	switch {
	case h.limit == 0:
		h.evict(e.seq)
	case h.n < len(h.buf):
		h.buf[(h.start+h.n)%len(h.buf)] = e
		h.n++
	case len(h.buf) < h.limit:
		// Not yet full and start == 0 while growing: append in place.
		h.buf = append(h.buf, e)
		h.buf = h.buf[:min(cap(h.buf), h.limit)]
		h.n++
	default:
		h.evict(h.buf[h.start].seq)
		h.buf[h.start] = e
		h.start = (h.start + 1) % len(h.buf)
	}
}

func (h *history) evict(seq uint64) {
	h.evicted++
	h.lastOut = seq
}

// at returns the i-th retained entry, oldest first.
func (h *history) at(i int) entry { return h.buf[(h.start+i)%len(h.buf)] }

// appendAfter appends the retained entries with a sequence number greater
// than after to dst, oldest first.
func (h *history) appendAfter(dst []entry, after uint64) []entry {
	i := sort.Search(h.n, func(i int) bool { return h.at(i).seq > after })
	for ; i < h.n; i++ {
		dst = append(dst, h.at(i))
	}
	return dst
}

// lostAfter returns an upper bound of the number of events of this type with
// a sequence number greater than after that were evicted, and the sequence
// number of the newest evicted event. The bound is exact when no event of
// another type was published between after and that newest evicted event.
func (h *history) lostAfter(after uint64) (lost, newest uint64) {
	if h.lastOut <= after {
		return 0, 0
	}
	return min(h.evicted, h.lastOut-after), h.lastOut
}
