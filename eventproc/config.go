package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
)

// Config is the sink binary's configuration, built once from flags and
// environment variables by [parseConfig] and valid from then on.
type Config struct {
	// HTTPAddr and GRPCAddr are the listen addresses of the two APIs.
	HTTPAddr, GRPCAddr string
	// DebugAddr, when set, serves Go's profiler and runtime variables.
	DebugAddr string
	// Routes is the routing table, in the order given.
	Routes []sink.Route
	// Timeout is the deadline of a request whose client set none.
	Timeout time.Duration
	// MaxBodyBytes bounds an HTTP request body and a gRPC request message.
	MaxBodyBytes int64
	// StreamsPerTarget and MaxPending size the processor stream pools; zero
	// picks the sink's default.
	StreamsPerTarget, MaxPending int
	// MaxStreamsPerConn bounds the concurrent gRPC calls of one client
	// connection (HTTP/2 MAX_CONCURRENT_STREAMS): further calls wait in the
	// client until one ends.
	MaxStreamsPerConn int
	// LogFormat is "text" or "json"; LogLevel the least severe level logged.
	LogFormat string
	LogLevel  slog.Level
	// ShutdownGrace is how long in-flight requests may take to finish once
	// shutdown starts, before connections are closed.
	ShutdownGrace time.Duration
	// Keepalive and KeepaliveTimeout set the pings on processor
	// connections: how often, and how long one may go unanswered before
	// the connection counts as dead.
	Keepalive, KeepaliveTimeout time.Duration
	// History is how many published events of each type the hub keeps for
	// subscribers resuming after a Last-Event-ID; zero keeps none.
	History int
	// SubscriberBuffer is how many events wait for each subscriber before
	// SlowSubscriber applies; MaxSubscribers caps the live subscriptions.
	SubscriberBuffer, MaxSubscribers int
	// SlowSubscriber is what happens to a subscriber whose buffer is full.
	SlowSubscriber pubsub.Policy
	// SSEHeartbeat is the interval of comment lines on idle Server-Sent
	// Events streams, which keep proxies from closing them.
	SSEHeartbeat time.Duration
	// MemoryBudget is the Go runtime's soft memory limit, in bytes, set
	// once at start; zero leaves the runtime's (GOMEMLIMIT, or none).
	MemoryBudget int64
}

// sinkConfig returns the library configuration for c.
func (c Config) sinkConfig(log *slog.Logger) sink.Config {
	return sink.Config{
		Routes:              c.Routes,
		Timeout:             c.Timeout,
		StreamsPerTarget:    c.StreamsPerTarget,
		MaxPendingPerStream: c.MaxPending,
		Keepalive:           c.Keepalive,
		KeepaliveTimeout:    c.KeepaliveTimeout,
		PubSub: pubsub.Config{
			HistorySize:    c.History,
			DisableHistory: c.History == 0,
			BufferSize:     c.SubscriberBuffer,
			Policy:         c.SlowSubscriber,
			MaxSubscribers: c.MaxSubscribers,
		},
		Logger: log,
	}
}

// option describes one setting: its flag, its environment variable and its
// default.
type option struct {
	name  string // flag name, without dashes
	arg   string // what the value looks like, for the usage text
	env   string
	def   string
	multi bool // repeatable flag; the variable holds a list
	usage string
}

