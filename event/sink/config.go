package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultMaxPendingPerStream = 1024
	DefaultMaxMessageBytes     = 4 << 20 // what a gRPC server accepts by default
	DefaultKeepalive           = 5 * time.Second
	DefaultKeepaliveTimeout    = 3 * time.Second
	DefaultReconnectMax        = 500 * time.Millisecond
	DefaultResolveInterval     = 10 * time.Second
)

// ErrInvalidConfig is wrapped by every error [New] and [ParseRoute] return
// for bad configuration.
var ErrInvalidConfig = errors.New("invalid sink config")

// Route sends events of one type to processors.
type Route struct {
	// Type is the event type this route serves.
	Type eventv1.Type
	// Targets are gRPC targets ("host:port", "dns:///name:port") of the
	// processors serving Type. Load is spread over all of them.
	Targets []string
	// Broadcast sends each event to every target instead of one; the client
	// gets OUTCOME_ACCEPTED (HTTP 202) once every live target has taken it.
	Broadcast bool
	// Durable stores each event in the NATS JetStream store of
	// Config.Durable and answers OUTCOME_STORED (HTTP 202) once it is
	// stored; the sinks then deliver it to the route's processors at least
	// once (docs/design.md, "Durable events"). Not with Broadcast.
	Durable bool
	// Idempotent makes a request/response route honour idempotency keys
	// (gRPC metadata idempotency-key, the HTTP Idempotency-Key header) of
	// synchronous callers (unary Send, REST, Go callers): the first
	// successful answer is kept in the store of Config.Durable for
	// Durable.DedupWindow and given again to a retry with the same key,
	// which never reaches a processor (docs/design.md, "Idempotency keys on
	// request/response routes"). It needs Durable.Conn. Durable routes
	// honour keys anyway; not with Broadcast.
	Idempotent bool
}

// Config configures a [Sink]. The zero value of every field but Routes is a
// sane default.
type Config struct {
	// Routes is the routing table; at most one route per type.
	Routes []Route
	// Timeout is the deadline given to a request whose client set none.
	Timeout time.Duration
	// StreamsPerTarget is how many Process streams the sink keeps open to
	// each target. Zero means GOMAXPROCS, at least 2.
	StreamsPerTarget int
	// MaxPendingPerStream bounds the requests in flight on one stream; past
	// it (on every stream of a route) the sink answers RESOURCE_EXHAUSTED.
	MaxPendingPerStream int
	// MaxMessageBytes bounds a request sent to a processor (a larger one is
	// answered RESOURCE_EXHAUSTED without touching the stream) and an answer
	// received from one (a larger one resets that stream).
	MaxMessageBytes int
	// Keepalive is how often the sink checks that each processor with live
	// streams still answers (a gRPC health check; HTTP/2 pings go every
	// max(Keepalive, 10s)), and KeepaliveTimeout how long an answer may take
	// before the processor counts as gone and its streams are closed.
	Keepalive, KeepaliveTimeout time.Duration
	// ReconnectMax caps the backoff between attempts to reach a processor.
	ReconnectMax time.Duration
	// PubSub configures the hub that fans events processors publish out
	// to subscribers: history kept for resume, per-subscriber buffer, and
	// what happens to a subscriber that falls behind.
	PubSub pubsub.Config
	// SharedPubSub, when set, is a NATS connection with JetStream through
	// which published events go, so that every sink using the same NATS
	// sees the same events under the same sequence numbers and a
	// subscriber resumes on any of them (docs/design.md, "Pub/sub across
	// sinks"). PubSub.HistorySize is then also the stream's per-type
	// history. Nil keeps pub/sub in this sink's memory. The sink does not
	// close it.
	SharedPubSub *nats.Conn
	// Resolver resolves dns:/// targets; net.DefaultResolver when nil.
	Resolver Resolver
	// ResolveInterval is how often dns:/// targets are resolved again.
	ResolveInterval time.Duration
	// Metrics, when set, receives the sink's Prometheus metrics.
	Metrics prometheus.Registerer
	// Logger receives the sink's logs; slog.Default() when nil.
	Logger *slog.Logger
	// TransportCredentials secure the connections to processors (TLS, mTLS:
	// see package event/tlsfiles); nil dials without TLS.
	TransportCredentials credentials.TransportCredentials
	// DialOptions are appended to the sink's own when dialing processors
	// (tests use them to dial in-memory listeners).
	DialOptions []grpc.DialOption
	// Authorize, when set, is asked for every event before it is routed,
	// on every entry (REST, Send, each event of a Stream and of its
	// batches, in-process callers), and for every type of every
	// subscription (gRPC, Server-Sent Events, NDJSON). ctx is the caller's
	// request context, which carries its identity (whatever an
	// authenticating interceptor or middleware put there). A non-nil error
	// refuses that event or subscription alone: a status error is answered
	// as it is, any other error as PERMISSION_DENIED.
	Authorize func(ctx context.Context, action Action, t eventv1.Type) error
	// Refresh, when set, is asked when a Stream client sends a fresh
	// credential in-band (StreamRequest.credential); ctx is the stream's.
	// It returns when the stream's credential now expires, or a status
	// error refusing it. Without it, such messages are refused
	// FAILED_PRECONDITION.
	Refresh func(ctx context.Context, credential string) (time.Time, error)
	// Durable configures durable routes and their store.
	Durable DurableConfig
}

