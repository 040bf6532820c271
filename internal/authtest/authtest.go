// Package authtest makes credentials for tests: an issuer of JWTs with a
// JSON Web Key Set it serves over HTTP or writes to a file, and API key
// files. Keys are made in the test; nothing is read from disk.
package authtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventproc/eventproc/event/auth"
)

// T is what the helpers need of a test: testing.TB has it, and so can a
// program that makes credentials for a benchmark.
type T interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Issuer signs JWTs with ES256 keys and publishes their key set.
type Issuer struct {
	t        T
	Name     string // iss
	Audience string // aud
	mu       sync.Mutex
	keys     map[string]crypto.Signer // kid → key, published
}

// NewIssuer returns an issuer with one published key, "k1".
func NewIssuer(t T, name, audience string) *Issuer {
	is := &Issuer{t: t, Name: name, Audience: audience, keys: map[string]crypto.Signer{}}
	is.AddKey("k1")
	return is
}

// NewKey makes a key that is not published.
func NewKey(t T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// AddKey publishes a new key under kid (a rotation).
func (is *Issuer) AddKey(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = NewKey(is.t)
}

// JWKS is the published key set.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	set := jwkset.NewMemoryStorage()
	for kid, k := range is.keys {
		jwk, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
		if err != nil {
			is.t.Fatal(err)
		}
		if err := set.KeyWrite(context.Background(), jwk); err != nil {
			is.t.Fatal(err)
		}
	}
	b, err := set.JSONPublic(context.Background())
	if err != nil {
		is.t.Fatal(err)
	}
	return b
}

// Serve serves the key set over HTTP until the test ends, and returns its
// URL.
func (is *Issuer) Serve() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(is.JWKS())
	}))
	is.t.Cleanup(srv.Close)
	return srv.URL
}

// WriteFile writes the key set to path.
func (is *Issuer) WriteFile(path string) {
	if err := os.WriteFile(path, is.JWKS(), 0o600); err != nil {
		is.t.Fatal(err)
	}
}

// Claims are a token's claims; Token fills in what is zero.
type Claims struct {
	Subject   string
	Scope     string // space-separated
	Issuer    string // the issuer's name when empty
	Audience  string // the issuer's audience when empty
	ExpiresAt time.Time
	NotBefore time.Time
}

// Token signs c with the key kid (which must have been added) as ES256.
func (is *Issuer) Token(kid string, c Claims) string {
	is.mu.Lock()
	key := is.keys[kid]
	is.mu.Unlock()
	if key == nil {
		is.t.Fatalf("no key %q", kid)
	}
	return is.Sign(key, kid, c)
}

// Sign signs c with key, naming kid, whether the issuer publishes it or
// not.
func (is *Issuer) Sign(key crypto.Signer, kid string, c Claims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, is.claims(c))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

// Unsigned is c as a token with alg "none".
func (is *Issuer) Unsigned(c Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, is.claims(c)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

func (is *Issuer) claims(c Claims) jwt.MapClaims {
	if c.Issuer == "" {
		c.Issuer = is.Name
	}
	if c.Audience == "" {
		c.Audience = is.Audience
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = time.Now().Add(time.Hour)
	}
	m := jwt.MapClaims{"iss": c.Issuer, "aud": c.Audience, "sub": c.Subject, "exp": c.ExpiresAt.Unix()}
	if c.Scope != "" {
		m["scope"] = c.Scope
	}
	if !c.NotBefore.IsZero() {
		m["nbf"] = c.NotBefore.Unix()
	}
	return m
}

// WriteAPIKeys writes an API key file to path for keys (key → its entry,
// whose SHA256 is filled in).
func WriteAPIKeys(t T, path string, keys map[string]auth.APIKey) {
	var f auth.APIKeyFile
	for key, e := range keys {
		sum := sha256.Sum256([]byte(key))
		e.SHA256 = hex.EncodeToString(sum[:])
		f.Keys = append(f.Keys, e)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomically, as a reload must never see half a file
		t.Fatal(err)
	}
}
