package httpapi

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GET /v1/stats: a JSON snapshot of the sink's own Prometheus metrics
// (Options.Stats), for the console's charts. Every value is cumulative or
// current, as in the registry; the console turns two snapshots into rates
// and latency quantiles over the time between them.

// statsPath serves the snapshot when Options.Stats is set.
const statsPath = "/v1/stats"

// The sink's metrics the snapshot reads (event/sink/metrics.go).
const (
	metricEvents      = "eventproc_events_total"
	metricLatency     = "eventproc_event_duration_seconds"
	metricSubscribers = "eventproc_subscribers"
	metricStreamsLive = "eventproc_streams_live"
	metricInflight    = "eventproc_inflight_requests"
)

// statsSnapshot is the body of GET /v1/stats.
type statsSnapshot struct {
	// Time is when the metrics were gathered.
	Time time.Time `json:"time"`
	// Types are the events answered, per route type and "unrouted", by
	// type name.
	Types []typeStats `json:"types"`
	// Subscribers is the number of current subscribers.
	Subscribers float64 `json:"subscribers"`
	// Targets are the processor targets, by name.
	Targets []targetStats `json:"targets"`
}

// typeStats are the cumulative counts of one event type.
type typeStats struct {
	// Type is the metrics' type label: the enum name, or "unrouted".
	Type string `json:"type"`
	// Events counts the events answered, by gRPC code name (OK,
	// UNAVAILABLE, ...); codes never seen are left out.
	Events map[string]uint64 `json:"events"`
	// Latency is the latency histogram; nil for "unrouted".
	Latency *latencyStats `json:"latency,omitempty"`
}

// latencyStats is a cumulative latency histogram, in seconds.
type latencyStats struct {
	// Count and Sum are the number of events observed and their total.
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	// Bounds are the buckets' upper bounds, in increasing order; Counts[i]
	// is the number of events of at most Bounds[i] (cumulative). Events
	// above the last bound are Count - Counts[len-1].
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
}

// targetStats are the current gauges of one processor target.
type targetStats struct {
	Target      string  `json:"target"`
	StreamsLive float64 `json:"streams_live"`
	Inflight    float64 `json:"inflight"`
}

// stats answers GET /v1/stats.
func (h *Handler) stats(w http.ResponseWriter, r *http.Request) {
	families, err := h.opts.Stats.Gather()
	if err != nil && len(families) == 0 {
		h.writeError(w, r, status.Errorf(codes.Internal, "gathering metrics: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, snapshot(families, time.Now()))
}

// snapshot builds the stats from gathered metric families; it ignores
// every family but the sink's.
func snapshot(families []*dto.MetricFamily, now time.Time) statsSnapshot {
	s := statsSnapshot{Time: now.UTC(), Types: []typeStats{}, Targets: []targetStats{}}
	types := make(map[string]*typeStats)
	typeOf := func(name string) *typeStats {
		t, ok := types[name]
		if !ok {
			t = &typeStats{Type: name, Events: make(map[string]uint64)}
			types[name] = t
		}
		return t
	}
	targets := make(map[string]*targetStats)
	targetOf := func(name string) *targetStats {
		t, ok := targets[name]
		if !ok {
			t = &targetStats{Target: name}
			targets[name] = t
		}
		return t
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case metricEvents:
				n := m.GetCounter().GetValue()
				code := label(m, "code")
				if n <= 0 || code == "" {
					continue
				}
				typeOf(label(m, "type")).Events[grpcCodeName(code)] = uint64(math.Round(n))
			case metricLatency:
				hist := m.GetHistogram()
				if hist.GetSampleCount() == 0 {
					continue
				}
				l := &latencyStats{Count: hist.GetSampleCount(), Sum: hist.GetSampleSum()}
				for _, b := range hist.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						continue
					}
					l.Bounds = append(l.Bounds, b.GetUpperBound())
					l.Counts = append(l.Counts, b.GetCumulativeCount())
				}
				typeOf(label(m, "type")).Latency = l
			case metricSubscribers:
				s.Subscribers += m.GetGauge().GetValue()
			case metricStreamsLive:
				targetOf(label(m, "target")).StreamsLive = m.GetGauge().GetValue()
			case metricInflight:
				targetOf(label(m, "target")).Inflight = m.GetGauge().GetValue()
			}
		}
	}
	for _, t := range types {
		s.Types = append(s.Types, *t)
	}
	slices.SortFunc(s.Types, func(a, b typeStats) int { return cmp.Compare(a.Type, b.Type) })
	for _, t := range targets {
		s.Targets = append(s.Targets, *t)
	}
	slices.SortFunc(s.Targets, func(a, b targetStats) int { return cmp.Compare(a.Target, b.Target) })
	return s
}

// label is the value of a metric's label, or "".
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// grpcCodeName turns the metrics' code label (codes.Code's String:
// "Unavailable", "DeadlineExceeded") into the canonical name the JSON
// errors and the README use ("UNAVAILABLE", "DEADLINE_EXCEEDED").
func grpcCodeName(label string) string {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == label {
			return code.Code_name[int32(c)]
		}
	}
	return label
}
