package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/eventproc/eventproc/internal/authtest"
	"github.com/eventproc/eventproc/internal/testcerts"
)

// secureFiles are what the secure scenarios run with: certificates for
// TLS on both of the sink's ports and mutual TLS to the processor, a JSON
// Web Key Set, and a token it verifies.
type secureFiles struct {
	caFile                        string
	sinkCert, sinkKey             string // the sink's ports
	sinkClientCert, sinkClientKey string // the sink, to the processor
	procCert, procKey             string
	jwks, issuer, audience, token string
	clientTLS                     *tls.Config
}

// panicT is the testcerts and authtest helpers' T for a program: a failure
// panics, and makeSecureFiles turns it into an error.
type panicT struct{}

func (panicT) Helper()                   {}
func (panicT) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
func (panicT) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (panicT) Cleanup(func())            {}

// makeSecureFiles writes the files to dir.
func makeSecureFiles(dir string) (sf *secureFiles, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("making certificates and keys: %v", r)
		}
	}()
	var t panicT
	day := time.Now().Add(24 * time.Hour)
	ca := testcerts.NewCA(t, "bench CA")
	local := testcerts.Options{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: day}
	sink := ca.Issue(t, local)
	proc := ca.Issue(t, local)
	client := ca.Issue(t, testcerts.Options{CommonName: "bench-client", ClientOnly: true, NotAfter: day})
	sf = &secureFiles{caFile: testcerts.WriteFile(t, dir, "ca.crt", ca.PEM), issuer: "https://bench.invalid", audience: "eventproc"}
	sf.sinkCert, sf.sinkKey = sink.Files(t, dir, "sink")
	sf.procCert, sf.procKey = proc.Files(t, dir, "proc")
	sf.sinkClientCert, sf.sinkClientKey = client.Files(t, dir, "sink-client")
	is := authtest.NewIssuer(t, sf.issuer, sf.audience)
	sf.jwks = filepath.Join(dir, "jwks.json")
	is.WriteFile(sf.jwks)
	sf.token = is.Token("k1", authtest.Claims{Subject: "bench", Scope: "send:*", ExpiresAt: day})
	sf.clientTLS = &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	return sf, nil
}

// startSecureSink is startSink with TLS on both hops and JWT
// authentication on.
func (e *env) startSecureSink() (*servers, error) {
	e.secureOnce.Do(func() {
		dir, err := os.MkdirTemp(e.bins.dir, "secure")
		if err == nil {
			e.secure, err = makeSecureFiles(dir)
		}
		e.secureErr = err
	})
	if e.secureErr != nil {
		return nil, e.secureErr
	}
	sf := e.secure
	p, got, err := startChild("proc", e.bins.proc, []string{"--addr", "127.0.0.1:0", "--shutdown-grace", "1s",
		"--tls-cert", sf.procCert, "--tls-key", sf.procKey, "--tls-client-ca", sf.caFile},
		[]*regexp.Regexp{listeningRE}, startTimeout)
	if err != nil {
		return nil, err
	}
	sk, got, err := startChild("eventproc", e.bins.eventproc, []string{
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--route", "hello=" + got[0], "--shutdown-grace", "1s",
		"--tls-cert", sf.sinkCert, "--tls-key", sf.sinkKey,
		"--processor-tls-ca", sf.caFile, "--processor-tls-cert", sf.sinkClientCert, "--processor-tls-key", sf.sinkClientKey,
		"--auth-jwks-file", sf.jwks, "--auth-issuer", sf.issuer, "--auth-audience", sf.audience,
	}, []*regexp.Regexp{sinkHTTPRE, sinkGRPCRE}, startTimeout)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &servers{server: sk, proc: p, httpAddr: got[0], grpcAddr: got[1], tls: sf.clientTLS, token: sf.token}
	if err := waitReady(s, startTimeout); err != nil {
		s.stop()
		return nil, fmt.Errorf("eventproc: %w; its output:\n%s", err, sk.out.tail())
	}
	return s, nil
}

// bearer is a token as gRPC per-call credentials.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
