package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/eventproc/eventproc/event/processor"
)

// envPrefix starts every flag's variable, as in PROC_MAX_CONCURRENCY.
const envPrefix = "PROC_"

// config is proc's configuration, from flags and environment.
type config struct {
	addr           string
	name           string // "" means hostname:port, known once listening
	consume        bool
	publish        bool
	maxConcurrency int
	shutdownGrace  time.Duration
	logFormat      string
	logLevel       slog.Level
	debugAddr      string // "" means no debug server
	// tlsCert and tlsKey make proc serve TLS; with tlsClientCA it requires
	// client certificates of those CAs.
	tlsCert, tlsKey, tlsClientCA string
}

// parseConfig reads getenv's variables, then args, which win over them. For
// -h it writes the usage to help and returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, help io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("proc", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage is printed on -h only
	fs.Usage = func() {}
	fs.StringVar(&cfg.addr, "addr", ":9090", "`address` to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&cfg.name, "name", "", "`name` put in every reply's metadata as processed_by=NAME (default HOSTNAME:PORT, the port listened on)")
	fs.BoolVar(&cfg.consume, "consume", false, "consume events without replying (metadata consume=false still asks for a reply)")
	fs.BoolVar(&cfg.publish, "publish", false, "also publish every received event to the connected sinks")
	fs.IntVar(&cfg.maxConcurrency, "max-concurrency", processor.DefaultMaxConcurrency, "maximum events handled at once")
	fs.DurationVar(&cfg.shutdownGrace, "shutdown-grace", processor.DefaultShutdownGrace, "time in-flight events get to finish on SIGINT/SIGTERM")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "minimum log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "`address` for Go's profiler (/debug/pprof/) and runtime variables (/debug/vars); off when empty; bind where only operators reach it")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate `file` to serve TLS with (with --tls-key); reloaded when it changes")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca", "", "PEM CA bundle `file`: require client certificates (the sink's) of these CAs; reloaded when it changes")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s (flag --%s): %w", v, name, f.Name, err)
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(help, fs)
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (see proc -h)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (see proc -h)", fs.Arg(0))
	}
	switch {
	case cfg.logFormat != "text" && cfg.logFormat != "json":
		return config{}, fmt.Errorf("invalid value %q for flag --log-format: want text or json", cfg.logFormat)
	case cfg.maxConcurrency < 1:
		return config{}, fmt.Errorf("invalid value %d for flag --max-concurrency: want at least 1", cfg.maxConcurrency)
	case cfg.shutdownGrace <= 0:
		return config{}, fmt.Errorf("invalid value %v for flag --shutdown-grace: want more than 0", cfg.shutdownGrace)
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return config{}, errors.New("--tls-cert and --tls-key go together: give both or neither")
	case cfg.tlsClientCA != "" && cfg.tlsCert == "":
		return config{}, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	return cfg, nil
}

// envName is the environment variable for flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// printUsage writes proc's help to w.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: proc [flags]

proc is the echo processor: it serves event.v1.ProcessorService and answers
every event with the same event. It prints "listening on HOST:PORT" on
stdout once it accepts connections, and logs on stderr. SIGINT or SIGTERM
stop it gracefully.

Event metadata changes the answer for that event:
  delay=DURATION   wait that long first (a Go duration such as 50ms), within
                   the event's deadline
  error=CODE       fail with that gRPC code (a name such as NOT_FOUND)
  consume=BOOL     consume without reply (true) or reply (false), whatever
                   --consume says

With --tls-cert and --tls-key proc serves TLS; with --tls-client-ca too,
it accepts only sinks that present a certificate of those CAs (mutual TLS).
The files are read again every 5s and a changed, valid set applies to new
connections.

Every reply carries metadata processed_by=NAME (--name), so that a client
of a sink with several replicas can tell which one answered.

Every flag can also be set with an environment variable: PROC_ and the flag
name in upper case with - as _ (PROC_ADDR, PROC_NAME, PROC_CONSUME,
PROC_PUBLISH, PROC_MAX_CONCURRENCY, PROC_SHUTDOWN_GRACE, PROC_LOG_FORMAT,
PROC_LOG_LEVEL, PROC_DEBUG_ADDR, PROC_TLS_CERT, PROC_TLS_KEY,
PROC_TLS_CLIENT_CA).
A flag given on the command line wins over its variable.

proc runs with GOGC=400 (fewer garbage collections for a few MiB more
memory) unless the GOGC environment variable is set.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// newLogger returns the logger cfg asks for, writing to w.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
