// Package testcerts mints certificates for tests: a CA, and leaves it
// signs with the names, uses and lifetimes a test asks for, written as PEM
// files when a test needs files. Keys are ECDSA P-256, which is quick to
// make. It is for tests only: nothing here is fit to protect anything.
package testcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// T is what the helpers need of a test: testing.TB has it, and so can a
// program that makes certificates for a benchmark.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// CA is a certificate authority made by [NewCA].
type CA struct {
	// Cert is the CA's certificate and PEM the same, PEM-encoded.
	Cert *x509.Certificate
	PEM  []byte
	key  crypto.Signer
}

// Leaf is a certificate made by [CA.Issue], with its key.
type Leaf struct {
	// Cert is the certificate; CertPEM the same, PEM-encoded, and KeyPEM
	// its private key (PKCS #8).
	Cert            *x509.Certificate
	CertPEM, KeyPEM []byte
}

// Options say what a leaf certificate holds. The zero value is a server
// and client certificate without names, valid for an hour.
type Options struct {
	// CommonName is the subject's CN.
	CommonName string
	// DNS, IPs and URIs are the subject alternative names.
	DNS  []string
	IPs  []net.IP
	URIs []string
	// NotBefore and NotAfter bound the validity; zero means an hour before
	// now and an hour after.
	NotBefore, NotAfter time.Time
	// ServerOnly and ClientOnly restrict the extended key usage; by
	// default a leaf may serve both.
	ServerOnly, ClientOnly bool
}

// NewCA makes a self-signed CA named cn, valid from an hour ago for a day.
func NewCA(t T, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("testcerts: CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: CA: %v", err)
	}
	return &CA{Cert: cert, PEM: pemBlock("CERTIFICATE", der), key: key}
}

// Issue makes a leaf certificate signed by ca.
func (ca *CA) Issue(t T, o Options) *Leaf {
	t.Helper()
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(time.Hour)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	switch {
	case o.ServerOnly:
		usage = usage[:1]
	case o.ClientOnly:
		usage = usage[1:]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: o.CommonName},
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	for _, u := range o.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatalf("testcerts: URI %q: %v", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("testcerts: leaf: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: leaf: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testcerts: leaf key: %v", err)
	}
	return &Leaf{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", pkcs8)}
}

// Localhost issues a leaf for localhost and 127.0.0.1 named cn.
func (ca *CA) Localhost(t T, cn string) *Leaf {
	t.Helper()
	return ca.Issue(t, Options{CommonName: cn, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
}

// TLS returns the leaf as a tls.Certificate.
func (l *Leaf) TLS(t T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return c
}

// Pool returns a certificate pool holding ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Files writes the leaf to dir as name.crt and name.key and returns their
// paths.
func (l *Leaf) Files(t T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return WriteFile(t, dir, name+".crt", l.CertPEM), WriteFile(t, dir, name+".key", l.KeyPEM)
}

// WriteFile writes data to dir/name and returns the path.
func WriteFile(t T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return path
}

func newKey(t T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcerts: key: %v", err)
	}
	return key
}

func serial(t T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatalf("testcerts: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
