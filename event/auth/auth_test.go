package auth_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/authtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newAuth(t *testing.T, cfg auth.Config) *auth.Authenticator {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// try authenticates a request with header h (name, value), as the HTTP
// front does, and then asks to send an event of type hello.
func try(a *auth.Authenticator, h ...string) error {
	r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Set(h[i], h[i+1])
	}
	ctx, err := a.HTTP(r)
	if err != nil {
		return err
	}
	return a.Authorize(ctx, sink.ActionSend, eventv1.Type_TYPE_HELLO)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// TestJWTTimes checks exp and nbf against an injected clock, with the
// leeway on both sides.
func TestJWTTimes(t *testing.T) {
	is := authtest.NewIssuer(t, "iss", "aud")
	clk := &clock{now: time.Now().Truncate(time.Second)}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	is.WriteFile(jwks)
	a := newAuth(t, auth.Config{JWKSFile: jwks, Issuer: "iss", Audience: "aud", Now: clk.Now, Leeway: 10 * time.Second})
	start := clk.Now()
	tok := is.Token("k1", authtest.Claims{Subject: "a", Scope: "send:hello",
		NotBefore: start.Add(time.Minute), ExpiresAt: start.Add(2 * time.Minute)})
	for _, step := range []struct {
		at   time.Duration
		want codes.Code
	}{
		{0, codes.Unauthenticated},                              // before nbf
		{time.Minute - 11*time.Second, codes.Unauthenticated},   // beyond the leeway before nbf
		{time.Minute - 9*time.Second, codes.OK},                 // within it
		{2*time.Minute + 9*time.Second, codes.OK},               // past exp, within the leeway
		{2*time.Minute + 11*time.Second, codes.Unauthenticated}, // beyond it (the cache too)
	} {
		clk.mu.Lock()
		clk.now = start.Add(step.at)
		clk.mu.Unlock()
		if got := status.Code(try(a, bearer(tok)...)); got != step.want {
			t.Errorf("at %v: %v, want %v", step.at, got, step.want)
		}
	}
}

// TestJWKSRotation checks that a token naming a key the set does not hold
// is refused, and accepted once the issuer publishes the key, with the
// set fetched again at most once per interval.
func TestJWKSRotation(t *testing.T) {
	is := authtest.NewIssuer(t, "iss", "aud")
	url := is.Serve()
	a := newAuth(t, auth.Config{JWKSURL: url, Issuer: "iss", Audience: "aud", UnknownKeyInterval: time.Millisecond})
	if err := try(a, bearer(is.Token("k1", authtest.Claims{Subject: "a", Scope: "send:*"}))...); err != nil {
		t.Fatalf("k1: %v", err)
	}
	key := authtest.NewKey(t)
	tok := is.Sign(key, "k2", authtest.Claims{Subject: "a", Scope: "send:*"})
	if err := try(a, bearer(tok)...); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unknown kid: %v, want UNAUTHENTICATED", err)
	}
	is.AddKey("k2")
	tok = is.Token("k2", authtest.Claims{Subject: "a", Scope: "send:*"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for try(a, bearer(tok)...) != nil { // the refetch is rate-limited to once per millisecond
		select {
		case <-ctx.Done():
			t.Fatal("k2 never accepted after it was published")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestReloadKeepsGoodFiles checks that a JWKS or API key file that
// becomes invalid keeps the previous keys, and a valid one replaces them.
func TestReloadKeepsGoodFiles(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{"old": {Principal: "p", Scopes: []string{"send:hello"}}})
	var logs syncBuffer
	a := newAuth(t, auth.Config{APIKeysFile: keys, ReloadInterval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := try(a, "X-Api-Key", "old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys, []byte(`{"keys": [{"principal": "p", "sha256": "nothex"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "reload failed") })
	if err := try(a, "X-Api-Key", "old"); err != nil {
		t.Errorf("after a bad file: %v, want the old key kept", err)
	}
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{"new": {Principal: "p", Scopes: []string{"send:hello"}}})
	waitFor(t, func() bool { return try(a, "X-Api-Key", "new") == nil })
	if err := try(a, "X-Api-Key", "old"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old key after the new file: %v", err)
	}
}

// TestSymlinkSwap reloads a JWKS mounted as Kubernetes does: the file is
// a symlink into a directory swapped by renaming another symlink.
func TestSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	is := authtest.NewIssuer(t, "iss", "aud")
	mount := func(name string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		is.WriteFile(filepath.Join(dir, name, "jwks.json"))
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mount("v1")
	if err := os.Symlink("..data/jwks.json", filepath.Join(dir, "jwks.json")); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, auth.Config{JWKSFile: filepath.Join(dir, "jwks.json"), Issuer: "iss", Audience: "aud", ReloadInterval: time.Millisecond})
	is.AddKey("k2")
	tok := is.Token("k2", authtest.Claims{Subject: "a", Scope: "send:*"})
	if err := try(a, bearer(tok)...); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("k2 before the swap: %v", err)
	}
	mount("v2")
	waitFor(t, func() bool { return try(a, bearer(tok)...) == nil })
}

// TestRateLimit checks the per-principal bucket: RESOURCE_EXHAUSTED with a
// RetryInfo when empty, one principal not slowing another.
func TestRateLimit(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{
		"a": {Principal: "a", Scopes: []string{"send:*"}},
		"b": {Principal: "b", Scopes: []string{"send:*"}},
	})
	clk := &clock{now: time.Now()}
	a := newAuth(t, auth.Config{APIKeysFile: keys, RateLimit: 2, RateBurst: 3, Now: clk.Now})
	for i := range 3 {
		if err := try(a, "X-Api-Key", "a"); err != nil {
			t.Fatalf("event %d within the burst: %v", i, err)
		}
	}
	err := try(a, "X-Api-Key", "a")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("past the burst: %v, want RESOURCE_EXHAUSTED", err)
	}
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if delay != time.Second {
		t.Errorf("RetryInfo delay %v, want 1s (half a second, rounded up)", delay)
	}
	if err := try(a, "X-Api-Key", "b"); err != nil {
		t.Errorf("another principal: %v", err)
	}
	clk.add(500 * time.Millisecond)
	if err := try(a, "X-Api-Key", "a"); err != nil {
		t.Errorf("after the refill: %v", err)
	}
}

// TestFailuresPerAddress checks that an address that fails too often is
// refused before its credentials are looked at, while another is not.
func TestFailuresPerAddress(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{"good": {Principal: "p", Scopes: []string{"send:*"}}})
	clk := &clock{now: time.Now()}
	a := newAuth(t, auth.Config{APIKeysFile: keys, FailureRate: 1, FailureBurst: 5, Now: clk.Now})
	from := func(addr, key string) error {
		r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
		r.RemoteAddr = addr + ":1234"
		r.Header.Set("X-Api-Key", key)
		_, err := a.HTTP(r)
		return err
	}
	for range 5 {
		if err := from("192.0.2.1", "guess"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("guess: %v", err)
		}
	}
	if err := from("192.0.2.1", "good"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("after 5 failures: %v, want RESOURCE_EXHAUSTED", err)
	}
	if err := from("192.0.2.2", "good"); err != nil {
		t.Errorf("another address: %v", err)
	}
	clk.add(time.Second)
	if err := from("192.0.2.1", "good"); err != nil {
		t.Errorf("a second later: %v", err)
	}
}

// TestTickets checks that a ticket is single-use, expires, carries its
// principal's scopes, is accepted only for subscriptions, and cannot mint
// another.
func TestTickets(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{"k": {Principal: "p", Scopes: []string{"subscribe:hello"}}})
	clk := &clock{now: time.Now()}
	a := newAuth(t, auth.Config{APIKeysFile: keys, Now: clk.Now, TicketTTL: 30 * time.Second})
	mint := func() string {
		r := httptest.NewRequest(http.MethodPost, "/v1/tickets", nil)
		r.Header.Set("X-Api-Key", "k")
		ctx, err := a.HTTP(r)
		if err != nil {
			t.Fatal(err)
		}
		tk, exp, err := a.IssueTicket(ctx)
		if err != nil || !exp.Equal(clk.Now().Add(30*time.Second)) {
			t.Fatalf("IssueTicket = %q, %v, %v", tk, exp, err)
		}
		return tk
	}
	subscribe := func(path string) (context.Context, error) {
		return a.HTTP(httptest.NewRequest(http.MethodGet, path, nil))
	}
	tk := mint()
	if _, err := subscribe("/v1/types?ticket=" + tk); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ticket on another path: %v", err)
	}
	ctx, err := subscribe("/v1/events:subscribe?types=hello&ticket=" + tk)
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	if err := a.Authorize(ctx, sink.ActionSubscribe, eventv1.Type_TYPE_HELLO); err != nil {
		t.Errorf("ticket's scopes: %v", err)
	}
	if err := a.Authorize(ctx, sink.ActionSubscribe, eventv1.Type_TYPE_GOODBYE); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ticket's scopes, goodbye: %v", err)
	}
	if _, _, err := a.IssueTicket(ctx); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a ticket minting one: %v", err)
	}
	if _, err := subscribe("/v1/events:subscribe?types=hello&ticket=" + tk); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ticket used twice: %v", err)
	}
	tk = mint()
	clk.add(31 * time.Second)
	if _, err := subscribe("/v1/events:subscribe?types=hello&ticket=" + tk); status.Code(err) != codes.Unauthenticated {
		t.Errorf("expired ticket: %v", err)
	}
}

