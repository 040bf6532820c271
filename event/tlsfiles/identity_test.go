package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/eventproc/eventproc/event/tlsfiles"
	"github.com/eventproc/eventproc/internal/testcerts"
)

func TestIdentity(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	for _, tc := range []struct {
		name string
		opts testcerts.Options
		want string
	}{
		{"URI first", testcerts.Options{CommonName: "cn", DNS: []string{"a.example"}, URIs: []string{"spiffe://example.org/sink", "https://x"}}, "spiffe://example.org/sink"},
		{"DNS without URI", testcerts.Options{CommonName: "cn", DNS: []string{"a.example", "b.example"}}, "a.example"},
		{"CN without SANs", testcerts.Options{CommonName: "sink-1"}, "sink-1"},
		{"nothing", testcerts.Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := ca.Issue(t, tc.opts).Cert
			if got := tlsfiles.Identity(leaf); got != tc.want {
				t.Errorf("Identity = %q, want %q", got, tc.want)
			}
			verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca.Cert}}}
			if got := tlsfiles.PeerIdentity(verified); got != tc.want {
				t.Errorf("PeerIdentity(verified) = %q, want %q", got, tc.want)
			}
			unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
			if got := tlsfiles.PeerIdentity(unverified); got != "" {
				t.Errorf("PeerIdentity(unverified) = %q, want \"\"", got)
			}
		})
	}
	if got := tlsfiles.PeerIdentity(nil); got != "" {
		t.Errorf("PeerIdentity(nil) = %q, want \"\"", got)
	}
}
