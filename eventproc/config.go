package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/natsembed"
)

// Config is the sink binary's configuration, built once from flags and
// environment variables by [parseConfig] and valid from then on.
type Config struct {
	// HTTPAddr and GRPCAddr are the listen addresses of the two APIs;
	// DebugAddr, when set, serves Go's profiler and runtime variables.
	HTTPAddr, GRPCAddr, DebugAddr string
	// Sink is the sink library's configuration (routes, timeout, pools,
	// keepalive, pub/sub); newServer adds the logger and metrics registry.
	Sink sink.Config
	// MaxBodyBytes bounds an HTTP request body and a gRPC request message.
	MaxBodyBytes int64
	// MaxStreamsPerConn bounds the concurrent gRPC calls of one client
	// connection (HTTP/2 MAX_CONCURRENT_STREAMS).
	MaxStreamsPerConn int
	// MaxConns bounds the open connections of each listener (HTTP, gRPC);
	// zero means no limit.
	MaxConns int
	// BodyReadTimeout bounds each read of an HTTP request body.
	BodyReadTimeout time.Duration
	// LogFormat is "text" or "json"; LogLevel the least severe level logged.
	LogFormat string
	LogLevel  slog.Level
	// ShutdownDelay is how long the sink keeps serving, not ready, once
	// shutdown starts; ShutdownGrace how long in-flight requests get after.
	ShutdownDelay, ShutdownGrace time.Duration
	// SSEHeartbeat is the heartbeat interval of idle Server-Sent Events.
	SSEHeartbeat time.Duration
	// MemoryBudget is the Go runtime's soft memory limit, in bytes, set
	// once at start; zero leaves the runtime's (GOMEMLIMIT, or none).
	MemoryBudget int64
	// Auth configures authentication and rate limits; newServer adds the
	// logger and metrics registry.
	Auth auth.Config
	// TLS names the certificate files of both ports and of the
	// connections to processors.
	TLS TLSFiles
	// CloudEventTypes names the CloudEvents type of event types that are
	// not known by their enum name over CloudEvents (--ce-type).
	CloudEventTypes map[eventv1.Type]string
	// Store configures the NATS JetStream store of durable routes:
	// embedded (DataDir, Listen, caps, sync) or external (URL). It is
	// started when a route is durable or idempotent, or to share pub/sub
	// (URL or Listen set).
	Store natsembed.Options
}

// option is one setting: flag, variable, default, meaning, and how a value
// goes into the Config. [options] is the only list of settings: --help and
// the README's flags table (TestREADMEFlags) are made from it.
type option struct {
	name  string // flag name, without dashes
	arg   string // what the value looks like
	env   string
	def   string
	multi bool // repeatable flag; the variable holds a list
	usage string
	set   func(setting) error
}