// options lists every setting, in the order the usage text shows them.
func options() []option {
	return []option{
		{name: "http-addr", arg: "ADDR", env: "EVENTPROC_HTTP_ADDR", def: ":8080",
			usage: "listen address of the HTTP/JSON API"},
		{name: "grpc-addr", arg: "ADDR", env: "EVENTPROC_GRPC_ADDR", def: ":8081",
			usage: "listen address of the gRPC API"},
		{name: "debug-addr", arg: "ADDR", env: "EVENTPROC_DEBUG_ADDR",
			usage: "listen address of Go's profiler (/debug/pprof/) and runtime variables (/debug/vars); off when empty; " +
				"bind it where only operators can reach it"},
		{name: "route", arg: "TYPE=TARGET[,TARGET...]", env: "EVENTPROC_ROUTES", multi: true,
			usage: "send events of TYPE (e.g. hello or TYPE_HELLO) to these processors (host:port or dns:///name:port); " +
				"repeatable, at least one; the variable separates routes with ';' or spaces"},
		{name: "broadcast", arg: "TYPE", env: "EVENTPROC_BROADCAST", multi: true,
			usage: "make TYPE's route a broadcast route (every processor gets each event; HTTP 202); repeatable; " +
				"the variable separates types with ',', ';' or spaces"},
		{name: "timeout", arg: "DURATION", env: "EVENTPROC_TIMEOUT", def: "10s",
			usage: "deadline of a request whose client sets none (Grpc-Timeout or Request-Timeout header, gRPC deadline)"},
		{name: "max-body-bytes", arg: "N", env: "EVENTPROC_MAX_BODY_BYTES", def: "1048576",
			usage: "largest HTTP request body (413 beyond) and gRPC request message (RESOURCE_EXHAUSTED beyond)"},
		{name: "streams-per-target", arg: "N", env: "EVENTPROC_STREAMS_PER_TARGET", def: "0",
			usage: "Process streams kept open to each processor target; 0 means GOMAXPROCS, at least 2"},
		{name: "max-pending", arg: "N", env: "EVENTPROC_MAX_PENDING", def: "0",
			usage: fmt.Sprintf("requests in flight per processor stream before the sink answers 429; 0 means %d",
				sink.DefaultMaxPendingPerStream)},
		{name: "max-streams-per-conn", arg: "N", env: "EVENTPROC_MAX_STREAMS_PER_CONN", def: strconv.Itoa(defaultMaxStreamsPerConn),
			usage: "concurrent gRPC calls (unary or streaming) per client connection; more wait in the client until " +
				"one ends (HTTP/2 MAX_CONCURRENT_STREAMS), so one connection cannot hold unbounded goroutines"},
		{name: "keepalive", arg: "DURATION", env: "EVENTPROC_KEEPALIVE", def: sink.DefaultKeepalive.String(),
			usage: "interval of pings on processor connections, to notice a processor that vanished without closing " +
				"them; processors must allow pings this often (the processor SDK's Serve allows every 1s)"},
		{name: "keepalive-timeout", arg: "DURATION", env: "EVENTPROC_KEEPALIVE_TIMEOUT", def: sink.DefaultKeepaliveTimeout.String(),
			usage: "how long a ping may go unanswered before the processor connection counts as dead"},
		{name: "history", arg: "N", env: "EVENTPROC_HISTORY", def: strconv.Itoa(pubsub.DefaultHistorySize),
			usage: "published events of each type kept so that a subscriber can resume after its Last-Event-ID; " +
				"0 keeps none"},
		{name: "subscriber-buffer", arg: "N", env: "EVENTPROC_SUBSCRIBER_BUFFER", def: strconv.Itoa(pubsub.DefaultBufferSize),
			usage: "published events waiting for one subscriber before --slow-subscriber applies"},
		{name: "slow-subscriber", arg: "drop|disconnect", env: "EVENTPROC_SLOW_SUBSCRIBER", def: "drop",
			usage: "when a subscriber's buffer is full: drop its oldest event (the next one it gets reports the " +
				"number missed) or disconnect it (it can resume from its Last-Event-ID)"},
		{name: "max-subscribers", arg: "N", env: "EVENTPROC_MAX_SUBSCRIBERS", def: strconv.Itoa(pubsub.DefaultMaxSubscribers),
			usage: "live subscriptions (gRPC and HTTP) before the sink answers 429 / RESOURCE_EXHAUSTED"},
		{name: "sse-heartbeat", arg: "DURATION", env: "EVENTPROC_SSE_HEARTBEAT", def: "15s",
			usage: "interval of heartbeat comments on Server-Sent Events streams, which keep proxies from " +
				"closing idle ones"},
		{name: "memory-budget", arg: "SIZE", env: "EVENTPROC_MEMORY_BUDGET", def: defaultMemoryBudget,
			usage: "the Go runtime's soft memory limit, set once at start (e.g. 56MiB or 1GiB): the garbage collector " +
				"works harder as the sink nears it, and the sink goes beyond it when what it holds live needs that; " +
				"0 or off: no limit; when neither the flag nor its variable is set, GOMEMLIMIT applies if set; " +
				"GOGC applies as usual"},
		{name: "log-format", arg: "text|json", env: "EVENTPROC_LOG_FORMAT", def: "text",
			usage: "log format (logs go to standard error)"},
		{name: "log-level", arg: "LEVEL", env: "EVENTPROC_LOG_LEVEL", def: "info",
			usage: "least severe level logged: debug, info, warn or error"},
		{name: "shutdown-grace", arg: "DURATION", env: "EVENTPROC_SHUTDOWN_GRACE", def: "10s",
			usage: "on SIGINT or SIGTERM, how long in-flight requests may take before connections are closed"},
	}
}

// printUsage writes the --help text.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: eventproc --route TYPE=TARGET[,TARGET...] [flags]

eventproc is the event sink. It serves the event.v1.SinkService API over gRPC
(with health checking and reflection) and over HTTP/JSON, and routes every
event by its type to the processors of that type's route.

Every flag can also be set by the environment variable shown after it; a flag
wins over its variable.

