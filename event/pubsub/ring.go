package pubsub

// ring is a bounded FIFO queue that grows on demand up to its limit, so
// that idle subscribers and rare types cost little. Not concurrency-safe.
type ring[T any] struct {
	buf   []T // storage, len(buf) <= limit
	start int // index in buf of the oldest value
	n     int // number of values held
	limit int // most values held; 0 holds none
}

// push appends v. When the ring is full it evicts and returns the oldest
// value, or v itself if the ring holds nothing.
func (r *ring[T]) push(v T) (evicted T, ok bool) {
	switch {
	case r.limit == 0:
		return v, true
	case r.n == r.limit:
		evicted = r.buf[r.start]
		r.buf[r.start] = v
		r.start = (r.start + 1) % len(r.buf)
		return evicted, true
	case r.n == len(r.buf):
		buf := make([]T, min(max(2*len(r.buf), 8), r.limit))
		for i := range r.n {
			buf[i] = r.at(i)
		}
		r.buf, r.start = buf, 0
	}
	r.buf[(r.start+r.n)%len(r.buf)] = v
	r.n++
	return evicted, false
}

// len returns the number of values held.
func (r *ring[T]) len() int { return r.n }

// at returns the i-th value held, oldest first.
func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

// front returns a pointer to the oldest value; the ring must not be empty.
func (r *ring[T]) front() *T { return &r.buf[r.start] }

// pop removes and returns the oldest value, if any.
func (r *ring[T]) pop() (v T, ok bool) {
	if r.n == 0 {
		return v, false
	}
	v = r.buf[r.start]
	var zero T
	r.buf[r.start] = zero // let the garbage collector have it
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	return v, true
}