// options lists every setting of c, in the order --help shows them.
func options(c *Config) []option {
	return slices.Concat([]option{
		{name: "http-addr", arg: "ADDR", env: "EVENTPROC_HTTP_ADDR", def: ":8080", set: addrVar(&c.HTTPAddr),
			usage: "listen address of the HTTP/JSON API, the console, /healthz, /readyz and /metrics"},
		{name: "grpc-addr", arg: "ADDR", env: "EVENTPROC_GRPC_ADDR", def: ":8081", set: addrVar(&c.GRPCAddr),
			usage: "listen address of the gRPC API (SinkService, health checking, reflection)"},
		{name: "debug-addr", arg: "ADDR", env: "EVENTPROC_DEBUG_ADDR", set: addrVar(&c.DebugAddr),
			usage: "listen address of Go's profiler (/debug/pprof/) and runtime variables (/debug/vars); off when empty; " +
				"bind it where only operators can reach it"},
	}, c.TLS.options(), []option{
		{name: "route", arg: "TYPE=TARGET[,TARGET...]", env: "EVENTPROC_ROUTES", multi: true, set: c.addRoute,
			usage: "send events of TYPE (e.g. hello or TYPE_HELLO) to these processors (host:port or dns:///name:port); " +
				"repeatable, at least one; the variable separates routes with ';' or spaces"},
		{name: "broadcast", arg: "TYPE", env: "EVENTPROC_BROADCAST", multi: true, set: c.setBroadcast,
			usage: "make TYPE's route a broadcast route: every processor of the route gets each event, and HTTP " +
				"answers 202; repeatable; the variable separates types with ',', ';' or spaces"},
		{name: "ce-type", arg: "TYPE=CETYPE", env: "EVENTPROC_CE_TYPES", multi: true, set: c.addCEType,
			usage: "the CloudEvents type of event type TYPE (e.g. hello=com.example.order.placed) on POST /v1/events " +
				"and in subscriptions with format=cloudevents; a type without one is known by its enum name " +
				"(TYPE_HELLO); repeatable; the variable separates them with ',', ';' or spaces"},
		{name: "durable", arg: "TYPE", env: "EVENTPROC_DURABLE", multi: true, set: c.setDurable,
			usage: "make TYPE's route durable: each event is stored (NATS JetStream) and answered 202 with its " +
				"id and sequence, then delivered to the route's processors at least once, retried with backoff, " +
				"and moved to the dead letters after --durable-max-deliver deliveries or a permanent error; " +
				"repeatable; the variable separates types with ',', ';' or spaces"},
		{name: "durable-max-deliver", arg: "N", env: "EVENTPROC_DURABLE_MAX_DELIVER", def: strconv.Itoa(sink.DefaultMaxDeliver),
			set:   intVar(&c.Sink.Durable.MaxDeliver, 1),
			usage: "deliveries of a durable event before it moves to the dead letters"},
		{name: "durable-max-bytes", arg: "SIZE", env: "EVENTPROC_DURABLE_MAX_BYTES", def: "256MiB",
			set:   positiveSize(&c.Sink.Durable.MaxBytes),
			usage: "room for durable events waiting for delivery; beyond, they are answered 429 with Retry-After"},
		{name: "idempotency-window", arg: "DURATION", env: "EVENTPROC_IDEMPOTENCY_WINDOW", def: "2m",
			set: durationVar(&c.Sink.Durable.DedupWindow, false),
			usage: "how long an Idempotency-Key header (gRPC metadata idempotency-key; on a Stream, each event's " +
				"idempotency_key) is remembered on durable " +
				"routes: a request sent again with it is stored once and answered with the first one's id and " +
				"sequence and \"duplicate\": true; the same key with a different event is refused with 422; " +
				"also how long an --idempotent route keeps a reply"},
		{name: "idempotent", arg: "TYPE", env: "EVENTPROC_IDEMPOTENT", multi: true, set: c.setIdempotent,
			usage: "make TYPE's request/response route honour the Idempotency-Key header (gRPC metadata " +
				"idempotency-key; REST, unary Send, and each Stream event's idempotency_key): the first reply (or 204) is kept in the NATS JetStream store " +
				"for --idempotency-window and given again to a retry with the same key, which never reaches a " +
				"processor; a retry sent while the first is in flight waits for its answer (409 if its own " +
				"deadline comes first); the same key with a different event is refused with 422; errors are not " +
				"kept; starts the store as --durable does; repeatable; the variable separates types with ',', " +
				"';' or spaces"},
		{name: "data-dir", arg: "DIR", env: "EVENTPROC_DATA_DIR", def: "eventproc-data", set: stringVar(&c.Store.DataDir),
			usage: "directory of the embedded NATS JetStream store (used when a route is durable and --nats-url is not set); " +
				"one sink per directory"},
		{name: "nats-listen", arg: "ADDR", env: "EVENTPROC_NATS_LISTEN", set: addrVar(&c.Store.Listen),
			usage: "also accept NATS clients (other sinks with --nats-url, the nats CLI) on this address; by default " +
				"the embedded server has no port, only an in-process connection; published events then go through " +
				"a JetStream stream shared with those sinks, so that subscribers resume on any of them"},
		{name: "nats-url", arg: "URL", env: "EVENTPROC_NATS_URL", set: stringVar(&c.Store.URL),
			usage: "use this external NATS deployment with JetStream (nats://host:4222, several separated by ',') " +
				"for durable routes instead of the embedded server, and share published events through it with " +
				"every sink using it, so that subscribers resume on any of them"},
		{name: "nats-ca", arg: "FILE", env: "EVENTPROC_NATS_CA", set: stringVar(&c.Store.CAFile),
			usage: "PEM CA bundle the --nats-url servers' certificates must chain to (TLS to NATS; user and password " +
				"or a token go in the URL: nats://user:pass@host:4222)"},
		{name: "nats-cert", arg: "FILE", env: "EVENTPROC_NATS_CERT", set: stringVar(&c.Store.CertFile),
			usage: "PEM client certificate the sink presents to the --nats-url servers; with --nats-key"},
		{name: "nats-key", arg: "FILE", env: "EVENTPROC_NATS_KEY", set: stringVar(&c.Store.KeyFile),
			usage: "PEM private key of --nats-cert"},
		{name: "nats-creds", arg: "FILE", env: "EVENTPROC_NATS_CREDS", set: stringVar(&c.Store.CredsFile),
			usage: "NATS credentials file (a user JWT and NKey seed, as nsc or Synadia Cloud make them) to " +
				"authenticate to the --nats-url servers with; read again at each reconnection"},
		{name: "nats-replicas", arg: "N", env: "EVENTPROC_NATS_REPLICAS", def: "1", set: intVar(&c.Sink.Durable.Replicas, 1),
			usage: "replicas of the streams the sink creates: 1 for the embedded server, 3 on a cluster"},
		{name: "nats-max-memory", arg: "SIZE", env: "EVENTPROC_NATS_MAX_MEMORY", def: "32MiB", set: positiveSize(&c.Store.MaxMemory),
			usage: "cap on the embedded JetStream's memory storage"},
		{name: "nats-max-store", arg: "SIZE", env: "EVENTPROC_NATS_MAX_STORE", def: "1GiB", set: positiveSize(&c.Store.MaxStore),
			usage: "cap on the embedded JetStream's file storage under --data-dir"},
		{name: "nats-sync", arg: "DURATION|always", env: "EVENTPROC_NATS_SYNC", def: "2m", set: c.setSync,
			usage: "how often the embedded store is flushed to disk: a crash of the process loses nothing, a crash of " +
				"the machine may lose what was stored since the last flush; always flushes every event before " +
				"answering 202, at a cost (docs/design.md)"},
		{name: "timeout", arg: "DURATION", env: "EVENTPROC_TIMEOUT", def: "10s", set: durationVar(&c.Sink.Timeout, false),
			usage: "deadline of a request whose client sets none (Grpc-Timeout or Request-Timeout header, gRPC deadline)"},
		{name: "max-body-bytes", arg: "N", env: "EVENTPROC_MAX_BODY_BYTES", def: "1048576", set: intVar(&c.MaxBodyBytes, 1),
			usage: "largest HTTP request body (413 beyond) and gRPC request message (RESOURCE_EXHAUSTED beyond)"},
		{name: "streams-per-target", arg: "N", env: "EVENTPROC_STREAMS_PER_TARGET", def: "0", set: intVar(&c.Sink.StreamsPerTarget, 0),
			usage: "Process streams kept open to each processor address; 0 means GOMAXPROCS, at least 2"},
		{name: "max-pending", arg: "N", env: "EVENTPROC_MAX_PENDING", def: "0", set: intVar(&c.Sink.MaxPendingPerStream, 0),
			usage: fmt.Sprintf("requests in flight per processor stream before the sink answers 429; 0 means %d",
				sink.DefaultMaxPendingPerStream)},
		{name: "max-streams-per-conn", arg: "N", env: "EVENTPROC_MAX_STREAMS_PER_CONN", def: strconv.Itoa(defaultMaxStreamsPerConn),
			set: intVar(&c.MaxStreamsPerConn, 1),
			usage: "concurrent gRPC calls (unary or streaming) per client connection (HTTP/2 MAX_CONCURRENT_STREAMS); " +
				"more wait in the client until one ends, so one connection cannot hold unbounded goroutines"},
		{name: "max-conns", arg: "N", env: "EVENTPROC_MAX_CONNS", def: strconv.Itoa(defaultMaxConns), set: intVar(&c.MaxConns, 0),
			usage: "open connections on each of the HTTP and gRPC listeners; one more is closed as soon as it is " +
				"accepted (and counted in eventproc_connections_refused_total); 0 means no limit"},
		{name: "body-read-timeout", arg: "DURATION", env: "EVENTPROC_BODY_READ_TIMEOUT", def: "10s",
			set: durationVar(&c.BodyReadTimeout, false),
			usage: "how long an HTTP request body may send nothing: a body that stalls longer is cut off, with 408 " +
				"when the answer can still be written, and its connection (HTTP/1.1) or stream (HTTP/2) closed"},
		{name: "keepalive", arg: "DURATION", env: "EVENTPROC_KEEPALIVE", def: sink.DefaultKeepalive.String(),
			set: durationVar(&c.Sink.Keepalive, false),
			usage: "interval of pings on processor connections, to notice a processor that froze or vanished without " +
				"closing them: it is dropped within about --keepalive plus --keepalive-timeout; processors must allow " +
				"pings this often (the processor SDK's Serve allows every 1s)"},
		{name: "keepalive-timeout", arg: "DURATION", env: "EVENTPROC_KEEPALIVE_TIMEOUT", def: sink.DefaultKeepaliveTimeout.String(),
			set:   durationVar(&c.Sink.KeepaliveTimeout, false),
			usage: "how long a ping may go unanswered before the processor connection counts as dead"},
		{name: "history", arg: "N", env: "EVENTPROC_HISTORY", def: strconv.Itoa(pubsub.DefaultHistorySize), set: c.setHistory,
			usage: "published events of each type kept so that a subscriber can resume after its Last-Event-ID; 0 keeps none; " +
				"with --nats-url or --nats-listen also the shared stream's history (give every sink the same value)"},
		{name: "subscriber-buffer", arg: "N", env: "EVENTPROC_SUBSCRIBER_BUFFER", def: strconv.Itoa(pubsub.DefaultBufferSize),
			set:   intVar(&c.Sink.PubSub.BufferSize, 1),
			usage: "published events waiting for one subscriber before --slow-subscriber applies"},
		{name: "slow-subscriber", arg: "drop|disconnect", env: "EVENTPROC_SLOW_SUBSCRIBER", def: "drop", set: c.setSlowSubscriber,
			usage: "when a subscriber's buffer is full: drop its oldest event (the next one it gets reports the " +
				"number missed) or disconnect it (it can resume from its Last-Event-ID)"},
		{name: "max-subscribers", arg: "N", env: "EVENTPROC_MAX_SUBSCRIBERS", def: strconv.Itoa(pubsub.DefaultMaxSubscribers),
			set:   intVar(&c.Sink.PubSub.MaxSubscribers, 1),
			usage: "live subscriptions (gRPC and HTTP) before the sink answers 429 / RESOURCE_EXHAUSTED"},
		{name: "sse-heartbeat", arg: "DURATION", env: "EVENTPROC_SSE_HEARTBEAT", def: "15s", set: durationVar(&c.SSEHeartbeat, false),
			usage: "interval of heartbeat comments on Server-Sent Events streams, which keep proxies from closing idle ones"},
		{name: "memory-budget", arg: "SIZE", env: "EVENTPROC_MEMORY_BUDGET", def: "48MiB", set: sizeVar(&c.MemoryBudget),
			usage: "the Go runtime's soft memory limit, set once at start (e.g. 64MiB or 1GiB): the garbage collector " +
				"runs more often as the sink's memory nears it, and lets it grow beyond when what the sink holds live " +
				"needs more; by default 48MiB, plus 128MiB when the sink runs the embedded NATS server (a durable or " +
				"idempotent route, or --nats-listen, without --nats-url); " + memoryRule},
		{name: "auth-jwks-url", arg: "URL", env: "EVENTPROC_AUTH_JWKS_URL", set: stringVar(&c.Auth.JWKSURL),
			usage: "authenticate clients with JWT bearer tokens signed by the keys of this JSON Web Key Set, fetched " +
				"every 15 minutes and when a token names an unknown key (at most every 30s); needs --auth-issuer and " +
				"--auth-audience"},
		{name: "auth-jwks-file", arg: "FILE", env: "EVENTPROC_AUTH_JWKS_FILE", set: stringVar(&c.Auth.JWKSFile),
			usage: "as --auth-jwks-url, with the key set read from a file, and read again when it changes"},
		{name: "auth-issuer", arg: "ISSUER", env: "EVENTPROC_AUTH_ISSUER", set: stringVar(&c.Auth.Issuer),
			usage: "the iss a JWT must carry"},
		{name: "auth-audience", arg: "AUDIENCE", env: "EVENTPROC_AUTH_AUDIENCE", set: stringVar(&c.Auth.Audience),
			usage: "the aud a JWT must carry"},
		{name: "auth-api-keys", arg: "FILE", env: "EVENTPROC_AUTH_API_KEYS", set: stringVar(&c.Auth.APIKeysFile),
			usage: "authenticate clients with API keys (Authorization: Bearer KEY, or x-api-key: KEY) listed by their " +
				"SHA-256 in this JSON file, with their principal and scopes; read again when it changes"},
		{name: "rate-limit", arg: "N", env: "EVENTPROC_RATE_LIMIT", def: "0", set: floatVar(&c.Auth.RateLimit),
			usage: "events per second each principal may send (each event of a Stream or batch counts), answered " +
				"429 / RESOURCE_EXHAUSTED with Retry-After beyond; without authentication a principal is a client " +
				"address; 0: no limit"},
		{name: "rate-burst", arg: "N", env: "EVENTPROC_RATE_BURST", def: "0", set: intVar(&c.Auth.RateBurst, 0),
			usage: "events a principal may send at once beyond --rate-limit; 0 means one second's worth"},
		{name: "log-format", arg: "text|json", env: "EVENTPROC_LOG_FORMAT", def: "text", set: c.setLogFormat,
			usage: "log format (logs go to standard error)"},
		{name: "log-level", arg: "LEVEL", env: "EVENTPROC_LOG_LEVEL", def: "info", set: c.setLogLevel,
			usage: "least severe level logged: debug, info, warn or error"},
		{name: "shutdown-delay", arg: "DURATION", env: "EVENTPROC_SHUTDOWN_DELAY", def: "1s", set: durationVar(&c.ShutdownDelay, true),
			usage: "on SIGINT or SIGTERM, how long the sink goes on serving every request, with /readyz answering 503 and " +
				"gRPC health NOT_SERVING, before it stops accepting connections, so that probes see it not ready " +
				"instead of refused; 0: stop accepting at once"},
		{name: "shutdown-grace", arg: "DURATION", env: "EVENTPROC_SHUTDOWN_GRACE", def: "10s", set: durationVar(&c.ShutdownGrace, true),
			usage: "after --shutdown-delay, how long in-flight requests may take before connections are closed"},
	})
}