Flags:
`)
	for _, o := range options() {
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

HTTP API:
  POST /v1/events   the body is an event, e.g. {"type":"TYPE_HELLO","payload":"hi"};
                    200 with the reply event, 204 when consumed, 202 when a
                    broadcast route accepted it; errors are JSON
                    {"code":<gRPC code>,"message":"...","details":[]}
  GET  /v1/events:subscribe?types=TYPE_HELLO&types=goodbye[&last_event_id=N]
                    stream the events processors publish: newline-delimited
                    JSON {"result":{"event":{...},"sequence":"N"}}, or
                    Server-Sent Events (id: N, event: TYPE_HELLO, data: the
                    event) with Accept: text/event-stream; Last-Event-ID
                    resumes from the --history
  GET  /v1/types    the event types, and which have a route
  GET  /            the browser console: send events, watch published ones
  GET  /healthz     200 while the process runs
  GET  /readyz      200 when every route has a live processor, else 503
  GET  /metrics     Prometheus metrics
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

// setting is one value as the user gave it, with where it came from, so that
// an error names the flag or variable to fix.
type setting struct {
	source string // "--timeout" or "EVENTPROC_TIMEOUT"
	value  string
}

func (s setting) errorf(format string, args ...any) error {
	return fmt.Errorf("%s %q: %s", s.source, s.value, fmt.Sprintf(format, args...))
}

// values collects a flag's occurrences.
type values struct {
	multi bool
	set   []string
}

func (v *values) String() string { return strings.Join(v.set, " ") }

func (v *values) Set(s string) error {
	if v.multi {
		v.set = append(v.set, s)
	} else {
		v.set = []string{s}
	}
	return nil
}

// parseConfig builds and validates the configuration from command-line
// arguments and environment variables. It returns [flag.ErrHelp] when the
// user asked for help.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("eventproc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	opts := options()
	given := make(map[string]*values, len(opts))
	for _, o := range opts {
		v := &values{multi: o.multi}
		given[o.name] = v
		fs.Var(v, o.name, o.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%v (see --help)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}

	// settings returns what the user gave for an option: the flag's values,
	// else the variable's, else the default.
	byName := make(map[string]option, len(opts))
	for _, o := range opts {
		byName[o.name] = o
	}
	settings := func(name string) []setting {
		o := byName[name]
		var out []setting
		if v := given[name]; len(v.set) > 0 {
			for _, s := range v.set {
				out = append(out, setting{"--" + name, s})
			}
			return out
		}
		if env := strings.TrimSpace(getenv(o.env)); env != "" {
			if !o.multi {
				return []setting{{o.env, env}}
			}
			for _, s := range splitList(env, name == "broadcast") {
				out = append(out, setting{o.env, s})
			}
			return out
		}
		if o.def != "" {
			return []setting{{"--" + name, o.def}}
		}
		return nil
	}
	one := func(name string) setting { return settings(name)[0] }

	var c Config
	var err error
	if c.HTTPAddr, err = parseAddr(one("http-addr")); err != nil {
		return c, err
	}
	if c.GRPCAddr, err = parseAddr(one("grpc-addr")); err != nil {
		return c, err
	}
	if s := settings("debug-addr"); len(s) > 0 {
		if c.DebugAddr, err = parseAddr(s[0]); err != nil {
			return c, err
		}
	}
	if c.Routes, err = parseRoutes(settings("route"), settings("broadcast")); err != nil {
		return c, err
	}
	if c.Timeout, err = parseDuration(one("timeout"), false); err != nil {
		return c, err
	}
	if c.ShutdownGrace, err = parseDuration(one("shutdown-grace"), true); err != nil {
		return c, err
	}
	if c.Keepalive, err = parseDuration(one("keepalive"), false); err != nil {
		return c, err
	}
	if c.KeepaliveTimeout, err = parseDuration(one("keepalive-timeout"), false); err != nil {
		return c, err
	}
	maxBody, err := parseInt(one("max-body-bytes"), 1)
	if err != nil {
		return c, err
	}
	c.MaxBodyBytes = int64(maxBody)
	if c.StreamsPerTarget, err = parseInt(one("streams-per-target"), 0); err != nil {
		return c, err
	}
	if c.MaxPending, err = parseInt(one("max-pending"), 0); err != nil {
		return c, err
	}
	if c.MaxStreamsPerConn, err = parseInt(one("max-streams-per-conn"), 1); err != nil {
		return c, err
	}
	if c.History, err = parseInt(one("history"), 0); err != nil {
		return c, err
	}
	if c.SubscriberBuffer, err = parseInt(one("subscriber-buffer"), 1); err != nil {
		return c, err
	}
	if c.MaxSubscribers, err = parseInt(one("max-subscribers"), 1); err != nil {
		return c, err
	}
	switch s := one("slow-subscriber"); strings.ToLower(strings.TrimSpace(s.value)) {
	case "drop", "drop-oldest":
		c.SlowSubscriber = pubsub.DropOldest
	case "disconnect":
		c.SlowSubscriber = pubsub.Disconnect
	default:
		return c, s.errorf("want drop or disconnect")
	}
	if c.SSEHeartbeat, err = parseDuration(one("sse-heartbeat"), false); err != nil {
		return c, err
	}
	if c.MemoryBudget, err = parseSize(one("memory-budget")); err != nil {
		return c, err
	}
	if given["memory-budget"].set == nil && strings.TrimSpace(getenv("EVENTPROC_MEMORY_BUDGET")) == "" &&
		strings.TrimSpace(getenv("GOMEMLIMIT")) != "" {
		c.MemoryBudget = 0 // the runtime applies GOMEMLIMIT
	}
	switch s := one("log-format"); strings.ToLower(s.value) {
	case "text", "json":
		c.LogFormat = strings.ToLower(s.value)
	default:
		return c, s.errorf("want text or json")
	}
	if s := one("log-level"); c.LogLevel.UnmarshalText([]byte(s.value)) != nil {
		return c, s.errorf("want debug, info, warn or error")
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

// withoutSentinel drops the library's "invalid sink config: " prefix from an
// error message; the context already says the configuration is at fault.
func withoutSentinel(err error) string {
	return strings.Replace(err.Error(), sink.ErrInvalidConfig.Error()+": ", "", 1)
}

func parseAddr(s setting) (string, error) {
	if _, _, err := net.SplitHostPort(s.value); err != nil {
		return "", s.errorf("want HOST:PORT or :PORT (%v)", err)
	}
	return s.value, nil
}

// parseRoutes parses --route and --broadcast values into the routing table.
func parseRoutes(routes, broadcast []setting) ([]sink.Route, error) {
	if len(routes) == 0 {
		return nil, errors.New("no routes: give at least one --route TYPE=TARGET[,TARGET...] (or set EVENTPROC_ROUTES)")
	}
	out := make([]sink.Route, 0, len(routes))
	index := make(map[string]int, len(routes)) // type name → position in out
	for _, s := range routes {
		name, _, ok := strings.Cut(s.value, "=")
		if !ok {
			return nil, s.errorf("want TYPE=TARGET[,TARGET...]")
		}
		if _, err := sink.ParseType(name); err != nil {
			return nil, s.errorf("%s", withoutSentinel(err))
		}
		r, err := sink.ParseRoute(s.value)
		if err != nil {
			// ParseRoute names the route itself; keep only the reason.
			msg := strings.TrimPrefix(withoutSentinel(err), fmt.Sprintf("route %q: ", s.value))
			return nil, s.errorf("%s", msg)
		}
		t := r.Type.String()
		if _, dup := index[t]; dup {
			return nil, s.errorf("second route for %s: list all its targets in one route (TYPE=A,B)", t)
		}
		index[t] = len(out)
		out = append(out, r)
	}
	for _, s := range broadcast {
		t, err := sink.ParseType(s.value)
		if err != nil {
			return nil, s.errorf("%s", withoutSentinel(err))
		}
		i, ok := index[t.String()]
		if !ok {
			return nil, s.errorf("no --route for %s", t)
		}
		out[i].Broadcast = true
	}
	return out, nil
}

// parseDuration accepts a Go duration ("1.5s", "500ms") or a number of
// seconds.
func parseDuration(s setting, zeroOK bool) (time.Duration, error) {
	d, err := parseTimeout(s.value)
	switch {
	case err != nil:
		return 0, s.errorf("want a duration such as 500ms, 10s or 1m")
	case d < 0, d == 0 && !zeroOK:
		return 0, s.errorf("want a positive duration")
	}
	return d, nil
}

// parseTimeout parses a Go duration or a plain number of seconds.
func parseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("duration %q out of range", v)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// parseSize parses a number of bytes with an optional unit (B, KiB, MiB,
// GiB, as in GOMEMLIMIT); 0 and "off" are zero.
func parseSize(s setting) (int64, error) {
	v := strings.TrimSpace(s.value)
	if strings.EqualFold(v, "off") {
		return 0, nil
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
		return 0, s.errorf("want a size such as 56MiB or 1GiB, or off")
	}
	return n * unit, nil
}

func parseInt(s setting, least int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s.value))
	switch {
	case err != nil:
		return 0, s.errorf("want a whole number")
	case n < least:
		return 0, s.errorf("want at least %d", least)
	case n > math.MaxInt32:
		return 0, s.errorf("want at most %d", math.MaxInt32)
	}
	return n, nil
}

// defaultMemoryBudget is --memory-budget's default (docs/benchmarks.md has
// the sink's memory with 1,000 HTTP clients).
const defaultMemoryBudget = "48MiB"
