package sink

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventmetrics"
)

// metrics holds the sink's Prometheus metrics. Per-event series are looked
// up once per route at start-up, so counting an event costs two atomic adds
// and no allocation.
type metrics struct {
	events   map[eventv1.Type]*[codes.Unauthenticated + 1]prometheus.Counter
	latency  map[eventv1.Type]prometheus.Observer
	unrouted *[codes.Unauthenticated + 1]prometheus.Counter // events of a valid type without a route
	unknown  *[codes.Unauthenticated + 1]prometheus.Counter // events without a valid type
}

// newMetrics registers the sink's metrics with reg.
func newMetrics(reg prometheus.Registerer, s *Sink) (*metrics, error) {
	events, err := eventmetrics.Events(reg)
	if err != nil {
		return nil, err
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                        "eventproc_event_duration_seconds",
		Help:                        "Time from receiving an event to answering it, by route (event type).",
		Buckets:                     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		NativeHistogramBucketFactor: 1.1,
	}, []string{"type"})
	collectors := []prometheus.Collector{latency}
	for _, p := range s.targets {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Name: name, Help: help, ConstLabels: prometheus.Labels{"target": p.name}}
		}
		collectors = append(collectors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("eventproc_inflight_requests",
				"Requests sent to a processor target and not yet answered.")), func() float64 { return float64(p.pending()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("eventproc_streams_live",
				"Open Process streams to a processor target.")), func() float64 { return float64(p.live()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts(opts("eventproc_stream_reconnects_total",
				"Process streams to a target re-opened after they broke.")), func() float64 { return float64(p.reconnect.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts(opts("eventproc_dropped_replies_total",
				"Processor answers dropped because their request id was unknown or had expired.")), func() float64 { return float64(p.dropped.Load()) }),
		)
	}
	hub := s.hub
	collectors = append(collectors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventproc_subscribers",
			Help: "Current subscribers to published events.",
		}, func() float64 { return float64(hub.Stats().Subscribers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventproc_published_events_total",
			Help: "Events published by processors.",
		}, func() float64 { return float64(hub.Stats().Published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventproc_subscriber_dropped_events_total",
			Help: "Published events dropped because a subscriber's buffer was full.",
		}, func() float64 { return float64(hub.Stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventproc_subscribers_disconnected_total",
			Help: "Subscribers disconnected for being too slow.",
		}, func() float64 { return float64(hub.Stats().Disconnected) }),
	)
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m := &metrics{
		events:  make(map[eventv1.Type]*[codes.Unauthenticated + 1]prometheus.Counter),
		latency: make(map[eventv1.Type]prometheus.Observer),
	}
	byCode := func(typ string) *[codes.Unauthenticated + 1]prometheus.Counter {
		var a [codes.Unauthenticated + 1]prometheus.Counter
		for c := range a {
			a[c] = events.WithLabelValues(typ, codes.Code(c).String())
		}
		return &a
	}
	for t, r := range s.routes {
		m.events[t] = byCode(r.name)
		m.latency[t] = latency.WithLabelValues(r.name)
	}
	m.unrouted = byCode(eventmetrics.TypeUnrouted)
	m.unknown = byCode(eventmetrics.TypeUnknown)
	return m, nil
}

// observe counts one answered event.
func (m *metrics) observe(t eventv1.Type, code codes.Code, start time.Time) {
	if m == nil {
		return
	}
	if code > codes.Unauthenticated {
		code = codes.Unknown
	}
	byCode, ok := m.events[t]
	if !ok {
		if _, known := eventv1.Type_name[int32(t)]; known && t != eventv1.Type_TYPE_UNSPECIFIED {
			m.unrouted[code].Inc()
		} else {
			m.unknown[code].Inc()
		}
		return
	}
	byCode[code].Inc()
	m.latency[t].Observe(time.Since(start).Seconds())
}