// withDefaults returns c with zero fields set to their defaults, or an error
// naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if len(c.Routes) == 0 {
		return c, fmt.Errorf("%w: no routes (want at least one TYPE=TARGET)", ErrInvalidConfig)
	}
	seen := make(map[eventv1.Type]bool, len(c.Routes))
	durable, idempotent := false, false
	for _, r := range c.Routes {
		if err := r.validate(); err != nil {
			return c, err
		}
		durable = durable || r.Durable
		idempotent = idempotent || r.Idempotent
		if seen[r.Type] {
			return c, fmt.Errorf("%w: more than one route for %s (list all targets in one route)", ErrInvalidConfig, r.Type)
		}
		seen[r.Type] = true
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Timeout", &c.Timeout, DefaultTimeout},
		{"Keepalive", &c.Keepalive, DefaultKeepalive},
		{"KeepaliveTimeout", &c.KeepaliveTimeout, DefaultKeepaliveTimeout},
		{"ReconnectMax", &c.ReconnectMax, DefaultReconnectMax},
		{"ResolveInterval", &c.ResolveInterval, DefaultResolveInterval},
	} {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("%w: %s must not be negative, got %v", ErrInvalidConfig, d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	for _, n := range []struct {
		name string
		v    *int
		def  int
	}{
		{"StreamsPerTarget", &c.StreamsPerTarget, max(2, runtime.GOMAXPROCS(0))},
		{"MaxPendingPerStream", &c.MaxPendingPerStream, DefaultMaxPendingPerStream},
		{"MaxMessageBytes", &c.MaxMessageBytes, DefaultMaxMessageBytes},
	} {
		switch {
		case *n.v < 0:
			return c, fmt.Errorf("%w: %s must not be negative, got %d", ErrInvalidConfig, n.name, *n.v)
		case *n.v == 0:
			*n.v = n.def
		}
	}
	if idempotent && c.Durable.Conn == nil {
		return c, fmt.Errorf("%w: an idempotent route needs a NATS connection (Durable.Conn) to keep its replies", ErrInvalidConfig)
	}
	if err := c.Durable.withDefaults(durable); err != nil {
		return c, err
	}
	if c.SharedPubSub != nil {
		c.PubSub.External = true
	}
	if err := c.PubSub.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func (r Route) validate() error {
	if r.Type == eventv1.Type_TYPE_UNSPECIFIED {
		return fmt.Errorf("%w: route without a type", ErrInvalidConfig)
	}
	if _, ok := eventv1.Type_name[int32(r.Type)]; !ok {
		return fmt.Errorf("%w: route for unknown type %d", ErrInvalidConfig, r.Type)
	}
	if len(r.Targets) == 0 {
		return fmt.Errorf("%w: route for %s has no targets", ErrInvalidConfig, r.Type)
	}
	if r.Durable && r.Broadcast {
		return fmt.Errorf("%w: route for %s: a route cannot be both durable and broadcast", ErrInvalidConfig, r.Type)
	}
	if r.Idempotent && r.Broadcast {
		return fmt.Errorf("%w: route for %s: idempotency keys are not supported on broadcast routes", ErrInvalidConfig, r.Type)
	}
	for _, t := range r.Targets {
		if err := checkTarget(t); err != nil {
			return fmt.Errorf("%w: route for %s: bad target %q: %v", ErrInvalidConfig, r.Type, t, err)
		}
	}
	return nil
}

// checkTarget checks the form of a processor target: "host:port" or
// "dns:///host:port", both with a port (gRPC would otherwise dial port
// 443), or a target of another gRPC resolver scheme ("scheme://…",
// "unix:path"), which is passed to gRPC as it is.
func checkTarget(t string) error {
	if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t\n") {
		return errors.New("want host:port or dns:///name:port")
	}
	hostPort, isDNS := strings.CutPrefix(t, "dns:///")
	if !isDNS && (strings.Contains(t, "://") || strings.HasPrefix(t, "unix:")) {
		return nil
	}
	host, port, err := net.SplitHostPort(hostPort)
	switch {
	case err != nil:
		why := err.Error()
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			why = ae.Err // without the address, which the caller quotes
		}
		return fmt.Errorf("want host:port or dns:///name:port (%s)", why)
	case port == "":
		return errors.New("want host:port or dns:///name:port (missing port)")
	case isDNS && host == "":
		return errors.New("want dns:///name:port (missing name)")
	}
	return nil
}

