package auth

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/tlsfiles"
	"github.com/eventproc/eventproc/internal/protocol"
)

// credential is what a caller presented, from HTTP headers or gRPC
// metadata.
type credential struct {
	authorization string // the Authorization header, whole
	apiKey        string // x-api-key
	ticket        string // ?ticket=, where tickets are accepted
	addr          string // the client's address, without port
	tls           *tls.ConnectionState
}

// authenticate turns c into a principal, or an UNAUTHENTICATED (or, for
// an address that failed too often, RESOURCE_EXHAUSTED) error.
func (a *Authenticator) authenticate(c credential) (*Principal, error) {
	if !a.Enabled() {
		if id := tlsfiles.PeerIdentity(c.tls); id != "" {
			return &Principal{Name: id, Method: "tls", Scopes: allScopes}, nil
		}
		return &Principal{Name: c.addr, Method: "none", Scopes: allScopes}, nil
	}
	if lim, ok := a.failLimits.Peek(c.addr); ok {
		if now := a.now(); lim.TokensAt(now) < 1 {
			a.metrics.limited.WithLabelValues("address").Inc()
			return nil, protocol.RetryLater("too many failed authentications from this address",
				time.Duration(float64(time.Second)/a.cfg.FailureRate))
		}
	}
	p, reason, err := a.verify(c)
	if err != nil {
		a.take(a.failLimits, c.addr, rate.Limit(a.cfg.FailureRate), a.cfg.FailureBurst)
		a.metrics.failures.WithLabelValues(reason).Inc()
		a.log.Info("auth: authentication failed", "reason", reason, "client", c.addr)
		return nil, err
	}
	return p, nil
}

// verify checks c's credential: a bearer token (a JWT, or an API key), an
// x-api-key header, or a ticket.
func (a *Authenticator) verify(c credential) (*Principal, string, error) {
	token := c.apiKey
	if c.authorization != "" {
		scheme, rest, _ := strings.Cut(c.authorization, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
			return nil, "malformed", unauthenticated(reasonInvalid, "malformed Authorization header: want Bearer <token>")
		}
		token = strings.TrimSpace(rest)
	}
	switch {
	case token == "" && c.ticket != "":
		if p := a.tickets.take(c.ticket, a.now()); p != nil {
			return p, "", nil
		}
		return nil, "ticket", unauthenticated(reasonInvalid, "invalid ticket: unknown, used or expired")
	case token == "":
		return nil, "missing", unauthenticated(reasonMissing,
			"missing credential: send Authorization: Bearer <token> (or an x-api-key header)")
	case a.jwt != nil && strings.Count(token, ".") == 2:
		if p, ok := a.tokens.Get(token); ok && a.now().Before(p.Expires) {
			return p, "", nil
		}
		p, reason, err := a.jwt.verify(token)
		if err != nil {
			return nil, reason, unauthenticated(reasonInvalid, "invalid token: "+strings.TrimPrefix(err.Error(), "token is "))
		}
		a.tokens.Add(token, p)
		return p, "", nil
	case a.keys != nil:
		p, err := a.keys.lookup(token)
		if err != nil {
			return nil, "unknown_api_key", unauthenticated(reasonInvalid, "invalid credential: unknown API key")
		}
		return p, "", nil
	}
	return nil, "malformed", unauthenticated(reasonInvalid, "invalid token: not a JWT")
}

// tickets are single-use credentials for browsers' EventSource, which
// cannot send headers: an authenticated POST mints one, and a subscription
// presents it in its query string, once, within the ticket's lifetime.
type tickets struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]ticket
}

type ticket struct {
	p       *Principal
	expires time.Time
}

// IssueTicket mints a ticket for the caller behind ctx, valid once, until
// the returned time (the lifetime's end, or the credential's expiry if
// sooner). The subscription it opens ends when the caller's credential
// expires, as if the credential itself had been sent.
func (a *Authenticator) IssueTicket(ctx context.Context) (string, time.Time, error) {
	p := FromContext(ctx)
	switch {
	case !a.Enabled():
		return "", time.Time{}, status.Error(codes.FailedPrecondition, "authentication is off: subscribe without a ticket")
	case p == nil:
		return "", time.Time{}, unauthenticated(reasonMissing, "no authenticated caller")
	case p.ticket:
		return "", time.Time{}, status.Error(codes.PermissionDenied, "a ticket cannot mint tickets")
	}
	var b [24]byte
	_, _ = rand.Read(b[:]) // never fails
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := a.now()
	expires := now.Add(a.tickets.ttl)
	if !p.Expires.IsZero() && p.Expires.Before(expires) {
		expires = p.Expires
	}
	t := &a.tickets
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= maxTickets {
		for id, tk := range t.m {
			if !now.Before(tk.expires) {
				delete(t.m, id)
			}
		}
		if len(t.m) >= maxTickets {
			return "", time.Time{}, protocol.RetryLater("too many tickets waiting to be used", t.ttl)
		}
	}
	if t.m == nil {
		t.m = make(map[string]ticket)
	}
	held := *p
	held.ticket = true
	t.m[id] = ticket{p: &held, expires: expires}
	return id, expires, nil
}

// take uses up a ticket, returning its principal, or nil.
func (t *tickets) take(id string, now time.Time) *Principal {
	t.mu.Lock()
	tk, ok := t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	if !ok || !now.Before(tk.expires) {
		return nil
	}
	return tk.p
}

// errNotSameCaller refuses a refresh with another caller's credential.
var errNotSameCaller = errors.New("the credential is for another principal")