// memoryRule is how --memory-budget, GOMEMLIMIT and GOGC combine, in the
// words of --help and of the README's Memory paragraph (TestREADMEFlags
// checks that it is there).
const memoryRule = "when neither this flag nor EVENTPROC_MEMORY_BUDGET is given and GOMEMLIMIT is set, " +
	"GOMEMLIMIT applies instead; 0 or off: the sink sets no limit (GOMEMLIMIT applies if set); " +
	"GOGC applies if set, else 400"

// printUsage writes the --help text.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: eventproc --route TYPE=TARGET[,TARGET...] [flags]

eventproc is the event sink. It serves the event.v1.SinkService API over gRPC
(with health checking and reflection) and over HTTP/JSON, and routes every
event by its type to the processors of that type's route.

Every flag can also be set by the environment variable shown after it; a flag
wins over its variable. TYPE is an event type name with or without TYPE_, in
any case; a DURATION is a Go duration (500ms, 1.5s) or a number of seconds.

Flags:
`)
	for _, o := range options(new(Config)) {
		fmt.Fprintf(w, "  --%s %s\n", o.name, o.arg)
		about := o.usage + ". Env: " + o.env
		if o.def != "" {
			about += fmt.Sprintf(", default %q", o.def)
		}
		for _, line := range wrap(about+".", 72) {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
	fmt.Fprint(w, `  --help
      print this help and exit

