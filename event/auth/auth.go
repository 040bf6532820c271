package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultLeeway              = 30 * time.Second
	DefaultReloadInterval      = 5 * time.Second
	DefaultJWKSRefreshInterval = 15 * time.Minute
	DefaultUnknownKeyInterval  = 30 * time.Second
	DefaultTicketTTL           = 30 * time.Second
	DefaultFailureRate         = 20 // failed attempts per second per address
	DefaultFailureBurst        = 500
	// limiterEntries bounds each LRU of per-key state (limiters, verified
	// tokens); the least recently used entry goes first.
	limiterEntries = 1 << 16
	tokenEntries   = 1 << 14
	maxTickets     = 1 << 14
)

// Config configures an [Authenticator]. The zero value authenticates no
// one and allows everything.
type Config struct {
	// JWKSURL or JWKSFile is where the keys that sign JWTs are: a URL
	// fetched in the background (and again, rate-limited, when a token
	// names an unknown key), or a file re-read when it changes. Setting one
	// turns JWT authentication on; Issuer and Audience are then required.
	JWKSURL, JWKSFile string
	// Issuer and Audience are what a JWT's iss and aud must hold.
	Issuer, Audience string
	// APIKeysFile is a JSON file of hashed API keys (see [LoadAPIKeys]),
	// re-read when it changes. Setting it turns API keys on.
	APIKeysFile string
	// RateLimit is the events per second one principal may send (0: no
	// limit), with bursts of RateBurst (default: one second's worth).
	RateLimit float64
	RateBurst int
	// FailureRate and FailureBurst bound failed authentications per client
	// address: past them, the address is answered RESOURCE_EXHAUSTED
	// before its credentials are looked at.
	FailureRate  float64
	FailureBurst int
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// ReloadInterval is how often JWKSFile and APIKeysFile are checked.
	ReloadInterval time.Duration
	// JWKSRefreshInterval is how often JWKSURL is fetched again, and
	// UnknownKeyInterval the least time between fetches caused by tokens
	// naming a key the set does not hold.
	JWKSRefreshInterval, UnknownKeyInterval time.Duration
	// TicketTTL is how long a ticket (see [Authenticator.IssueTicket]) may
	// wait to be used.
	TicketTTL time.Duration
	// HTTPClient fetches JWKSURL; a client with a 10s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets the audit log: failures with their reason, denials,
	// reloads, expired streams. slog.Default() when nil.
	Logger *slog.Logger
	// Metrics, when set, receives the counters by reason.
	Metrics prometheus.Registerer
}

// Enabled reports whether c turns authentication on.
func (c Config) Enabled() bool { return c.JWKSURL != "" || c.JWKSFile != "" || c.APIKeysFile != "" }

// Authenticator authenticates callers and authorizes their events; see
// the package comment. It is safe for concurrent use.
type Authenticator struct {
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	jwt     *jwtVerifier // nil when JWTs are off
	keys    *apiKeys     // nil when API keys are off
	tickets tickets
	// tokens caches verified JWTs until they expire, so that a token is
	// verified once, not once per request.
	tokens *lru.Cache[string, *Principal]
	// sendLimits and failLimits hold the token buckets per principal and,
	// for failed attempts, per address.
	sendLimits, failLimits *lru.Cache[string, *rate.Limiter]
	metrics                metrics
	stop                   context.CancelFunc
	wg                     sync.WaitGroup
}

// New starts an Authenticator: it loads the key files and starts the
// goroutines that reload them. Call Close to stop them.
func New(cfg Config) (*Authenticator, error) {
	if (cfg.JWKSURL != "" || cfg.JWKSFile != "") && (cfg.Issuer == "" || cfg.Audience == "") {
		return nil, errors.New("a JWKS URL or file needs an issuer and an audience")
	}
	if cfg.JWKSURL != "" && cfg.JWKSFile != "" {
		return nil, errors.New("a JWKS URL or a JWKS file, not both: keep one key set per issuer")
	}
	if cfg.RateLimit < 0 || cfg.RateBurst < 0 {
		return nil, errors.New("rate limit and burst must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Leeway, DefaultLeeway)
	def(&cfg.ReloadInterval, DefaultReloadInterval)
	def(&cfg.JWKSRefreshInterval, DefaultJWKSRefreshInterval)
	def(&cfg.UnknownKeyInterval, DefaultUnknownKeyInterval)
	def(&cfg.TicketTTL, DefaultTicketTTL)
	if cfg.RateLimit > 0 && cfg.RateBurst == 0 {
		cfg.RateBurst = max(1, int(cfg.RateLimit))
	}
	if cfg.FailureRate <= 0 {
		cfg.FailureRate = DefaultFailureRate
	}
	if cfg.FailureBurst <= 0 {
		cfg.FailureBurst = DefaultFailureBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	a := &Authenticator{cfg: cfg, now: cfg.Now, log: cfg.Logger}
	a.tickets.ttl = cfg.TicketTTL
	a.tokens, _ = lru.New[string, *Principal](tokenEntries)
	a.sendLimits, _ = lru.New[string, *rate.Limiter](limiterEntries)
	a.failLimits, _ = lru.New[string, *rate.Limiter](limiterEntries)
	var err error
	if a.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	if cfg.JWKSURL != "" || cfg.JWKSFile != "" {
		if a.jwt, err = newJWTVerifier(ctx, a); err != nil {
			a.Close()
			return nil, err
		}
	}
	if cfg.APIKeysFile != "" {
		if a.keys, err = newAPIKeys(ctx, a); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// Close stops the goroutines that reload keys.
func (a *Authenticator) Close() {
	a.stop()
	a.wg.Wait()
}

// Enabled reports whether callers must authenticate.
func (a *Authenticator) Enabled() bool { return a.jwt != nil || a.keys != nil }

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller: a JWT's sub, an API key's principal, a
	// client certificate's identity, or, without authentication, the
	// client's address.
	Name string
	// Method is how the caller authenticated: "jwt", "api-key", "tls" or
	// "none".
	Method string
	// Expires is when the credential expires; zero when it does not.
	Expires time.Time
	// Scopes is what the credential allows.
	Scopes Scopes
	// ticket is true for a principal taken from a ticket, which cannot
	// mint more tickets.
	ticket bool
}

// contextKey keys the caller's session in a context.
type contextKey struct{}

// session is the principal of one call; Refresh replaces it on a Stream.
type session struct {
	mu     sync.Mutex
	p      *Principal
	expiry *time.Timer             // nil for calls that do not outlive a request
	end    context.CancelCauseFunc // ends a long-lived call; nil for others
}

func (s *session) principal() *Principal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// FromContext returns the principal of the call behind ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	if s, _ := ctx.Value(contextKey{}).(*session); s != nil {
		return s.principal()
	}
	return nil
}

// withPrincipal returns ctx carrying p for a call that ends with its
// request.
func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, &session{p: p})
}

