package sink

import (
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// Reasons an event of a durable route is dead-lettered, besides the code of
// a permanent error (in snake case: "invalid_argument").
const (
	deadMaxDeliveries = "max_deliveries" // retried or unanswered --durable-max-deliver times
	deadUndecodable   = "undecodable"    // the stored event does not decode
)

// Store operations whose failures are counted.
const (
	opPublish     = "publish"     // storing an event (intake)
	opIdempotency = "idempotency" // recording an idempotency key (intake)
	opFetch       = "fetch"       // pulling events to deliver
	opAck         = "ack"         // acknowledging a delivered event
	opDeadLetter  = "dead_letter" // storing a dead letter
)

// durableMetrics counts what durable routes do, per type. Its methods are
// safe for concurrent use and do nothing on a nil receiver (no registry).
type durableMetrics struct {
	stored, duplicates, delivered, deliveredAgain *prometheus.CounterVec
	redelivered, dead, storeErrors, replayed      *prometheus.CounterVec
}

// newDurableMetrics registers the durable routes' metrics with reg.
func newDurableMetrics(reg prometheus.Registerer) (*durableMetrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"type"}, labels...))
	}
	m := &durableMetrics{
		stored: counter("eventproc_durable_stored_total",
			"Events of durable routes stored (answered 202 / OUTCOME_STORED), duplicates excluded."),
		duplicates: counter("eventproc_durable_duplicates_total",
			"Events of durable routes answered as duplicates of a stored one (same idempotency key)."),
		delivered: counter("eventproc_durable_delivered_total",
			"Stored events a processor answered, acknowledged to the store (consumed or replied)."),
		deliveredAgain: counter("eventproc_durable_deliveries_again_total",
			"Stored events this sink received from the store for a second or later delivery (after a retry or an unanswered delivery)."),
		redelivered: counter("eventproc_durable_redelivered_total",
			"Deliveries that failed and were scheduled again, by reason (the gRPC code, snake case).", "reason"),
		dead: counter("eventproc_durable_dead_lettered_total",
			"Stored events moved to the dead letters, by reason: max_deliveries, undecodable, or a permanent error's gRPC code (snake case).", "reason"),
		replayed: counter("eventproc_durable_replayed_total",
			"Dead letters stored again for delivery (POST /v1/deadletters:replay)."),
		storeErrors: counter("eventproc_durable_store_errors_total",
			"Failed operations on the durable store, by operation: publish, idempotency, fetch, ack, dead_letter.", "op"),
	}
	for _, c := range []prometheus.Collector{m.stored, m.duplicates, m.delivered, m.deliveredAgain, m.redelivered, m.dead, m.storeErrors, m.replayed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// init makes the series of a durable route's type visible at zero.
func (m *durableMetrics) init(typ string) {
	if m == nil {
		return
	}
	m.stored.WithLabelValues(typ)
	m.duplicates.WithLabelValues(typ)
	m.delivered.WithLabelValues(typ)
	m.deliveredAgain.WithLabelValues(typ)
	m.replayed.WithLabelValues(typ)
	for _, op := range []string{opPublish, opIdempotency, opFetch, opAck, opDeadLetter} {
		m.storeErrors.WithLabelValues(typ, op)
	}
}

// durableCounter names one of the counters.
type durableCounter int

const (
	cDelivered durableCounter = iota
	cDeliveredAgain
	cRedelivered
	cDead
	cStoreErrors
	cReplayed
)

// inc adds one to counter c's series with labels.
func (m *durableMetrics) inc(c durableCounter, labels ...string) {
	if m == nil {
		return
	}
	v := [...]*prometheus.CounterVec{cDelivered: m.delivered, cDeliveredAgain: m.deliveredAgain,
		cRedelivered: m.redelivered, cDead: m.dead, cStoreErrors: m.storeErrors, cReplayed: m.replayed}[c]
	v.WithLabelValues(labels...).Inc()
}

// storedOne counts an event stored, or answered as a duplicate.
func (m *durableMetrics) storedOne(typ string, duplicate bool) {
	if m == nil {
		return
	}
	if duplicate {
		m.duplicates.WithLabelValues(typ).Inc()
		return
	}
	m.stored.WithLabelValues(typ).Inc()
}

// codeReason is a gRPC code as a reason label: "deadline_exceeded".
func codeReason(c codes.Code) string {
	if c > codes.Unauthenticated {
		c = codes.Unknown
	}
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
