package sink

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/tlsfiles"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/testcerts"
)

// startTLSProcessor serves an echo processor (the SDK's Serve) over TLS
// with tlsFiles until the test ends, and returns its address.
func startTLSProcessor(t *testing.T, files *tlsfiles.Files) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := processor.NewServer(processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		return ev, nil
	}), processor.Options{TLS: files.ServerConfig("h2"), Logger: discard(), ShutdownGrace: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return lis.Addr().String()
}

// lastError polls s's status until its only target reports an error that
// satisfies ok, and returns it.
func lastError(t *testing.T, s *Sink, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts := s.Status()[0].Targets[0]
		if ok(ts.LastError) {
			return ts.LastError
		}
		if time.Now().After(deadline) {
			t.Fatalf("target status %+v: LastError never as expected", ts)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestProcessorTLS runs the sink and a processor over mutual TLS, and
// shows that a peer whose certificate does not verify is never used and
// that the sink's status says why.
func TestProcessorTLS(t *testing.T) {
	dir := t.TempDir()
	procCA, sinkCA, strangerCA := testcerts.NewCA(t, "processors"), testcerts.NewCA(t, "sinks"), testcerts.NewCA(t, "stranger")
	procCert, procKey := procCA.Localhost(t, "proc").Files(t, dir, "proc")
	procFiles, err := tlsfiles.New(tlsfiles.Options{CertFile: procCert, KeyFile: procKey,
		CAFile: testcerts.WriteFile(t, dir, "sinks.crt", sinkCA.PEM), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	addr := startTLSProcessor(t, procFiles)
	procCAFile := testcerts.WriteFile(t, dir, "processors.crt", procCA.PEM)
	sinkFiles := func(t *testing.T, leaf *testcerts.Leaf) *tlsfiles.Files {
		opts := tlsfiles.Options{CAFile: procCAFile, Logger: discard()}
		if leaf != nil {
			opts.CertFile, opts.KeyFile = leaf.Files(t, t.TempDir(), "sink")
		}
		f, err := tlsfiles.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cfg := func(f *tlsfiles.Files, serverName string, target ...string) Config {
		if target == nil {
			target = []string{addr}
		}
		return Config{
			Routes:               []Route{{Type: eventv1.Type_TYPE_HELLO, Targets: target}},
			StreamsPerTarget:     2,
			TransportCredentials: f.ClientCredentials(serverName),
			Logger:               discard(),
		}
	}
	goodSink := sinkFiles(t, sinkCA.Issue(t, testcerts.Options{CommonName: "sink", ClientOnly: true}))

	t.Run("mutual TLS", func(t *testing.T) {
		s := startSink(t, cfg(goodSink, ""))
		resp, err := send(s, t.Context(), hello("over TLS"))
		if err != nil || resp.GetEvent().GetPayload().GetStringValue() != "over TLS" {
			t.Fatalf("Send = %v, %v; want the event echoed", resp, err)
		}
		if ts := s.Status()[0].Targets[0]; ts.LastError != "" {
			t.Errorf("LastError = %q with live streams, want none", ts.LastError)
		}
	})
	refused := func(t *testing.T, s *Sink, want string) {
		t.Helper()
		got := lastError(t, s, func(e string) bool { return e != "" && strings.Contains(e, want) })
		t.Logf("LastError: %s", got)
		if s.Ready() {
			t.Fatal("Ready() = true, want false: the processor must not be used")
		}
		if _, err := send(s, t.Context(), hello("x")); status.Code(err) != codes.Unavailable {
			t.Fatalf("Send = %v, want UNAVAILABLE", err)
		}
	}
	t.Run("sink without a client certificate", func(t *testing.T) {
		// The processor refuses it; in TLS 1.3 the sink may learn only that
		// the connection closed, so any reason will do.
		refused(t, runSink(t, cfg(sinkFiles(t, nil), "")), "")
	})
	t.Run("sink certificate of another CA", func(t *testing.T) {
		refused(t, runSink(t, cfg(sinkFiles(t, strangerCA.Issue(t, testcerts.Options{CommonName: "intruder"})), "")), "")
	})
	t.Run("processor name not in its certificate", func(t *testing.T) {
		refused(t, runSink(t, cfg(goodSink, "procs.example")), "not procs.example")
	})
	t.Run("processor certificate of an unknown CA, then renewed", func(t *testing.T) {
		dir := t.TempDir()
		cert, key := strangerCA.Localhost(t, "fake-proc").Files(t, dir, "proc")
		files, err := tlsfiles.New(tlsfiles.Options{CertFile: cert, KeyFile: key, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		s := runSink(t, cfg(goodSink, "", startTLSProcessor(t, files)))
		refused(t, s, "certificate signed by unknown authority")
		procCA.Localhost(t, "renewed-proc").Files(t, dir, "proc")
		if err := files.Reload(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, s, s.Ready)
		if got := lastError(t, s, func(e string) bool { return e == "" }); got != "" {
			t.Fatalf("LastError = %q once live", got)
		}
	})
}
