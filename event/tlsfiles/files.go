package tlsfiles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often [Files.Run] reads the files when
// Options.Interval is zero.
const DefaultInterval = 5 * time.Second

// ErrInvalidOptions is wrapped by the errors [New] returns for options
// that cannot work, as against files that do not load.
var ErrInvalidOptions = errors.New("tlsfiles: invalid options")

// Options say which files a [Files] reads.
type Options struct {
	// CertFile and KeyFile are a PEM certificate chain (leaf first) and its
	// PEM private key: both or neither.
	CertFile, KeyFile string
	// CAFile is a PEM bundle of CA certificates. For a server, it enables
	// client authentication: clients must present a certificate that
	// chains to one of them. For a client, the server's certificate must
	// chain to one of them; when empty, to the system's roots.
	CAFile string
	// Interval is how often Run reads the files; DefaultInterval when zero.
	Interval time.Duration
	// Name is added to every log record as "tls", to tell several Files
	// apart (e.g. "server", "processor-client").
	Name string
	// Logger receives reloads and failed reloads; slog.Default() when nil.
	Logger *slog.Logger
}

// Files is a certificate, its key and a CA bundle loaded from files, and
// reloaded by [Files.Run]. Its methods are safe for concurrent use.
type Files struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[loaded]

	mu      sync.Mutex // serializes reloads and guards the fields below
	seen    [3][]byte  // the bytes last read of cert, key and CA files
	lastErr string     // the last reload error logged
}

// loaded is one successfully loaded set of files.
type loaded struct {
	cert *tls.Certificate // nil without CertFile; Leaf is set
	cas  *x509.CertPool   // nil without CAFile
}

// New reads and loads the files opts names, and returns an error when
// they do not load. It starts nothing: call [Files.Run] to reload.
func New(opts Options) (*Files, error) {
	switch {
	case (opts.CertFile == "") != (opts.KeyFile == ""):
		return nil, fmt.Errorf("%w: a certificate file needs its key file, and a key file its certificate file", ErrInvalidOptions)
	case opts.CertFile == "" && opts.CAFile == "":
		return nil, fmt.Errorf("%w: no certificate and no CA file", ErrInvalidOptions)
	case opts.Interval < 0:
		return nil, fmt.Errorf("%w: negative interval %v", ErrInvalidOptions, opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	f := &Files{opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.Default()
	}
	if opts.Name != "" {
		f.log = f.log.With("tls", opts.Name)
	}
	raw, err := f.read()
	if err != nil {
		return nil, err
	}
	l, err := f.load(raw)
	if err != nil {
		return nil, err
	}
	f.seen = raw
	f.cur.Store(l)
	return f, nil
}

// Run reloads the files every Options.Interval until ctx ends, then
// returns nil. Call it once, in a goroutine of its own.
func (f *Files) Run(ctx context.Context) error {
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = f.Reload() // Reload logs
		}
	}
}

// Reload reads the files now and, when their bytes changed since the last
// read, loads them. A successful load is logged at info and used from the
// next handshake on; a failure is logged at warn (once for the same bytes
// or error) and returned, and the previous files stay in use.
func (f *Files) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := f.read()
	if err == nil && bytes.Equal(raw[0], f.seen[0]) && bytes.Equal(raw[1], f.seen[1]) && bytes.Equal(raw[2], f.seen[2]) {
		return nil // unchanged, whether it loaded last time or not
	}
	var l *loaded
	if err == nil {
		f.seen = raw // do not try (and log) the same bytes again
		l, err = f.load(raw)
	}
	if err != nil {
		if msg := err.Error(); msg != f.lastErr {
			f.lastErr = msg
			f.log.Warn("tls: keeping the previous certificate and CAs: the files changed but do not load", "err", err)
		}
		return err
	}
	f.lastErr = ""
	f.cur.Store(l)
	attrs := []any{"cert", f.opts.CertFile, "ca", f.opts.CAFile}
	if l.cert != nil {
		attrs = append(attrs, "identity", Identity(l.cert.Leaf), "subject", l.cert.Leaf.Subject.String(), "serial", l.cert.Leaf.SerialNumber.String(),
			"not_after", l.cert.Leaf.NotAfter)
	}
	f.log.Info("tls: reloaded certificate files", attrs...)
	return nil
}

// read returns the bytes of the cert, key and CA files (nil for those not
// configured).
func (f *Files) read() ([3][]byte, error) {
	var raw [3][]byte
	for i, name := range []string{f.opts.CertFile, f.opts.KeyFile, f.opts.CAFile} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(name) // follows symlinks, as a Kubernetes secret's
		if err != nil {
			return raw, fmt.Errorf("tlsfiles: %w", err)
		}
		raw[i] = b
	}
	return raw, nil
}

// load parses what read returned.
func (f *Files) load(raw [3][]byte) (*loaded, error) {
	var l loaded
	if f.opts.CertFile != "" {
		cert, err := tls.X509KeyPair(raw[0], raw[1])
		if err != nil {
			return nil, fmt.Errorf("tlsfiles: certificate %s with key %s: %w", f.opts.CertFile, f.opts.KeyFile, err)
		}
		l.cert = &cert // X509KeyPair sets Leaf
	}
	if f.opts.CAFile != "" {
		l.cas = x509.NewCertPool()
		if !l.cas.AppendCertsFromPEM(raw[2]) {
			return nil, fmt.Errorf("tlsfiles: CA file %s: no PEM certificate in it", f.opts.CAFile)
		}
	}
	return &l, nil
}

// NotAfter returns the end of the current certificate's validity, or the
// zero time when there is no certificate.
func (f *Files) NotAfter() time.Time {
	if c := f.cur.Load().cert; c != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}
