// Package eventmetrics defines eventproc_events_total, the count of every
// answer to an event, which the sink (event/sink) and its HTTP front
// (event/httpapi) both add to: the sink counts what reaches it, the HTTP
// front what it answers before (a body that is not an event, too large or
// too slow, a refused credential).
package eventmetrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the type label beyond the event type names (TYPE_HELLO).
const (
	// TypeUnknown counts events whose type the sink could not tell: the
	// request was not a valid event (malformed JSON, an unknown field or
	// enum name, a body too large or too slow, a message that does not
	// decode), was refused before it was read (authentication), or had no
	// type, TYPE_UNSPECIFIED or a number no type has.
	TypeUnknown = "unknown"
	// TypeUnrouted counts events of a valid type without a route.
	TypeUnrouted = "unrouted"
)

// Events returns eventproc_events_total{type,code}, registered with reg:
// the one already registered there, if any, so that the sink and the HTTP
// front share it. A nil reg gets an unregistered counter.
func Events(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventproc_events_total",
		Help: "Events answered, by event type (or unknown, unrouted) and gRPC status code.",
	}, []string{"type", "code"})
	return Register(reg, c)
}

// Register registers c with reg and returns it, or the collector of the
// same description already registered there, so that parts of one program
// (the sink and its HTTP front) share a metric. A nil reg leaves c
// unregistered.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if prev, ok := are.ExistingCollector.(C); ok {
			return prev, nil
		}
	}
	if err != nil {
		var zero C
		return zero, err
	}
	return c, nil
}
