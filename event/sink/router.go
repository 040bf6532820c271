package sink

import (
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// route is the runtime form of a Route: the pools of its targets.
type route struct {
	typ       eventv1.Type
	name      string // the type's enum name, for messages
	broadcast bool
	durable   bool
	// idempotent: idempotency keys are honoured (Route.Idempotent).
	idempotent bool
	targets    []*target
}

// pick returns the least loaded live stream over all targets of the route,
// skipping the target skip (one that just failed a request), or nil when
// none is live.
func (r *route) pick(skip *pool) *stream {
	var best *stream
	var bestN int64
	for _, t := range r.targets {
		if s := t.pick(skip); s != nil {
			if m := s.pending.Load(); best == nil || m < bestN {
				best, bestN = s, m
			}
		}
	}
	return best
}

// router maps each event type to its route. It is built once and only read
// afterwards, so lookups need no lock.
type router map[eventv1.Type]*route