HTTP API (package event/httpapi; the README has the details):
  POST /v1/events   the body is an event, e.g. {"type":"TYPE_HELLO","payload":"hi"}:
                    200 with the reply event, 204 when consumed, 202 when a
                    broadcast route accepted it, or a JSON error
                    CloudEvents too: binary (ce- headers), structured
                    (application/cloudevents+json) and batch
                    (application/cloudevents-batch+json, a JSON array of
                    per-event results)
  GET  /v1/events:subscribe?types=TYPE_HELLO[&last_event_id=N][&format=cloudevents]
                    broadcast route accepted it or a durable route stored it
                    ({"id","sequence","duplicate"}; Idempotency-Key header
                    honoured), or a JSON error
  GET  /v1/events:subscribe?types=TYPE_HELLO[&last_event_id=N]
                    published events, as Server-Sent Events (Accept:
                    text/event-stream) or newline-delimited JSON
  GET  /v1/types, / (the browser console), /healthz, /readyz, /metrics
`)
}

// wrap breaks s into lines of at most width bytes, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// setting is one value as given, with its source for error messages.
type setting struct {
	source string // "--timeout" or "EVENTPROC_TIMEOUT"
	value  string
}

func (s setting) errorf(format string, args ...any) error {
	return fmt.Errorf("%s %q: %s", s.source, s.value, fmt.Sprintf(format, args...))
}

// parseConfig builds and validates the configuration from arguments and
// environment variables; it returns [flag.ErrHelp] when asked for help.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	opts := options(&c)
	fs := flag.NewFlagSet("eventproc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	given := make(map[string][]string, len(opts)) // flag name → its values
	for _, o := range opts {
		fs.Func(o.name, o.usage, func(v string) error {
			given[o.name] = append(given[o.name], v)
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	for _, o := range opts {
		// The flag's values, else the variable's, else the default.
		var set []setting
		env := strings.TrimSpace(getenv(o.env))
		switch {
		case len(given[o.name]) > 0 && !o.multi: // the last one wins
			set = []setting{{"--" + o.name, given[o.name][len(given[o.name])-1]}}
		case len(given[o.name]) > 0:
			for _, v := range given[o.name] {
				set = append(set, setting{"--" + o.name, v})
			}
		case env != "" && o.multi:
			// Commas separate the values of every list but routes, whose
			// targets they separate.
			for _, v := range splitList(env, o.name != "route") {
				set = append(set, setting{o.env, v})
			}
		case env != "":
			set = []setting{{o.env, env}}
		case o.def != "":
			set = []setting{{"--" + o.name, o.def}}
		}
		for _, s := range set {
			if err := o.set(s); err != nil {
				return c, err
			}
		}
		if o.name == "route" && len(c.Sink.Routes) == 0 {
			return c, errors.New("no routes: give at least one --route TYPE=TARGET[,TARGET...] (or set EVENTPROC_ROUTES)")
		}
	}
	if err := c.TLS.validate(); err != nil {
		return c, err
	}
	if a := c.Auth; (a.JWKSURL != "" || a.JWKSFile != "") && (a.Issuer == "" || a.Audience == "") {
		return c, errors.New("--auth-jwks-url and --auth-jwks-file need --auth-issuer and --auth-audience")
	}
	if c.Auth.JWKSURL != "" && c.Auth.JWKSFile != "" {
		return c, errors.New("give --auth-jwks-url or --auth-jwks-file, not both")
	}
	if err := c.validateStore(); err != nil {
		return c, err
	}
	if len(given["memory-budget"]) == 0 && strings.TrimSpace(getenv("EVENTPROC_MEMORY_BUDGET")) == "" {
		switch {
		case strings.TrimSpace(getenv("GOMEMLIMIT")) != "":
			c.MemoryBudget = 0 // the runtime applies GOMEMLIMIT
		case c.embedsStore():
			c.MemoryBudget += embeddedStoreMemory
		}
	}
	return c, nil
}

// splitList splits a list-valued environment variable on ';' and white
// space, and also on ',' when commas do not separate targets.
func splitList(s string, commas bool) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || (commas && r == ',')
	})
}

// withoutSentinel drops the sink's "invalid sink config: " error prefix.
func withoutSentinel(err error) string {
	return strings.Replace(err.Error(), sink.ErrInvalidConfig.Error()+": ", "", 1)
}

// addRoute adds a --route value to the routing table.
func (c *Config) addRoute(s setting) error {
	name, _, ok := strings.Cut(s.value, "=")
	if !ok {
		return s.errorf("want TYPE=TARGET[,TARGET...]")
	}
	if _, err := sink.ParseType(name); err != nil {
		return s.errorf("%s", withoutSentinel(err))
	}
	r, err := sink.ParseRoute(s.value)
	if err != nil {
		// ParseRoute names the route itself; keep only the reason.
		return s.errorf("%s", strings.TrimPrefix(withoutSentinel(err), fmt.Sprintf("route %q: ", s.value)))
	}
	for _, prev := range c.Sink.Routes {
		if prev.Type == r.Type {
			return s.errorf("second route for %s: list all its targets in one route (TYPE=A,B)", r.Type)
		}
	}
	c.Sink.Routes = append(c.Sink.Routes, r)
	return nil
}

// addCEType adds a --ce-type value: TYPE=CETYPE.
func (c *Config) addCEType(s setting) error {
	name, ceType, ok := strings.Cut(s.value, "=")
	if ceType = strings.TrimSpace(ceType); !ok || ceType == "" {
		return s.errorf("want TYPE=CETYPE, e.g. hello=com.example.order.placed")
	}
	t, err := sink.ParseType(name)
	if err != nil {
		return s.errorf("%s", withoutSentinel(err))
	}
	if c.CloudEventTypes == nil {
		c.CloudEventTypes = map[eventv1.Type]string{}
	}
	for prev, n := range c.CloudEventTypes {
		if prev == t {
			return s.errorf("second CloudEvents type for %s", t)
		}
		if n == ceType {
			return s.errorf("%q is already the CloudEvents type of %s", ceType, prev)
		}
	}
	c.CloudEventTypes[t] = ceType
	return nil
}

// routeOf returns the route of the type a setting names.
func (c *Config) routeOf(s setting) (*sink.Route, error) {
	t, err := sink.ParseType(s.value)
	if err != nil {
		return nil, s.errorf("%s", withoutSentinel(err))
	}
	for i := range c.Sink.Routes {
		if r := &c.Sink.Routes[i]; r.Type == t {
			return r, nil
		}
	}
	return nil, s.errorf("no --route for %s", t)
}

// setBroadcast makes the route of a --broadcast type a broadcast route.
func (c *Config) setBroadcast(s setting) error {
	r, err := c.routeOf(s)
	if err == nil {
		r.Broadcast = true
	}
	return err
}

// setDurable makes the route of a --durable type a durable route.
func (c *Config) setDurable(s setting) error {
	r, err := c.routeOf(s)
	switch {
	case err != nil:
		return err
	case r.Broadcast:
		return s.errorf("%s is a --broadcast route; a route is durable or broadcast, not both", r.Type)
	}
	r.Durable = true
	return nil
}

// setIdempotent makes the route of an --idempotent type honour
// idempotency keys.
func (c *Config) setIdempotent(s setting) error {
	r, err := c.routeOf(s)
	switch {
	case err != nil:
		return err
	case r.Broadcast:
		return s.errorf("%s is a --broadcast route; idempotency keys are not supported there", r.Type)
	}
	r.Idempotent = true
	return nil
}

// embeddedStoreMemory is added to the default --memory-budget when the
// sink runs the embedded NATS server: the server's memory (its caches, its
// deduplication index, its own memory storage) is in the sink's heap, and
// the plain sink's 48 MiB would make the collector run without pause
// (docs/performance.md, "The memory budget with the embedded store").
const embeddedStoreMemory = 128 << 20

// embedsStore reports whether the sink runs the embedded NATS server.
func (c *Config) embedsStore() bool {
	return c.Store.URL == "" && (c.needsStore() || c.sharedPubSub())
}

// needsStore reports whether a route is durable or idempotent: the store
// is needed, and the sink gets its connection.
func (c *Config) needsStore() bool { return c.durable() || c.idempotent() }

// idempotent reports whether a route is --idempotent.
func (c *Config) idempotent() bool {
	for _, r := range c.Sink.Routes {
		if r.Idempotent {
			return true
		}
	}
	return false
}

// durable reports whether a route is durable: the store is needed.
func (c *Config) durable() bool {
	for _, r := range c.Sink.Routes {
		if r.Durable {
			return true
		}
	}
	return false
}

// sharedPubSub reports whether pub/sub goes through the NATS store, shared
// with other sinks: whenever NATS is shared at all (--nats-url or
// --nats-listen). A lone sink keeps it in memory.
func (c *Config) sharedPubSub() bool { return c.Store.URL != "" || c.Store.Listen != "" }

// validateStore checks the store's settings against each other.
func (c *Config) validateStore() error {
	switch {
	case c.Store.URL != "" && c.Store.Listen != "":
		return errors.New("give --nats-url (an external NATS) or --nats-listen (the embedded one's port), not both")
	case c.Store.URL == "" && (c.Store.CAFile != "" || c.Store.CertFile != "" || c.Store.KeyFile != "" || c.Store.CredsFile != ""):
		return errors.New("--nats-ca, --nats-cert, --nats-key and --nats-creds secure the connection to --nats-url, which is not set")
	case (c.Store.CertFile == "") != (c.Store.KeyFile == ""):
		return errors.New("give --nats-cert and --nats-key together")
	case c.Store.URL == "" && c.Sink.Durable.Replicas > 1:
		return errors.New("--nats-replicas above 1 needs --nats-url (a cluster): the embedded server is a single node")
	case c.Store.URL == "" && (c.needsStore() || c.sharedPubSub()) && strings.TrimSpace(c.Store.DataDir) == "":
		return errors.New("--data-dir must not be empty for the embedded store")
	}
	return nil
}

func (c *Config) setSync(s setting) error {
	if strings.EqualFold(strings.TrimSpace(s.value), "always") {
		c.Store.SyncAlways = true
		return nil
	}
	return durationVar(&c.Store.SyncInterval, false)(s)
}

// positiveSize is sizeVar refusing zero and off.
func positiveSize(p *int64) func(setting) error {
	return func(s setting) error {
		if err := sizeVar(p)(s); err != nil {
			return err
		}
		if *p == 0 {
			return s.errorf("want a size above zero, such as 64MiB or 1GiB")
		}
		return nil
	}
}

func (c *Config) setHistory(s setting) error {
	ps := &c.Sink.PubSub
	err := intVar(&ps.HistorySize, 0)(s)
	ps.DisableHistory = ps.HistorySize == 0
	return err
}

func (c *Config) setSlowSubscriber(s setting) error {
	switch strings.ToLower(strings.TrimSpace(s.value)) {
	case "drop", "drop-oldest":
		c.Sink.PubSub.Policy = pubsub.DropOldest
	case "disconnect":
		c.Sink.PubSub.Policy = pubsub.Disconnect
	default:
		return s.errorf("want drop or disconnect")
	}
	return nil
}

func (c *Config) setLogFormat(s setting) error {
	switch f := strings.ToLower(s.value); f {
	case "text", "json":
		c.LogFormat = f
		return nil
	}
	return s.errorf("want text or json")
}

func (c *Config) setLogLevel(s setting) error {
	if c.LogLevel.UnmarshalText([]byte(s.value)) != nil {
		return s.errorf("want debug, info, warn or error")
	}
	return nil
}

func addrVar(p *string) func(setting) error {
	return func(s setting) error {
		if _, _, err := net.SplitHostPort(s.value); err != nil {
			return s.errorf("want HOST:PORT or :PORT (%v)", err)
		}
		*p = s.value
		return nil
	}
}

func stringVar(p *string) func(setting) error {
	return func(s setting) error {
		*p = strings.TrimSpace(s.value)
		return nil
	}
}

func floatVar(p *float64) func(setting) error {
	return func(s setting) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(s.value), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return s.errorf("want a number, at least 0")
		}
		*p = f
		return nil
	}
}

// durationVar accepts a Go duration ("1.5s", "500ms") or seconds.
func durationVar(p *time.Duration, zeroOK bool) func(setting) error {
	return func(s setting) error {
		v := strings.TrimSpace(s.value)
		d, err := time.ParseDuration(v)
		if secs, ferr := strconv.ParseFloat(v, 64); ferr == nil && math.Abs(secs) < math.MaxInt64/float64(time.Second) {
			d, err = time.Duration(secs*float64(time.Second)), nil
		}
		switch {
		case err != nil:
			return s.errorf("want a duration such as 500ms, 10s or 1m")
		case d < 0, d == 0 && !zeroOK:
			return s.errorf("want a positive duration")
		}
		*p = d
		return nil
	}
}

func intVar[T int | int64](p *T, least int) func(setting) error {
	return func(s setting) error {
		n, err := strconv.Atoi(strings.TrimSpace(s.value))
		switch {
		case err != nil:
			return s.errorf("want a whole number")
		case n < least:
			return s.errorf("want at least %d", least)
		case n > math.MaxInt32:
			return s.errorf("want at most %d", math.MaxInt32)
		}
		*p = T(n)
		return nil
	}
}

// sizeVar accepts a number of bytes with an optional unit (B, KiB, MiB,
// GiB, as in GOMEMLIMIT); 0 and "off" are zero.
func sizeVar(p *int64) func(setting) error {
	return func(s setting) error {
		v := strings.TrimSpace(s.value)
		if strings.EqualFold(v, "off") {
			*p = 0
			return nil
		}
		num, unit := v, int64(1)
		for _, u := range []struct {
			suffix string
			size   int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
			if n, ok := strings.CutSuffix(v, u.suffix); ok {
				num, unit = strings.TrimSpace(n), u.size
				break
			}
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/unit {
			return s.errorf("want a size such as 64MiB or 1GiB, or off")
		}
		*p = n * unit
		return nil
	}
}
