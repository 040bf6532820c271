package natsembed

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults of the caps on the embedded server's JetStream.
const (
	DefaultMaxMemory = 32 << 20 // memory-backed streams; the sink's own are on disk
	DefaultMaxStore  = 1 << 30
)

// startTimeout bounds how long Start waits for the embedded server.
const startTimeout = 10 * time.Second

// Options configures [Start].
type Options struct {
	// URL, when set, is an external NATS deployment ("nats://host:4222",
	// several separated by commas) to connect to instead of embedding a
	// server; the other fields but Logger are then unused.
	URL string
	// DataDir holds the embedded server's store (a "jetstream" directory
	// inside it). Required when embedding: an empty StoreDir would make
	// nats-server share a directory under os.TempDir() with every process.
	DataDir string
	// Listen, when set, is a HOST:PORT where the embedded server also
	// accepts clients (other sinks, the nats CLI); port 0 picks a free one.
	// Empty: in-process connections only.
	Listen string
	// MaxMemory and MaxStore cap JetStream's memory and file storage, in
	// bytes; zero means the defaults. Without a cap JetStream may claim
	// 75 % of the machine's memory.
	MaxMemory, MaxStore int64
	// SyncInterval is how often the store is flushed to disk (fsync); zero
	// keeps nats-server's default of two minutes. SyncAlways flushes every
	// write before it is acknowledged.
	SyncInterval time.Duration
	SyncAlways   bool
	// CAFile, CertFile and KeyFile secure the connection to URL with TLS:
	// the CAs its servers' certificates chain to (the system's when empty
	// and the URL is tls://), and the client certificate to present, if the
	// servers ask for one. User and password, or a token, go in the URL
	// (nats://user:pass@host:4222).
	CAFile, CertFile, KeyFile string
	// CredsFile is a NATS credentials file (a user JWT and its NKey seed,
	// as nsc and Synadia Cloud make them) to authenticate to URL with. It
	// is read again at each (re)connection, so a rotated file takes
	// effect at the next one.
	CredsFile string
	// Name is the client connection's name, as servers report it.
	Name string
	// Logger receives the server's and the connection's logs.
	Logger *slog.Logger
}

// Store is a NATS connection with JetStream, and the embedded server behind
// it when there is one. Its methods are safe for concurrent use.
type Store struct {
	conn   *nats.Conn
	server *server.Server // nil for an external deployment
	closed chan struct{}  // closed when conn is
	log    *slog.Logger
}

// ErrNoDataDir is returned by Start when embedding without Options.DataDir.
var ErrNoDataDir = errors.New("natsembed: the embedded server needs a data directory")

// Start starts the embedded server and connects to it, or connects to
// Options.URL. It returns once the connection is up.
func Start(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st := &Store{closed: make(chan struct{}), log: opts.Logger}
	copts := []nats.Option{
		nats.Name(opts.Name),
		nats.ClosedHandler(func(*nats.Conn) { close(st.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				st.log.Warn("nats: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { st.log.Info("nats: reconnected", "url", nc.ConnectedUrlRedacted()) }),
		// Reconnect for ever: durable intake answers 503 meanwhile.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Publishes made while disconnected are not buffered: intake
		// answers 503 at once instead of holding the event in memory.
		nats.ReconnectBufSize(-1),
	}
	if opts.URL != "" {
		if opts.CAFile != "" {
			copts = append(copts, nats.RootCAs(opts.CAFile))
		}
		if opts.CertFile != "" || opts.KeyFile != "" {
			copts = append(copts, nats.ClientCert(opts.CertFile, opts.KeyFile))
		}
		if opts.CredsFile != "" {
			// Checked here: with retries on, a bad file would otherwise
			// only show as a connection that never comes up.
			if err := checkCreds(opts.CredsFile); err != nil {
				return nil, err
			}
			copts = append(copts, nats.UserCredentials(opts.CredsFile))
		}
		// Unreachable at start is like unreachable later: not ready, and
		// reconnecting in the background.
		nc, err := nats.Connect(opts.URL, append(copts, nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return nil, fmt.Errorf("nats: connecting to %s: %w", opts.URL, err)
		}
		st.conn = nc
		return st, nil
	}
	if opts.DataDir == "" {
		return nil, ErrNoDataDir
	}
	sopts := &server.Options{
		ServerName:         "eventproc",
		JetStream:          true,
		StoreDir:           opts.DataDir,
		JetStreamMaxMemory: or(opts.MaxMemory, DefaultMaxMemory),
		JetStreamMaxStore:  or(opts.MaxStore, DefaultMaxStore),
		SyncInterval:       opts.SyncInterval,
		SyncAlways:         opts.SyncAlways,
		NoSigs:             true, // else SIGTERM makes it os.Exit, skipping the sink's drain
		DontListen:         opts.Listen == "",
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen address %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("natsembed: listen address %q: bad port", opts.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
		}
		sopts.Host, sopts.Port = host, p
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	ns.SetLoggerV2(logger{opts.Logger.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(startTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server not ready within %v (store %s)", startTimeout, opts.DataDir)
	}
	nc, err := nats.Connect("", append(copts, nats.InProcessServer(ns))...)
	if err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: in-process connection: %w", err)
	}
	st.conn, st.server = nc, ns
	return st, nil
}

// checkCreds checks that file is a NATS credentials file: a user JWT and a
// user NKey seed.
func checkCreds(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("natsembed: credentials: %w", err)
	}
	if _, err := jwt.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("natsembed: credentials %s: no user JWT: %w", file, err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("natsembed: credentials %s: no user NKey seed: %w", file, err)
	}
	kp.Wipe()
	return nil
}

func or(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// Conn is the connection, for JetStream and readiness.
func (st *Store) Conn() *nats.Conn { return st.conn }

// Embedded reports whether the server runs in this process.
func (st *Store) Embedded() bool { return st.server != nil }

// ListenAddr is the address the embedded server accepts clients on, or nil.
func (st *Store) ListenAddr() net.Addr {
	if st.server == nil {
		return nil
	}
	return st.server.Addr()
}

// Close drains the connection (what was published or acked is flushed),
// then shuts the embedded server down and waits for it. It is idempotent.
func (st *Store) Close() {
	if err := st.conn.Drain(); err != nil {
		st.conn.Close()
	}
	<-st.closed
	if st.server != nil {
		st.server.Shutdown()
		st.server.WaitForShutdown()
	}
}

// logger adapts slog to nats-server's Logger. Notices (start-up details)
// are logged at debug.
type logger struct{ l *slog.Logger }

func (l logger) Noticef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l logger) Warnf(format string, v ...any)   { l.l.Warn(fmt.Sprintf(format, v...)) }
func (l logger) Fatalf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l logger) Errorf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l logger) Debugf(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l logger) Tracef(format string, v ...any)  {}
