package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// errNoCertificate fails a server handshake of Files without a certificate.
var errNoCertificate = errors.New("tlsfiles: no certificate configured (Options.CertFile)")

// ServerConfig returns a server configuration that offers the ALPN
// protocols protos ("h2" for gRPC; "h2" and "http/1.1" for an HTTP
// server) and, at every handshake, the current certificate. With a CA
// file, it requires a client certificate that chains to the current CAs.
// It needs Options.CertFile. TLS 1.2 is the oldest version it accepts.
func (f *Files) ServerConfig(protos ...string) *tls.Config {
	protos = append([]string(nil), protos...)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		// A configuration per handshake, made from the files loaded then.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			l := f.cur.Load()
			if l.cert == nil {
				return nil, errNoCertificate
			}
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   protos,
				Certificates: []tls.Certificate{*l.cert},
			}
			if l.cas != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = l.cas
			}
			return c, nil
		},
	}
}

// ClientConfig returns a client configuration that presents the current
// certificate, if any, when the server asks for one, and accepts a server
// only when its certificate chains to the current CAs (the system's roots
// without a CA file) and is valid for serverName; when serverName is
// empty, for the name the client sends in SNI, which an IP address is not:
// give serverName to dial an address. For gRPC, use [Files.ClientCredentials],
// which knows the address it dials.
//
// Because crypto/tls has no hook to change the CAs per handshake on the
// client, the configuration sets InsecureSkipVerify and verifies the
// server in VerifyConnection instead, with crypto/x509 as crypto/tls
// itself does; do not clear VerifyConnection.
func (f *Files) ClientConfig(serverName string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		// Verified in VerifyConnection, against the CAs loaded now.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := serverName
			if name == "" {
				name = cs.ServerName
			}
			return f.verifyServer(cs, name)
		},
	}
	if f.cur.Load().cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return f.cur.Load().cert, nil
		}
	}
	return c
}

// verifyServer checks that the server's certificate chain in cs leads to
// the current CAs (or the system's roots) and that its leaf is valid for
// serving name, as crypto/tls does for a client without
// InsecureSkipVerify.
func (f *Files) verifyServer(cs tls.ConnectionState, name string) error {
	if name == "" {
		return errors.New("tlsfiles: no server name to verify the server's certificate against (set one to dial an IP address)")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsfiles: the server sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         f.cur.Load().cas, // nil: the system's roots
		DNSName:       name,             // a host name or an IP address
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: fmt.Errorf("tlsfiles: %w", err)}
	}
	return nil
}
