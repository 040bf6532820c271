package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
)

// PeerIdentity returns the identity of the peer of a TLS connection, as
// [Identity] gives it for the peer's verified certificate, or "" when the
// peer's certificate was not verified (none was asked for or sent). cs is
// an HTTP request's TLS field, or the State of the credentials.TLSInfo a
// gRPC call's peer.FromContext(ctx).AuthInfo holds.
func PeerIdentity(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return Identity(cs.VerifiedChains[0][0])
}

// Identity names the holder of a certificate: its first URI subject
// alternative name (a SPIFFE id, for example), else its first DNS name,
// else its subject's common name. It does not verify anything.
func Identity(c *x509.Certificate) string {
	switch {
	case c == nil:
		return ""
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}
