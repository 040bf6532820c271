package auth

import (
	"context"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Paths that need more than authentication.
const (
	subscribePath = "/v1/events:subscribe"
	metricsPath   = "/metrics"
	statsPath     = "/v1/stats" // the metrics as JSON, for the console's charts
)

// HTTP authenticates an HTTP request; it is event/httpapi's
// Options.Authenticate. It returns the request's context carrying the
// principal — for a subscription, ended with UNAUTHENTICATED when the
// credential expires — or a status error to answer.
//
// The credential is an Authorization: Bearer header, an X-Api-Key header
// or, on GET /v1/events:subscribe only, a ticket (?ticket=…, see
// [Authenticator.IssueTicket]). GET /metrics, and /v1/stats (the same
// metrics as JSON), need the read:metrics scope.
func (a *Authenticator) HTTP(r *http.Request) (context.Context, error) {
	c := credential{
		authorization: r.Header.Get("Authorization"),
		apiKey:        r.Header.Get("X-Api-Key"),
		addr:          hostOf(r.RemoteAddr),
		tls:           r.TLS,
	}
	subscribe := r.Method == http.MethodGet && r.URL.Path == subscribePath
	if subscribe {
		c.ticket = r.URL.Query().Get("ticket")
	}
	p, err := a.authenticate(c)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	switch {
	case (r.URL.Path == metricsPath || r.URL.Path == statsPath) && !p.Scopes.Metrics:
		a.metrics.denied.WithLabelValues("metrics").Inc()
		return nil, status.Errorf(codes.PermissionDenied, "%s may not read metrics (scope %s)", p.Name, MetricsScope)
	case subscribe && !p.Expires.IsZero():
		ctx, cancel := context.WithTimeoutCause(ctx, p.Expires.Sub(a.now()), errExpired)
		context.AfterFunc(ctx, func() {
			cancel()
			if ExpiredError(ctx) != nil {
				a.metrics.expired.WithLabelValues("http").Inc()
				a.log.Info("auth: call ended: credential expired", "principal", p.Name, "method", p.Method, "transport", "http")
			}
		})
		return withPrincipal(ctx, p), nil
	}
	return withPrincipal(ctx, p), nil
}
