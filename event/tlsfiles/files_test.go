package tlsfiles_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/tlsfiles"
	"github.com/eventproc/eventproc/internal/testcerts"
)

// testTimeout bounds every test's context.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// secret is a directory laid out as Kubernetes mounts a secret: each file
// is a symlink to ..data/<name>, and ..data a symlink to a directory of
// the current version, replaced atomically by swap.
type secret struct {
	t   *testing.T
	dir string
	n   int
}

func newSecret(t *testing.T, files map[string][]byte) *secret {
	t.Helper()
	s := &secret{t: t, dir: t.TempDir()}
	s.swap(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(s.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// swap writes files into a new version directory and points ..data at it
// with a rename, as the kubelet does.
func (s *secret) swap(files map[string][]byte) {
	s.t.Helper()
	s.n++
	version := fmt.Sprintf("..v%d", s.n)
	if err := os.Mkdir(filepath.Join(s.dir, version), 0o700); err != nil {
		s.t.Fatal(err)
	}
	for name, data := range files {
		testcerts.WriteFile(s.t, filepath.Join(s.dir, version), name, data)
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *secret) path(name string) string { return filepath.Join(s.dir, name) }

// logBuffer is a log destination safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds, failing the test at ctx's end.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never happened: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// run runs f's reload loop until the test ends.
func run(t *testing.T, f *tlsfiles.Files) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// serveHTTPS serves a handler that answers "ok" over TLS with cfg on
// loopback until the test ends, and returns its address.
func serveHTTPS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "ok ", tlsfiles.PeerIdentity(r.TLS))
		}),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0), // handshake failures are what some tests make
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(lis, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return lis.Addr().String()
}

// get sends GET / over tr and returns the body and the TLS state.
func get(ctx context.Context, tr *http.Transport, addr string) (string, *tls.ConnectionState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	return body.String(), resp.TLS, err
}

// TestRotation swaps a live HTTPS server's certificate as Kubernetes
// updates a secret: new connections get the new certificate, an open
// connection keeps working, and a bad new pair leaves the last good one.
func TestRotation(t *testing.T) {
	ctx := testContext(t)
	ca := testcerts.NewCA(t, "ca")
	first, second, third := ca.Localhost(t, "first"), ca.Localhost(t, "second"), ca.Localhost(t, "third")
	sec := newSecret(t, map[string][]byte{"tls.crt": first.CertPEM, "tls.key": first.KeyPEM})
	var logs logBuffer
	files, err := tlsfiles.New(tlsfiles.Options{
		CertFile: sec.path("tls.crt"), KeyFile: sec.path("tls.key"), Interval: 10 * time.Millisecond,
		Name: "server", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := files.NotAfter(), first.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	run(t, files)
	addr := serveHTTPS(t, files.ServerConfig("h2", "http/1.1"))
	servedTo := func(tr *http.Transport) string {
		t.Helper()
		_, st, err := get(ctx, tr, addr)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		return st.PeerCertificates[0].Subject.CommonName
	}
	newClient := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	}
	fresh := func() string { // a new connection's certificate
		tr := newClient()
		defer tr.CloseIdleConnections()
		return servedTo(tr)
	}
	old := newClient()
	defer old.CloseIdleConnections()
	if got := servedTo(old); got != "first" {
		t.Fatalf("served %q, want first", got)
	}

	sec.swap(map[string][]byte{"tls.crt": second.CertPEM, "tls.key": second.KeyPEM})
	eventually(ctx, t, "the second certificate served", func() bool { return fresh() == "second" })
	if got := servedTo(old); got != "first" {
		t.Errorf("the connection open before the swap now shows %q; want it kept, with the first certificate", got)
	}
	if got, want := files.NotAfter(), second.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the second certificate's %v", got, want)
	}
	if !strings.Contains(logs.String(), "reloaded certificate files") || !strings.Contains(logs.String(), "serial="+second.Cert.SerialNumber.String()) {
		t.Errorf("no reload logged with the new subject:\n%s", logs.String())
	}

	// A pair whose key does not match: logged, and the second stays.
	sec.swap(map[string][]byte{"tls.crt": third.CertPEM, "tls.key": first.KeyPEM})
	eventually(ctx, t, "the bad pair logged", func() bool { return strings.Contains(logs.String(), "do not load") })
	if got := fresh(); got != "second" {
		t.Errorf("after a bad pair, served %q, want second", got)
	}
	if err := files.Reload(); err != nil {
		t.Errorf("Reload of bytes already tried = %v, want nil (nothing new)", err)
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("the bad pair was logged %d times, want once:\n%s", n, logs.String())
	}
	// Unparsable, then good again.
	sec.swap(map[string][]byte{"tls.crt": []byte("not PEM"), "tls.key": third.KeyPEM})
	eventually(ctx, t, "the unparsable pair logged", func() bool { return strings.Count(logs.String(), "do not load") == 2 })
	sec.swap(map[string][]byte{"tls.crt": third.CertPEM, "tls.key": third.KeyPEM})
	eventually(ctx, t, "the third certificate served", func() bool { return fresh() == "third" })
}

func TestNew(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	leaf, other := ca.Localhost(t, "leaf"), ca.Localhost(t, "other")
	dir := t.TempDir()
	cert, key := leaf.Files(t, dir, "leaf")
	_, otherKey := other.Files(t, dir, "other")
	caFile := testcerts.WriteFile(t, dir, "ca.crt", ca.PEM)
	garbage := testcerts.WriteFile(t, dir, "garbage", []byte("-----BEGIN NOTHING-----"))
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name    string
		opts    tlsfiles.Options
		invalid bool   // errors.Is ErrInvalidOptions
		want    string // in the error; "" for success
	}{
		{"pair", tlsfiles.Options{CertFile: cert, KeyFile: key}, false, ""},
		{"pair and CA", tlsfiles.Options{CertFile: cert, KeyFile: key, CAFile: caFile}, false, ""},
		{"CA only", tlsfiles.Options{CAFile: caFile}, false, ""},
		{"nothing", tlsfiles.Options{}, true, "no certificate and no CA file"},
		{"cert without key", tlsfiles.Options{CertFile: cert}, true, "needs its key file"},
		{"key without cert", tlsfiles.Options{KeyFile: key}, true, "needs its key file"},
		{"negative interval", tlsfiles.Options{CAFile: caFile, Interval: -time.Second}, true, "negative interval"},
		{"key of another cert", tlsfiles.Options{CertFile: cert, KeyFile: otherKey}, false, "private key does not match public key"},
		{"missing file", tlsfiles.Options{CertFile: missing, KeyFile: key}, false, "no such file"},
		{"CA without certificates", tlsfiles.Options{CAFile: garbage}, false, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tlsfiles.New(tc.opts)
			if tc.want == "" {
				if err != nil || f == nil {
					t.Fatalf("New = %v, %v; want a Files", f, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, tlsfiles.ErrInvalidOptions) != tc.invalid {
				t.Fatalf("New = %v; want an error with %q (invalid options: %v)", err, tc.want, tc.invalid)
			}
		})
	}
}