// errExpired ends a long-lived call whose credential expired.
var errExpired = unauthenticated(reasonInvalid, "credential expired: reconnect with a fresh one")

// bind returns ctx carrying p for a long-lived call, ended with errExpired
// when p's credential expires (unless Refresh extends it first); release
// frees its timer.
func (a *Authenticator) bind(ctx context.Context, p *Principal, transport string) (_ context.Context, release func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{p: p, end: cancel}
	if !p.Expires.IsZero() {
		s.expiry = time.AfterFunc(p.Expires.Sub(a.now()), func() {
			p := s.principal()
			a.metrics.expired.WithLabelValues(transport).Inc()
			a.log.Info("auth: call ended: credential expired", "principal", p.Name, "method", p.Method, "transport", transport)
			cancel(errExpired)
		})
	}
	return context.WithValue(ctx, contextKey{}, s), func() {
		if s.expiry != nil {
			s.expiry.Stop()
		}
		cancel(nil)
	}
}

// ExpiredError returns the error a call ended by its credential's expiry
// reports (UNAUTHENTICATED), or nil when ctx did not end that way.
func ExpiredError(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errExpired) {
		return errExpired
	}
	return nil
}

// Authorize is the sink's Config.Authorize hook: it allows action on
// events of type t when the caller's scopes allow it and, for sends, when
// the caller is within its rate limit.
func (a *Authenticator) Authorize(ctx context.Context, action sink.Action, t eventv1.Type) error {
	p := FromContext(ctx)
	if p == nil {
		if a.Enabled() {
			return unauthenticated(reasonMissing, "no authenticated caller")
		}
		p = anonymous
	}
	if !p.Scopes.Allows(action, t) {
		a.metrics.denied.WithLabelValues(action.String()).Inc()
		a.log.Info("auth: denied", "principal", p.Name, "method", p.Method, "action", action.String(), "type", t.String())
		return status.Errorf(codes.PermissionDenied, "%s may not %s %s events", p.Name, action, t)
	}
	if action == sink.ActionSend && a.cfg.RateLimit > 0 {
		if wait, ok := a.take(a.sendLimits, p.Name, rate.Limit(a.cfg.RateLimit), a.cfg.RateBurst); !ok {
			a.metrics.limited.WithLabelValues("principal").Inc()
			return protocol.RetryLater(fmt.Sprintf("rate limit of %g events/s exceeded", a.cfg.RateLimit), wait)
		}
	}
	return nil
}

// anonymous is the caller of an in-process call when authentication is off.
var anonymous = &Principal{Name: "anonymous", Method: "none", Scopes: allScopes}

// take takes a token from key's bucket in limits; when there is none it
// returns how long until there is one.
func (a *Authenticator) take(limits *lru.Cache[string, *rate.Limiter], key string, r rate.Limit, burst int) (time.Duration, bool) {
	lim, ok := limits.Get(key)
	if !ok {
		lim = rate.NewLimiter(r, burst)
		if prev, found, _ := limits.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	now := a.now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// The reasons of UNAUTHENTICATED errors, in their ErrorInfo.
const (
	reasonMissing = protocol.ReasonCredentialMissing
	reasonInvalid = protocol.ReasonCredentialInvalid
)

// unauthenticated is UNAUTHENTICATED with the ErrorInfo of reason.
func unauthenticated(reason, msg string) error {
	st, err := status.New(codes.Unauthenticated, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: protocol.ErrorDomain})
	if err != nil {
		panic(err) // an ErrorInfo always marshals
	}
	return st.Err()
}

// hostOf is an address without its port (the address itself when it has
// none).
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
