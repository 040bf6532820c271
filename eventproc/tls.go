package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/eventproc/eventproc/event/tlsfiles"
)

// TLSFiles are the sink's certificate files: for its own two ports, and
// for its connections to processors. Empty means plaintext.
type TLSFiles struct {
	// CertFile and KeyFile make both ports serve TLS; with ClientCAFile,
	// they require client certificates that chain to its CAs.
	CertFile, KeyFile, ClientCAFile string
	// ProcessorCAFile, ProcessorCertFile and ProcessorKeyFile make the
	// sink dial processors over TLS, verifying them against the CAs (the
	// system's without a file) and presenting the certificate, if any;
	// ProcessorServerName is the name their certificates must hold
	// instead of the target's host.
	ProcessorCAFile, ProcessorCertFile, ProcessorKeyFile, ProcessorServerName string
}

// options are the flags of f, in the order --help shows them.
func (f *TLSFiles) options() []option {
	return []option{
		{name: "tls-cert", arg: "FILE", env: "EVENTPROC_TLS_CERT", set: stringVar(&f.CertFile),
			usage: "PEM certificate (chain) that both ports serve TLS with, HTTP with ALPN h2 and http/1.1; " +
				"with --tls-key; reloaded when the file changes (checked every 5s)"},
		{name: "tls-key", arg: "FILE", env: "EVENTPROC_TLS_KEY", set: stringVar(&f.KeyFile),
			usage: "PEM private key of --tls-cert"},
		{name: "tls-client-ca", arg: "FILE", env: "EVENTPROC_TLS_CLIENT_CA", set: stringVar(&f.ClientCAFile),
			usage: "PEM CA bundle: both ports then require a client certificate that chains to one of its CAs " +
				"(mutual TLS); needs --tls-cert; reloaded when the file changes"},
		{name: "processor-tls-ca", arg: "FILE", env: "EVENTPROC_PROCESSOR_TLS_CA", set: stringVar(&f.ProcessorCAFile),
			usage: "PEM CA bundle processors' certificates must chain to; dials processors over TLS (as does " +
				"--processor-tls-cert, which without this flag trusts the system's CAs)"},
		{name: "processor-tls-cert", arg: "FILE", env: "EVENTPROC_PROCESSOR_TLS_CERT", set: stringVar(&f.ProcessorCertFile),
			usage: "PEM client certificate the sink presents to processors that ask for one (mutual TLS); with " +
				"--processor-tls-key"},
		{name: "processor-tls-key", arg: "FILE", env: "EVENTPROC_PROCESSOR_TLS_KEY", set: stringVar(&f.ProcessorKeyFile),
			usage: "PEM private key of --processor-tls-cert"},
		{name: "processor-tls-server-name", arg: "NAME", env: "EVENTPROC_PROCESSOR_TLS_SERVER_NAME",
			set:   stringVar(&f.ProcessorServerName),
			usage: "name processors' certificates must hold, when not the host of the route's target (e.g. for targets given as IP addresses)"},
	}
}

// validate checks that the files given go together.
func (f *TLSFiles) validate() error {
	switch {
	case (f.CertFile == "") != (f.KeyFile == ""):
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	case f.ClientCAFile != "" && f.CertFile == "":
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for over TLS")
	case (f.ProcessorCertFile == "") != (f.ProcessorKeyFile == ""):
		return errors.New("--processor-tls-cert and --processor-tls-key go together: give both or neither")
	case f.ProcessorServerName != "" && f.ProcessorCAFile == "" && f.ProcessorCertFile == "":
		return errors.New("--processor-tls-server-name needs --processor-tls-ca or --processor-tls-cert")
	}
	return nil
}

// sinkTLS is the sink's loaded certificate files.
type sinkTLS struct {
	server     *tlsfiles.Files // nil: plaintext ports
	processors *tlsfiles.Files // nil: plaintext to processors
	serverName string
}

// certExpiry is the gauge of the certificates' expiry.
const certExpiry = "eventproc_tls_cert_expiry_timestamp_seconds"

// newSinkTLS loads the files f names, and registers the expiry gauge of
// each certificate with reg.
func newSinkTLS(f TLSFiles, log *slog.Logger, reg prometheus.Registerer) (*sinkTLS, error) {
	t := &sinkTLS{serverName: f.ProcessorServerName}
	var err error
	if f.CertFile != "" {
		t.server, err = tlsfiles.New(tlsfiles.Options{CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.ClientCAFile,
			Name: "server", Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %w", err)
		}
	}
	if f.ProcessorCAFile != "" || f.ProcessorCertFile != "" {
		t.processors, err = tlsfiles.New(tlsfiles.Options{CertFile: f.ProcessorCertFile, KeyFile: f.ProcessorKeyFile,
			CAFile: f.ProcessorCAFile, Name: "processor-client", Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--processor-tls-*: %w", err)
		}
	}
	for _, c := range []struct {
		label string
		files *tlsfiles.Files
		has   bool
	}{{"server", t.server, f.CertFile != ""}, {"processor-client", t.processors, f.ProcessorCertFile != ""}} {
		if !c.has {
			continue
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        certExpiry,
			Help:        "When the certificate in use expires (its NotAfter), in seconds since the Unix epoch; cert is server (both ports) or processor-client (presented to processors).",
			ConstLabels: prometheus.Labels{"cert": c.label},
		}, func() float64 { return float64(c.files.NotAfter().Unix()) }))
	}
	return t, nil
}

// processorCredentials returns the credentials for dialling processors,
// nil for plaintext.
func (t *sinkTLS) processorCredentials() credentials.TransportCredentials {
	if t.processors == nil {
		return nil
	}
	return t.processors.ClientCredentials(t.serverName)
}

// grpcOption returns the gRPC server's TLS option, or none.
func (t *sinkTLS) grpcOption() grpc.ServerOption {
	if t.server == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(credentials.NewTLS(t.server.ServerConfig("h2")))
}

// configureHTTP makes srv serve TLS, when the sink does, with ALPN h2 and
// http/1.1.
func (t *sinkTLS) configureHTTP(srv *http.Server) {
	if t.server != nil {
		srv.TLSConfig = t.server.ServerConfig("h2", "http/1.1")
	}
}

// run reloads the certificate files until ctx ends.
func (t *sinkTLS) run(ctx context.Context) {
	done := make(chan struct{}, 2)
	n := 0
	for _, f := range []*tlsfiles.Files{t.server, t.processors} {
		if f != nil {
			n++
			go func() {
				_ = f.Run(ctx) // nil at ctx's end
				done <- struct{}{}
			}()
		}
	}
	for range n {
		<-done
	}
}

// serveHTTP serves s's HTTP server on lis, over TLS when configured.
func (s *server) serveHTTP(lis net.Listener) error {
	if s.http.TLSConfig != nil {
		return s.http.ServeTLS(lis, "", "") // the certificate comes from TLSConfig
	}
	return s.http.Serve(lis)
}
