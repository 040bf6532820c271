package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/tlsfiles"
	"github.com/eventproc/eventproc/internal/testcerts"
)

// TestClientVerifies checks that ClientConfig, which verifies the server
// itself, accepts what crypto/tls would and refuses the rest.
func TestClientVerifies(t *testing.T) {
	ctx := testContext(t)
	ca, otherCA := testcerts.NewCA(t, "ca"), testcerts.NewCA(t, "other")
	client, err := tlsfiles.New(tlsfiles.Options{CAFile: testcerts.WriteFile(t, t.TempDir(), "ca.crt", ca.PEM)})
	if err != nil {
		t.Fatal(err)
	}
	good := ca.Localhost(t, "good")
	for _, tc := range []struct {
		name       string
		leaf       *testcerts.Leaf
		host       string // dialled
		serverName string // ClientConfig's
		want       string // in the error; "" for success
	}{
		{"IP address with its name given", good, "127.0.0.1", "localhost", ""},
		{"IP address given as the name", good, "127.0.0.1", "127.0.0.1", ""},
		{"host name from SNI", good, "localhost", "", ""},
		{"IP address without a name", good, "127.0.0.1", "", "no server name"},
		{"wrong name", good, "127.0.0.1", "other.example", "not other.example"},
		{"unknown CA", otherCA.Localhost(t, "stranger"), "127.0.0.1", "localhost", "unknown authority"},
		{"expired", ca.Issue(t, testcerts.Options{DNS: []string{"localhost"}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}),
			"127.0.0.1", "localhost", "expired"},
		{"client certificate as server", ca.Issue(t, testcerts.Options{DNS: []string{"localhost"}, ClientOnly: true}), "127.0.0.1", "localhost", "key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveHTTPS(t, &tls.Config{Certificates: []tls.Certificate{tc.leaf.TLS(t)}})
			_, port, _ := net.SplitHostPort(addr)
			tr := &http.Transport{TLSClientConfig: client.ClientConfig(tc.serverName), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			body, _, err := get(ctx, tr, net.JoinHostPort(tc.host, port))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("GET: %v, want success", err)
			case tc.want == "" && !strings.HasPrefix(body, "ok"):
				t.Fatalf("GET: body %q", body)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("GET: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestGRPCMutualTLS serves gRPC with client certificates required, and
// reloads the CAs on both sides.
func TestGRPCMutualTLS(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	serverCA, clientCA, newClientCA, newServerCA := testcerts.NewCA(t, "server CA"), testcerts.NewCA(t, "client CA"),
		testcerts.NewCA(t, "new client CA"), testcerts.NewCA(t, "new server CA")
	serverCert, serverKey := serverCA.Localhost(t, "server").Files(t, dir, "server")
	clientCAs := testcerts.WriteFile(t, dir, "client-ca.crt", clientCA.PEM)
	server, err := tlsfiles.New(tlsfiles.Options{CertFile: serverCert, KeyFile: serverKey, CAFile: clientCAs, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	ids := &identities{}
	addr := serveGRPC(t, grpc.Creds(credentials.NewTLS(server.ServerConfig("h2"))), grpc.UnaryInterceptor(ids.record))
	serverCAs := testcerts.WriteFile(t, dir, "server-ca.crt", serverCA.PEM)
	newClient := func(leaf *testcerts.Leaf, name string) *tlsfiles.Files {
		opts := tlsfiles.Options{CAFile: serverCAs, Logger: discard}
		if leaf != nil {
			opts.CertFile, opts.KeyFile = leaf.Files(t, dir, name)
		}
		f, err := tlsfiles.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	sink := newClient(clientCA.Issue(t, testcerts.Options{CommonName: "sink", URIs: []string{"spiffe://test/sink"}, ClientOnly: true}), "sink")
	if err := check(ctx, t, addr, sink.ClientCredentials("")); err != nil {
		t.Fatalf("health check with a good client certificate: %v", err)
	}
	if got := ids.last(); got != "spiffe://test/sink" {
		t.Errorf("the server saw the peer identity %q, want spiffe://test/sink", got)
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		want  string // in the error, when the client can know it
	}{
		// In TLS 1.3 the server checks the client's certificate after the
		// client's handshake is done, so the client may see its alert
		// ("certificate required", "unknown certificate authority") or
		// only the connection closing.
		{"no client certificate", newClient(nil, "").ClientCredentials(""), ""},
		{"client certificate of another CA", newClient(newClientCA.Issue(t, testcerts.Options{CommonName: "x"}), "x").ClientCredentials(""), ""},
		{"server name not in the certificate", sink.ClientCredentials("elsewhere.example"), "not elsewhere.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := ids.count()
			err := check(ctx, t, addr, tc.creds)
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("health check: %v, want UNAVAILABLE with %q", err, tc.want)
			}
			if n := ids.count(); n != calls {
				t.Fatalf("the server served %d calls, want none", n-calls)
			}
		})
	}

	// The server accepts the new client CA once its file lists it.
	late := newClient(newClientCA.Issue(t, testcerts.Options{CommonName: "late-sink"}), "late")
	testcerts.WriteFile(t, dir, "client-ca.crt", append(append([]byte(nil), clientCA.PEM...), newClientCA.PEM...))
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, t, addr, late.ClientCredentials("")); err != nil {
		t.Fatalf("client of the new CA after the server reloaded its CAs: %v", err)
	}
	if got := ids.last(); got != "late-sink" {
		t.Errorf("peer identity %q, want the CN late-sink", got)
	}

	// The server moves to a certificate of a new CA: refused by the client
	// until the client's CA file lists that CA.
	newCert, newKey := newServerCA.Localhost(t, "server").Files(t, dir, "server")
	if newCert != serverCert || newKey != serverKey {
		t.Fatal("the server's files moved")
	}
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, t, addr, sink.ClientCredentials("")); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("health check against a server of an unknown CA: %v, want unknown authority", err)
	}
	testcerts.WriteFile(t, dir, "server-ca.crt", append(append([]byte(nil), serverCA.PEM...), newServerCA.PEM...))
	if err := sink.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, t, addr, sink.ClientCredentials("")); err != nil {
		t.Fatalf("after the client reloaded its CAs: %v", err)
	}
}

var discard = slog.New(slog.DiscardHandler)

// identities records the peer identity of each call.
type identities struct {
	mu  sync.Mutex
	ids []string
}

func (i *identities) record(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			id = tlsfiles.PeerIdentity(&info.State)
		}
	}
	i.mu.Lock()
	i.ids = append(i.ids, id)
	i.mu.Unlock()
	return handler(ctx, req)
}

func (i *identities) count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.ids)
}

func (i *identities) last() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.ids) == 0 {
		return ""
	}
	return i.ids[len(i.ids)-1]
}

// serveGRPC serves the health service on loopback until the test ends.
func serveGRPC(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// check makes a health check on a new connection to addr.
func check(ctx context.Context, t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}
