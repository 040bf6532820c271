package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// validMethods are the JWT algorithms accepted: public-key signatures
// only, never "none" nor an HMAC (which a public key would otherwise
// "verify" as a shared secret). Each is also pinned to its key's type.
var validMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwtVerifier verifies JWTs against one issuer's key set.
type jwtVerifier struct {
	a      *Authenticator
	parser *jwt.Parser
	keys   atomic.Pointer[keyfunc.Keyfunc]
}

func newJWTVerifier(ctx context.Context, a *Authenticator) (*jwtVerifier, error) {
	cfg := a.cfg
	v := &jwtVerifier{a: a, parser: jwt.NewParser(
		jwt.WithValidMethods(validMethods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)}
	if cfg.JWKSFile != "" {
		return v, a.watchFile(ctx, "jwks", cfg.JWKSFile, func(data []byte) error {
			kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(data))
			if err != nil {
				return err
			}
			if keys, err := kf.Storage().KeyReadAll(ctx); err != nil || len(keys) == 0 {
				return errors.New("no usable keys in the set")
			}
			v.keys.Store(&kf)
			return nil
		})
	}
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:          cfg.HTTPClient,
		RefreshInterval: cfg.JWKSRefreshInterval,
		// A token naming an unknown key fetches the set again, at most
		// this often; one that finds no fetch allowed fails at once.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.UnknownKeyInterval), 1),
		RateLimitWaitMax:  5 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				a.metrics.reloads.WithLabelValues("jwks", "error").Inc()
				a.log.Warn("auth: fetching the JWKS failed; keeping the keys held", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", cfg.JWKSURL, err)
	}
	v.keys.Store(&kf)
	return v, nil
}

// claims are the claims read from a token.
type claims struct {
	jwt.RegisteredClaims
	Scope string    `json:"scope"`
	Scp   scopeList `json:"scp"`
}

// scopeList is a scp claim: a list, or a space-separated string.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = strings.Fields(one)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scp: want a list of strings or a string")
	}
	*s = list
	return nil
}

// verify checks a token and returns its principal, or the reason (a
// label of eventproc_auth_failures_total) and error.
func (v *jwtVerifier) verify(token string) (*Principal, string, error) {
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, jwtReason(err), err
	}
	if c.Subject == "" {
		return nil, "missing_claim", errors.New("token has no sub claim")
	}
	scopes, _ := ParseScopes(append(strings.Fields(c.Scope), c.Scp...), false)
	return &Principal{
		Name:    c.Subject,
		Method:  "jwt",
		Expires: c.ExpiresAt.Add(v.a.cfg.Leeway),
		Scopes:  scopes,
	}, "", nil
}

// key finds the key that verifies t, and checks it is of the type its
// algorithm needs.
func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	k, err := (*v.keys.Load()).Keyfunc(t)
	if err != nil {
		return nil, err
	}
	if set, ok := k.(jwt.VerificationKeySet); ok { // the token names no key
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if keyFits(t.Method, k) {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, fmt.Errorf("no key in the set for %s", t.Method.Alg())
		}
		return fit, nil
	}
	if !keyFits(t.Method, k) {
		return nil, fmt.Errorf("key %v is not a key for %s", t.Header["kid"], t.Method.Alg())
	}
	return k, nil
}

// keyFits reports whether key is of the type method verifies with.
func keyFits(method jwt.SigningMethod, key any) bool {
	switch method.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	case *jwt.SigningMethodEd25519:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// jwtReason names why a token was refused.
func jwtReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrTokenUnverifiable, "unknown_key"},
		{jwt.ErrTokenSignatureInvalid, "bad_signature"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not_yet_valid"},
		{jwt.ErrTokenInvalidIssuer, "wrong_issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong_audience"},
		{jwt.ErrTokenRequiredClaimMissing, "missing_claim"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid"
}
