package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/tlsfiles"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/testcerts"
)

func TestTLSBadConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	cert, key := ca.Localhost(t, "sink").Files(t, dir, "sink")
	garbage := testcerts.WriteFile(t, dir, "garbage.pem", []byte("not PEM"))
	const route = "hello=localhost:9090"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", key}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-client-ca", cert}, "--tls-client-ca needs --tls-cert"},
		{[]string{"--processor-tls-cert", cert}, "--processor-tls-cert and --processor-tls-key go together"},
		{[]string{"--processor-tls-server-name", "procs"}, "--processor-tls-server-name needs --processor-tls-ca or --processor-tls-cert"},
	} {
		args := append([]string{"--route", route}, tc.args...)
		if _, err := parseConfig(args, noEnv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want %q", args, err, tc.want)
		}
	}
	// Files that do not load stop the program before it listens.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", garbage, "--tls-key", key}, "--tls-cert/--tls-key/--tls-client-ca: tlsfiles: certificate"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", garbage}, "no PEM certificate"},
		{[]string{"--processor-tls-ca", dir + "/missing.pem"}, "--processor-tls-*: tlsfiles: open"},
	} {
		args := append([]string{"--route", route, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, tc.args...)
		if err := run(t.Context(), args, noEnv, nil, discardWriter{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want %q", args, err, tc.want)
		}
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// tlsWorld is a set of CAs and certificates for a sink, its clients and
// its processors, as files.
type tlsWorld struct {
	dir                                      string
	sinkCA, clientCA, procCA, sinkClientCA   *testcerts.CA
	sinkCert, sinkKey, sinkCAFile            string // the sink's ports, and clients' trust in them
	clientCAFile                             string // the sink's trust in its clients
	client                                   tls.Certificate
	procCert, procKey, procCAFile            string // a processor, and the sink's trust in processors
	sinkClientCert, sinkClientKey, sinkCAOfP string // the sink's certificate for processors, and their trust in it
}

func newTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	w := &tlsWorld{dir: t.TempDir()}
	w.sinkCA, w.clientCA, w.procCA, w.sinkClientCA = testcerts.NewCA(t, "sink CA"), testcerts.NewCA(t, "client CA"),
		testcerts.NewCA(t, "processor CA"), testcerts.NewCA(t, "sink client CA")
	w.sinkCert, w.sinkKey = w.sinkCA.Localhost(t, "sink").Files(t, w.dir, "sink")
	w.sinkCAFile = testcerts.WriteFile(t, w.dir, "sink-ca.crt", w.sinkCA.PEM)
	w.clientCAFile = testcerts.WriteFile(t, w.dir, "client-ca.crt", w.clientCA.PEM)
	w.client = w.clientCA.Issue(t, testcerts.Options{CommonName: "app", URIs: []string{"spiffe://test/app"}, ClientOnly: true}).TLS(t)
	w.procCert, w.procKey = w.procCA.Localhost(t, "proc").Files(t, w.dir, "proc")
	w.procCAFile = testcerts.WriteFile(t, w.dir, "proc-ca.crt", w.procCA.PEM)
	w.sinkClientCert, w.sinkClientKey = w.sinkClientCA.Issue(t, testcerts.Options{CommonName: "sink", ClientOnly: true}).Files(t, w.dir, "sink-client")
	w.sinkCAOfP = testcerts.WriteFile(t, w.dir, "sink-client-ca.crt", w.sinkClientCA.PEM)
	return w
}

// startTLSProcessor serves an echo processor with the SDK over TLS with
// the certificate and client CA files given, until the test ends.
func startTLSProcessor(t *testing.T, cert, key, clientCA string) string {
	t.Helper()
	files, err := tlsfiles.New(tlsfiles.Options{CertFile: cert, KeyFile: key, CAFile: clientCA, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := processor.NewServer(processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		return ev, nil
	}), processor.Options{TLS: files.ServerConfig("h2"), Logger: discardLogger(), ShutdownGrace: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor Serve = %v", err)
		}
	})
	return lis.Addr().String()
}

// TestTLS serves both ports over mutual TLS and dials processors over
// mutual TLS: HTTP/2 and HTTP/1.1 clients and a gRPC client with a good
// certificate get replies, clients without one are refused, a processor
// whose certificate does not verify is never used and /readyz says why.
func TestTLS(t *testing.T) {
	ctx := testContext(t)
	w := newTLSWorld(t)
	good := startTLSProcessor(t, w.procCert, w.procKey, w.sinkCAOfP)
	strangerCert, strangerKey := testcerts.NewCA(t, "stranger").Localhost(t, "stranger").Files(t, w.dir, "stranger")
	stranger := startTLSProcessor(t, strangerCert, strangerKey, w.sinkCAOfP)
	s := startSink(t, "--route", "hello="+good, "--route", "goodbye="+stranger,
		"--tls-cert", w.sinkCert, "--tls-key", w.sinkKey, "--tls-client-ca", w.clientCAFile,
		"--processor-tls-ca", w.procCAFile, "--processor-tls-cert", w.sinkClientCert, "--processor-tls-key", w.sinkClientKey)
	httpAddr := s.log.addr("http")
	sinkCAs := w.sinkCA.Pool()
	newClient := func(certs []tls.Certificate, http1 bool) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sinkCAs, Certificates: certs}, ForceAttemptHTTP2: true}
		if http1 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	s.url, s.client = "https://"+httpAddr, newClient([]tls.Certificate{w.client}, false)
	s.waitRoute(ctx, "TYPE_HELLO", true)

	for _, tc := range []struct {
		name  string
		http1 bool
		proto string
	}{{"h2", false, "HTTP/2.0"}, {"http/1.1", true, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			s.client = newClient([]tls.Certificate{w.client}, tc.http1)
			resp, body := s.post(ctx, `{"type":"TYPE_HELLO","payload":"secret"}`)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"payload":"secret"`) {
				t.Fatalf("POST: %d %s, want 200 and the event echoed", resp.StatusCode, body)
			}
			if resp.Proto != tc.proto || resp.TLS == nil {
				t.Errorf("POST answered over %s (TLS %v), want %s over TLS", resp.Proto, resp.TLS != nil, tc.proto)
			}
		})
	}
	t.Run("HTTP without a client certificate", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+httpAddr+"/healthz", nil)
		resp, err := newClient(nil, false).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET /healthz without a client certificate: %s, want refused", resp.Status)
		}
	})
	t.Run("gRPC", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			certs []tls.Certificate
			want  codes.Code
		}{{"with a client certificate", []tls.Certificate{w.client}, codes.OK}, {"without", nil, codes.Unavailable}} {
			conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: sinkCAs, Certificates: tc.certs})))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := eventv1.NewSinkServiceClient(conn).Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("g")}})
			conn.Close()
			if status.Code(err) != tc.want || (err == nil && resp.GetEvent().GetPayload().GetStringValue() != "g") {
				t.Errorf("Send %s: %v, %v; want %v", tc.name, resp, err, tc.want)
			}
		}
	})
	t.Run("processor that does not verify", func(t *testing.T) {
		const want = `"last_error":"connection error: desc = \"transport: authentication handshake failed: ` +
			`tls: failed to verify certificate: tlsfiles: x509: certificate signed by unknown authority`
		for {
			_, body := s.get(ctx, "/readyz")
			if strings.Contains(string(body), want) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("/readyz never said why: %s", body)
			}
			time.Sleep(10 * time.Millisecond) // polling /readyz, within ctx's deadline
		}
		if s.routeReady(ctx, "TYPE_GOODBYE") {
			t.Error("/readyz: the route to the processor that does not verify is ready")
		}
		resp, body := s.post(ctx, `{"type":"TYPE_GOODBYE"}`)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("POST goodbye: %d %s, want 503", resp.StatusCode, body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		_, body := s.get(ctx, "/metrics")
		for _, want := range []string{
			fmt.Sprintf(`eventproc_tls_cert_expiry_timestamp_seconds{cert="server"} %g`, float64(mustLeaf(t, w.sinkCert, w.sinkKey).Leaf.NotAfter.Unix())),
			fmt.Sprintf(`eventproc_tls_cert_expiry_timestamp_seconds{cert="processor-client"} %g`, float64(mustLeaf(t, w.sinkClientCert, w.sinkClientKey).Leaf.NotAfter.Unix())),
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func mustLeaf(t *testing.T, cert, key string) *tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}
