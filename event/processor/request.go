package processor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// request is one event from its receipt to its answer, in one allocation:
// the message it was received into, the handler's context, its pending
// entry, a worker's task, and its answer.
//
// It is the handler's context.Context itself (docs/design.md, The processor
// SDK): it works out Err from the clock and its parent, and makes a
// standard context to delegate to only when something needs a channel:
// Done, or the context package deriving from it or asking its cause
// (Value(&cancelCtxKey)).
//
// Err is sticky, as a standard context's. If both the deadline and the end
// of the stream passed before anything asked, it reports DEADLINE_EXCEEDED.
type request struct {
	msg eventv1.ProcessRequest // as received

	id       uint64
	ev       *eventv1.Event
	parent   context.Context // the stream's, with the trace context
	deadline time.Time       // zero for none

	inner atomic.Pointer[innerContext] // set once, when made
	mu    sync.Mutex                   // guards making inner, and err
	// err is the error found before inner was made.
	err error

	// The answer, without allocations of its own for replies and consumes.
	resp     eventv1.ProcessResponse
	reply    eventv1.ProcessResponse_Reply
	consumed eventv1.ProcessResponse_Consumed
}

// innerContext is a standard context with its cancel function.
type innerContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*request)(nil)

// cancelCtxKey is the context package's private key for the nearest
// standard cancelable context (used to register derived contexts, and by
// context.Cause). If it cannot be learnt (nil), contexts derived from a
// request still work, each watched by a goroutine.
var cancelCtxKey = func() any {
	spy := &keySpy{}
	_ = context.Cause(spy) // asks for Value(&cancelCtxKey) once Err is not nil
	return spy.key
}()

// keySpy records the key of the first Value call.
type keySpy struct {
	context.Context
	key any
}

func (*keySpy) Err() error { return context.Canceled }

func (s *keySpy) Value(key any) any {
	if s.key == nil {
		s.key = key
	}
	return nil
}

// found returns the error the request is done with, or nil; ending says
// that it is being cancelled now. r.mu must be held.
func (r *request) found(ending bool) error {
	// time.Until reads only the monotonic clock; time.Now the wall clock too.
	if !r.deadline.IsZero() && time.Until(r.deadline) <= 0 {
		return context.DeadlineExceeded
	}
	if err := r.parent.Err(); err != nil {
		return err
	}
	if ending {
		return context.Canceled
	}
	return nil
}

// standard returns the standard context, making it first if need be.
func (r *request) standard() context.Context {
	if in := r.inner.Load(); in != nil {
		return in.ctx
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if in := r.inner.Load(); in != nil {
		return in.ctx
	}
	if r.err == nil {
		r.err = r.found(false)
	}
	in := &innerContext{}
	switch {
	case r.err != nil:
		// Done already: a context that says so, with the same values.
		var cancel context.CancelCauseFunc
		in.ctx, cancel = context.WithCancelCause(context.WithoutCancel(r.parent))
		cancel(r.err)
		in.cancel = func() {}
	case r.deadline.IsZero():
		in.ctx, in.cancel = context.WithCancel(r.parent)
	default:
		in.ctx, in.cancel = context.WithDeadline(r.parent, r.deadline)
	}
	r.inner.Store(in)
	return in.ctx
}

// Deadline implements context.Context.
func (r *request) Deadline() (time.Time, bool) {
	d, ok := r.parent.Deadline()
	if !r.deadline.IsZero() && (!ok || r.deadline.Before(d)) {
		return r.deadline, true
	}
	return d, ok
}

// Done implements context.Context.
func (r *request) Done() <-chan struct{} { return r.standard().Done() }

// Err implements context.Context.
func (r *request) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if in := r.inner.Load(); in != nil {
		return in.ctx.Err()
	}
	r.err = r.found(false)
	return r.err
}

// Value implements context.Context.
func (r *request) Value(key any) any {
	if in := r.inner.Load(); in != nil {
		return in.ctx.Value(key)
	}
	if key == cancelCtxKey && key != nil {
		// The context package looks for a standard parent.
		return r.standard().Value(key)
	}
	return r.parent.Value(key)
}

// String describes the context, as the standard ones do.
func (r *request) String() string { return "processor.request" }

// end cancels the request's context: the sink cancelled it, or it returned.
func (r *request) end() {
	r.mu.Lock()
	in := r.inner.Load()
	if in == nil && r.err == nil {
		r.err = r.found(true)
	}
	r.mu.Unlock()
	if in != nil {
		in.cancel()
	}
}
