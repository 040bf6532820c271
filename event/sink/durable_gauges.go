package sink

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// storeGaugeTimeout bounds the store requests of one scrape.
const storeGaugeTimeout = 2 * time.Second

// storeGauges reports, at each scrape, what the store holds for the sink's
// durable routes, cluster-wide: the same numbers on every sink sharing it.
// They are read from the store when scraped (a request per durable type
// and one for the dead letters), not counted by the sink, so that they
// stay true across sinks and restarts. Nothing is reported while the
// store is unreachable or not set up.
type storeGauges struct {
	s             *Sink
	waiting, dead *prometheus.Desc
}

func newStoreGauges(s *Sink) *storeGauges {
	return &storeGauges{
		s: s,
		waiting: prometheus.NewDesc("eventproc_durable_waiting",
			"Events of a durable route stored and not yet answered by a processor, over every sink sharing the store "+
				"(read from the store at each scrape): the backlog.", []string{"type"}, nil),
		dead: prometheus.NewDesc("eventproc_durable_dead_letters",
			"Dead letters of a durable route held in the store (read from the store at each scrape).", []string{"type"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *storeGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.waiting
	ch <- g.dead
}

// Collect implements prometheus.Collector.
func (g *storeGauges) Collect(ch chan<- prometheus.Metric) {
	s := g.s
	if s.kv.Load() == nil || s.cfg.Durable.Conn.Status() != nats.CONNECTED {
		return // not set up, or unreachable: no numbers rather than stale ones
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeGaugeTimeout)
	defer cancel()
	for _, r := range s.routes {
		if !r.durable {
			continue
		}
		c, err := s.js.Consumer(ctx, durableStream, consumerPrefix+r.name)
		if err != nil {
			continue
		}
		info := c.CachedInfo() // as the lookup found it: no second request
		ch <- prometheus.MustNewConstMetric(g.waiting, prometheus.GaugeValue,
			float64(info.NumPending+uint64(info.NumAckPending)), r.name)
	}
	str, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(deadSubject+"*"))
	if err != nil {
		return
	}
	for _, r := range s.routes {
		if r.durable {
			ch <- prometheus.MustNewConstMetric(g.dead, prometheus.GaugeValue,
				float64(info.State.Subjects[deadSubject+r.name]), r.name)
		}
	}
}