// ParseType parses an event type name as users write it: the enum name with
// or without its "TYPE_" prefix, in any case ("hello", "TYPE_HELLO").
func ParseType(name string) (eventv1.Type, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "TYPE_") {
		n = "TYPE_" + n
	}
	v, ok := eventv1.Type_value[n]
	if !ok || v == int32(eventv1.Type_TYPE_UNSPECIFIED) {
		return 0, fmt.Errorf("%w: unknown event type %q (known: %s)", ErrInvalidConfig, name, knownTypes())
	}
	return eventv1.Type(v), nil
}

// knownTypes lists the valid type names without TYPE_, in the enum's
// order (its numbers need not be consecutive).
func knownTypes() string {
	values := eventv1.Type(0).Descriptor().Values()
	names := make([]string, 0, values.Len())
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 {
			names = append(names, strings.TrimPrefix(string(v.Name()), "TYPE_"))
		}
	}
	return strings.Join(names, ", ")
}

// ParseRoute parses a route in the command-line form TYPE=TARGET[,TARGET...],
// for example "hello=localhost:9090" or
// "TYPE_GOODBYE=dns:///procs:9090,10.0.0.7:9090".
func ParseRoute(s string) (Route, error) {
	name, targets, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("%w: route %q: want TYPE=TARGET[,TARGET...]", ErrInvalidConfig, s)
	}
	t, err := ParseType(name)
	if err != nil {
		return Route{}, fmt.Errorf("route %q: %w", s, err)
	}
	r := Route{Type: t}
	for tg := range strings.SplitSeq(targets, ",") {
		if tg = strings.TrimSpace(tg); tg != "" {
			r.Targets = append(r.Targets, tg)
		}
	}
	if err := r.validate(); err != nil {
		return Route{}, fmt.Errorf("route %q: %w", s, err)
	}
	return r, nil
}

// Action is what a caller asks to do with events of a type.
type Action int

// The actions [Config.Authorize] is asked about.
const (
	// ActionSend is sending an event (REST, Send, each event of a Stream).
	ActionSend Action = iota + 1
	// ActionSubscribe is subscribing to published events (Subscribe over
	// gRPC, Server-Sent Events or NDJSON), asked once per type.
	ActionSubscribe
	// ActionReplay is listing and replaying the dead letters of a durable
	// route ([Sink.DeadLetters], [Sink.ReplayDeadLetters]).
	ActionReplay
)

func (a Action) String() string {
	switch a {
	case ActionSend:
		return "send"
	case ActionSubscribe:
		return "subscribe"
	case ActionReplay:
		return "replay"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// authorize asks Config.Authorize, if set, whether the caller behind ctx
// may take action on events of type t. A refusal that is not a status error
// becomes PERMISSION_DENIED.
func (s *Sink) authorize(ctx context.Context, action Action, t eventv1.Type) error {
	if s.cfg.Authorize == nil {
		return nil
	}
	err := s.cfg.Authorize(ctx, action, t)
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.PermissionDenied, "%s %s: %v", action, t, err)
}