// TestConfigErrors checks that New refuses what cannot work.
func TestConfigErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	for _, cfg := range []auth.Config{
		{JWKSURL: "http://127.0.0.1:1/jwks"},                              // no issuer or audience
		{JWKSURL: "http://x/", JWKSFile: "f", Issuer: "i", Audience: "a"}, // two key sets
		{JWKSFile: missing, Issuer: "i", Audience: "a"},
		{APIKeysFile: missing},
		{RateLimit: -1},
	} {
		if a, err := auth.New(cfg); err == nil {
			a.Close()
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

// TestAPIKeyFile checks the strict parsing of API key files.
func TestAPIKeyFile(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, bad := range []string{
		`{"keys": [{"principal": "p", "sha256": "` + hash + `", "scopes": ["send:nosuchtype"]}]}`,
		`{"keys": [{"principal": "p", "sha256": "` + hash + `", "scopes": ["write:hello"]}]}`,
		`{"keys": [{"principal": "", "sha256": "` + hash + `"}]}`,
		`{"keys": [{"principal": "p", "sha256": "abc"}]}`,
		`{"keys": [{"principal": "p", "sha256": "` + hash + `", "key": "plain"}]}`,
		`{"keys": [{"principal": "p", "sha256": "` + hash + `"}, {"principal": "q", "sha256": "` + hash + `"}]}`,
	} {
		if _, err := auth.LoadAPIKeys([]byte(bad)); err == nil {
			t.Errorf("LoadAPIKeys(%s) = nil error", bad)
		}
	}
	m, err := auth.LoadAPIKeys([]byte(`{"keys": [{"principal": "p", "sha256": "` + hash + `", "scopes": ["send:*", "subscribe:TYPE_HELLO", "read:metrics"]}]}`))
	if err != nil || len(m) != 1 {
		t.Fatalf("LoadAPIKeys = %v, %v", m, err)
	}
	for _, p := range m {
		if !p.Scopes.Allows(sink.ActionSend, eventv1.Type_TYPE_GOODBYE) || !p.Scopes.Allows(sink.ActionSubscribe, eventv1.Type_TYPE_HELLO) ||
			p.Scopes.Allows(sink.ActionSubscribe, eventv1.Type_TYPE_GOODBYE) || !p.Scopes.Metrics {
			t.Errorf("scopes %+v", p.Scopes)
		}
	}
}

// FuzzCredential checks that no Authorization or X-Api-Key header panics,
// and that none but the real credentials authenticates.
func FuzzCredential(f *testing.F) {
	is := authtest.NewIssuer(f, "iss", "aud")
	dir := f.TempDir()
	jwks, keys := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "keys.json")
	is.WriteFile(jwks)
	authtest.WriteAPIKeys(f, keys, map[string]auth.APIKey{"secret-key": {Principal: "p", Scopes: []string{"send:*"}}})
	a, err := auth.New(auth.Config{JWKSFile: jwks, APIKeysFile: keys, Issuer: "iss", Audience: "aud",
		Logger: slog.New(slog.DiscardHandler), FailureBurst: 1 << 30, FailureRate: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(a.Close)
	good := is.Token("k1", authtest.Claims{Subject: "a", Scope: "send:*"})
	f.Add("Bearer "+good, "")
	f.Add("", "secret-key")
	f.Add("Bearer "+is.Unsigned(authtest.Claims{Subject: "a"}), "")
	f.Add("bearer  x.y.z", "")
	f.Add("Basic Zm9vOmJhcg==", "secret")
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		err := try(a, "Authorization", authorization, "X-Api-Key", apiKey)
		if err == nil {
			tok := strings.TrimSpace(authorization[min(len(authorization), len("Bearer ")):])
			if authorization == "" && apiKey != "secret-key" || authorization != "" && tok != good && tok != "secret-key" {
				t.Errorf("authenticated with Authorization %q, X-Api-Key %q", authorization, apiKey)
			}
			return
		}
		if c := status.Code(err); c != codes.Unauthenticated {
			t.Errorf("code %v (%v)", c, err)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond) // polling a reload
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
