package auth

import (
	"github.com/eventproc/eventproc/internal/eventmetrics"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Authenticator's counters, by reason.
type metrics struct {
	failures *prometheus.CounterVec // reason
	denied   *prometheus.CounterVec // action
	limited  *prometheus.CounterVec // by: principal, address
	expired  *prometheus.CounterVec // transport
	reloads  *prometheus.CounterVec // file, result
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_auth_failures_total",
			Help: "Requests and streams refused UNAUTHENTICATED (HTTP 401), by reason.",
		}, []string{"reason"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_auth_denied_total",
			Help: "Events and subscriptions refused PERMISSION_DENIED (HTTP 403), by action.",
		}, []string{"action"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_rate_limited_total",
			Help: "Requests refused RESOURCE_EXHAUSTED (HTTP 429) by a rate limit, per principal or, for failed authentication, per client address.",
		}, []string{"by"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_auth_expired_total",
			Help: "Long-lived calls (Stream, Subscribe, SSE, NDJSON) ended by their credential's expiry.",
		}, []string{"transport"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventproc_auth_reloads_total",
			Help: "Reloads of the JWKS and API key files, by file and result (ok, error).",
		}, []string{"file", "result"}),
	}
	// Authenticators sharing a registry share the counters.
	for _, c := range []**prometheus.CounterVec{&m.failures, &m.denied, &m.limited, &m.expired, &m.reloads} {
		var err error
		if *c, err = eventmetrics.Register(reg, *c); err != nil {
			return m, err
		}
	}
	return m, nil
}
