package natsembed

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/eventproc/eventproc/internal/testcerts"
)

// TestExternalTLS connects to an external NATS server that serves TLS and
// requires client certificates: with the CA and a client certificate the
// connection comes up; without the certificate it does not.
func TestExternalTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "nats CA")
	srvLeaf := ca.Issue(t, testcerts.Options{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	cliLeaf := ca.Issue(t, testcerts.Options{CommonName: "sink", ClientOnly: true})
	caFile := testcerts.WriteFile(t, dir, "ca.crt", ca.PEM)
	certFile, keyFile := cliLeaf.Files(t, dir, "sink")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvLeaf.TLS(t)}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		TLSVerify: true, TLSTimeout: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := "tls://127.0.0.1:" + strconv.Itoa(ns.Addr().(*net.TCPAddr).Port)

	st, err := Start(Options{URL: url, CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, st, "with the client certificate")
	st.Close()

	st, err = Start(Options{URL: url, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitRefused(t, st, "without a client certificate")
}

// waitConnected waits until st is connected to its external server.
func waitConnected(t *testing.T, st *Store, how string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !st.Conn().IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("not connected %s: %v", how, st.Conn().LastError())
		}
		time.Sleep(10 * time.Millisecond) // polling the connection's state
	}
}

// waitRefused waits for st's first failed attempt to connect and checks
// that it is not connected: refused, it keeps trying in the background
// and never connects, and one failed attempt is enough to tell.
func waitRefused(t *testing.T, st *Store, how string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st.Conn().LastError() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no error %s", how)
		}
		time.Sleep(10 * time.Millisecond) // polling the connection's state
	}
	if st.Conn().IsConnected() {
		t.Errorf("connected %s", how)
	}
}
