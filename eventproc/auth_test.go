package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/authtest"
)

// authSink is a sink with JWT and API key authentication, and its
// issuer and key file.
type authSink struct {
	*sinkProc
	issuer   *authtest.Issuer
	keysFile string
}

// startAuthSink starts a sink that routes hello and goodbye to a
// processor and authenticates with a JWKS URL and an API key file holding
// the keys "key-hello" (send and subscribe hello) and "key-gone".
func startAuthSink(t *testing.T, args ...string) *authSink {
	t.Helper()
	p := startProcessor(t)
	is := authtest.NewIssuer(t, "https://issuer.test", "eventproc")
	keys := filepath.Join(t.TempDir(), "keys.json")
	authtest.WriteAPIKeys(t, keys, map[string]auth.APIKey{
		"key-hello": {Principal: "svc-hello", Scopes: []string{"send:hello", "subscribe:hello", auth.MetricsScope}},
		"key-gone":  {Principal: "svc-gone", Scopes: []string{"send:*", "subscribe:*"}},
	})
	s := startSink(t, append([]string{"--route", "hello=" + p.addr, "--route", "goodbye=" + p.addr,
		"--auth-jwks-url", is.Serve(), "--auth-issuer", is.Name, "--auth-audience", is.Audience,
		"--auth-api-keys", keys}, args...)...)
	s.waitRoute(testContext(t), "TYPE_HELLO", true)
	return &authSink{sinkProc: s, issuer: is, keysFile: keys}
}

// credentialCase is one credential, and what it gets: code for sending or
// subscribing to hello, and for goodbye.
type credentialCase struct {
	name          string
	header        [2]string // the header (or metadata) that carries it; none when empty
	hello, bye    codes.Code
	invalidHeader bool // 401 says error="invalid_token"
}

// credentialCases is the matrix's credentials.
func credentialCases(t *testing.T, s *authSink) []credentialCase {
	is := s.issuer
	now := time.Now()
	bearer := func(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }
	helloOnly := authtest.Claims{Subject: "alice", Scope: "send:hello subscribe:TYPE_HELLO other:scope"}
	with := func(f func(*authtest.Claims)) authtest.Claims {
		c := helloOnly
		f(&c)
		return c
	}
	unauth := func(name string, h [2]string) credentialCase {
		return credentialCase{name: name, header: h, hello: codes.Unauthenticated, bye: codes.Unauthenticated, invalidHeader: true}
	}
	return []credentialCase{
		{name: "no credential", hello: codes.Unauthenticated, bye: codes.Unauthenticated},
		unauth("malformed", bearer("not.a.jwt")),
		unauth("not bearer", [2]string{"Authorization", "Basic YWxpY2U6cHc="}),
		unauth("bad signature", bearer(is.Sign(authtest.NewKey(t), "k1", helloOnly))),
		unauth("alg none", bearer(is.Unsigned(helloOnly))),
		unauth("wrong issuer", bearer(is.Token("k1", with(func(c *authtest.Claims) { c.Issuer = "https://evil.test" })))),
		unauth("wrong audience", bearer(is.Token("k1", with(func(c *authtest.Claims) { c.Audience = "other" })))),
		unauth("expired", bearer(is.Token("k1", with(func(c *authtest.Claims) { c.ExpiresAt = now.Add(-time.Hour) })))),
		unauth("nbf in the future", bearer(is.Token("k1", with(func(c *authtest.Claims) { c.NotBefore = now.Add(time.Hour) })))),
		unauth("unknown kid", bearer(is.Sign(authtest.NewKey(t), "k-unknown", helloOnly))),
		unauth("unknown API key", [2]string{"X-Api-Key", "key-nobody"}),
		{name: "valid, hello allowed", header: bearer(is.Token("k1", helloOnly)), hello: codes.OK, bye: codes.PermissionDenied},
		{name: "valid, every type", header: bearer(is.Token("k1", authtest.Claims{Subject: "bob", Scope: "send:* subscribe:*"})),
			hello: codes.OK, bye: codes.OK},
		{name: "valid, no scopes", header: bearer(is.Token("k1", authtest.Claims{Subject: "carol"})),
			hello: codes.PermissionDenied, bye: codes.PermissionDenied},
		{name: "API key as bearer", header: bearer("key-hello"), hello: codes.OK, bye: codes.PermissionDenied},
		{name: "API key header", header: [2]string{"X-Api-Key", "key-hello"}, hello: codes.OK, bye: codes.PermissionDenied},
	}
}

// transport sends one event of type typ, or subscribes to typ, with the
// credential in header, and returns the code it got.
type transport struct {
	name string
	try  func(t *testing.T, s *authSink, header [2]string, typ string, c credentialCase) codes.Code
}

// codeOfHTTP maps an HTTP status to the gRPC code the API documents.
func codeOfHTTP(t *testing.T, resp *http.Response, c credentialCase) codes.Code {
	t.Helper()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return codes.OK
	case http.StatusUnauthorized:
		want := "Bearer"
		if c.invalidHeader {
			want = `Bearer error="invalid_token"`
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("WWW-Authenticate = %q, want %q", got, want)
		}
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	}
	t.Errorf("HTTP status %d", resp.StatusCode)
	return codes.Unknown
}

func outgoing(ctx context.Context, header [2]string) context.Context {
	if header[0] == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, strings.ToLower(header[0]), header[1])
}

// subscribeHTTP opens GET /v1/events:subscribe and returns its status
// once the headers are in.
func subscribeHTTP(t *testing.T, s *authSink, header [2]string, typ, accept string, c credentialCase) codes.Code {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/events:subscribe?types="+typ, nil)
	if header[0] != "" {
		req.Header.Set(header[0], header[1])
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return codeOfHTTP(t, resp, c)
}

var transports = []transport{
	{"REST", func(t *testing.T, s *authSink, h [2]string, typ string, c credentialCase) codes.Code {
		var hdr []string
		if h[0] != "" {
			hdr = []string{h[0], h[1]}
		}
		resp, _ := s.post(testContext(t), `{"type":"`+typ+`","payload":"hi"}`, hdr...)
		return codeOfHTTP(t, resp, c)
	}},
	{"SSE", func(t *testing.T, s *authSink, h [2]string, typ string, c credentialCase) codes.Code {
		return subscribeHTTP(t, s, h, typ, "text/event-stream", c)
	}},
	{"NDJSON", func(t *testing.T, s *authSink, h [2]string, typ string, c credentialCase) codes.Code {
		return subscribeHTTP(t, s, h, typ, "", c)
	}},
	{"Send", func(t *testing.T, s *authSink, h [2]string, typ string, _ credentialCase) codes.Code {
		_, err := s.sinkClient().Send(outgoing(testContext(t), h), &eventv1.SendRequest{Event: &eventv1.Event{Type: mustType(t, typ)}})
		return status.Code(err)
	}},
	{"Stream", func(t *testing.T, s *authSink, h [2]string, typ string, _ credentialCase) codes.Code {
		return streamOne(t, s, h, &eventv1.StreamRequest{Event: &eventv1.Event{Id: "only", Type: mustType(t, typ)}})
	}},
	{"Stream batch entry", func(t *testing.T, s *authSink, h [2]string, typ string, _ credentialCase) codes.Code {
		// The entry under test comes second, after one of the same type.
		ev := func(id string) *eventv1.StreamRequest {
			return &eventv1.StreamRequest{Event: &eventv1.Event{Id: id, Type: mustType(t, typ)}}
		}
		return streamOne(t, s, h, &eventv1.StreamRequest{Batch: []*eventv1.StreamRequest{ev("first"), ev("second")}})
	}},
	{"Subscribe", func(t *testing.T, s *authSink, h [2]string, typ string, _ credentialCase) codes.Code {
		ctx, cancel := context.WithCancel(outgoing(testContext(t), h))
		defer cancel()
		sub, err := s.sinkClient().Subscribe(ctx, &eventv1.SubscribeRequest{Types: []eventv1.Type{mustType(t, typ)}})
		if err != nil {
			return status.Code(err)
		}
		// Headers come once subscribed; without them, the call failed.
		if md, _ := sub.Header(); md != nil {
			return codes.OK
		}
		_, err = sub.Recv()
		return status.Code(err)
	}},
}

// streamOne sends req on a new Stream and returns the code of the last
// answer (or of the stream, if it failed).
func streamOne(t *testing.T, s *authSink, h [2]string, req *eventv1.StreamRequest) codes.Code {
	ctx, cancel := context.WithCancel(outgoing(testContext(t), h))
	defer cancel()
	st, err := s.sinkClient().Stream(ctx)
	if err != nil {
		return status.Code(err)
	}
	if err := st.Send(req); err != nil {
		_, err = st.Recv()
		return status.Code(err)
	}
	want := max(1, len(req.Batch))
	var last codes.Code
	for got := 0; got < want; {
		resp, err := st.Recv()
		if err != nil {
			return status.Code(err)
		}
		answers := append([]*eventv1.StreamResponse{resp}, resp.Batch...)
		if len(resp.Batch) > 0 {
			answers = resp.Batch
		}
		for _, a := range answers {
			got++
			last = codes.OK
			if a.GetError() != nil {
				last = codes.Code(a.GetError().GetCode())
			}
		}
	}
	return last
}

func mustType(t *testing.T, name string) eventv1.Type {
	t.Helper()
	v, ok := eventv1.Type_value[name]
	if !ok {
		t.Fatalf("no type %s", name)
	}
	return eventv1.Type(v)
}

// TestAuthMatrix tries every credential on every transport, for an
// allowed and a refused type, then removes an API key from the file and
// checks every transport refuses it once the file is reloaded.
func TestAuthMatrix(t *testing.T) {
	s := startAuthSink(t)
	for _, c := range credentialCases(t, s) {
		for _, tr := range transports {
			for _, typ := range []struct {
				name string
				want codes.Code
			}{{"TYPE_HELLO", c.hello}, {"TYPE_GOODBYE", c.bye}} {
				if got := tr.try(t, s, c.header, typ.name, c); got != typ.want {
					t.Errorf("%s, %s, %s: got %v, want %v", c.name, tr.name, typ.name, got, typ.want)
				}
			}
		}
	}

	// Remove key-gone: once the file is read again (every 5s), it is refused.
	gone := credentialCase{name: "removed API key", header: [2]string{"X-Api-Key", "key-gone"}, invalidHeader: true}
	if got := transports[0].try(t, s, gone.header, "TYPE_HELLO", gone); got != codes.OK {
		t.Fatalf("key-gone before its removal: %v", got)
	}
	authtest.WriteAPIKeys(t, s.keysFile, map[string]auth.APIKey{
		"key-hello": {Principal: "svc-hello", Scopes: []string{"send:hello", "subscribe:hello", auth.MetricsScope}},
	})
	ctx := testContext(t)
	for transports[3].try(t, s, gone.header, "TYPE_HELLO", gone) == codes.OK {
		select {
		case <-ctx.Done():
			t.Fatal("the removed key is still accepted")
		case <-time.After(100 * time.Millisecond): // polling the sink's reload
		}
	}
	for _, tr := range transports {
		if got := tr.try(t, s, gone.header, "TYPE_HELLO", gone); got != codes.Unauthenticated {
			t.Errorf("removed API key, %s: got %v, want Unauthenticated", tr.name, got)
		}
	}
	if !strings.Contains(s.log.String(), "auth: reloaded api-keys") {
		t.Error("the reload was not logged")
	}
	for _, secret := range []string{"key-hello", "key-gone", s.issuer.Token("k1", authtest.Claims{Subject: "alice"})[:40]} {
		if strings.Contains(s.log.String(), secret) {
			t.Errorf("the log holds a credential: %q", secret)
		}
	}
}

// TestAuthStreamGoesOn checks that a refused event on a Stream is answered
// alone: the events around it, on the same stream, are served.
func TestAuthStreamGoesOn(t *testing.T) {
	s := startAuthSink(t)
	ctx := outgoing(testContext(t), [2]string{"X-Api-Key", "key-hello"})
	st, err := s.sinkClient().Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []eventv1.Type{eventv1.Type_TYPE_HELLO, eventv1.Type_TYPE_GOODBYE, eventv1.Type_TYPE_HELLO} {
		if err := st.Send(&eventv1.StreamRequest{Event: &eventv1.Event{Id: strconv.Itoa(i), Type: typ}}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]codes.Code{}
	for len(got) < 3 {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetId()] = codes.Code(resp.GetError().GetCode())
	}
	want := map[string]codes.Code{"0": codes.OK, "1": codes.PermissionDenied, "2": codes.OK}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
}

// TestAuthExpiry checks that a credential's expiry ends the long-lived
// calls it opened, on every transport, and that a Stream whose client
// refreshes its token in-band goes on.
func TestAuthExpiry(t *testing.T) {
	s := startAuthSink(t, "--sse-heartbeat", "50ms")
	// shortLived is a token that expires in one to two seconds: JWT times
	// are whole seconds, and the leeway (30s) is added to its exp.
	shortLived := func(sub string) (time.Time, [2]string) {
		exp := time.Now().Add(2*time.Second - auth.DefaultLeeway).Truncate(time.Second)
		tok := s.issuer.Token("k1", authtest.Claims{Subject: sub, Scope: "send:* subscribe:*", ExpiresAt: exp})
		return exp, [2]string{"Authorization", "Bearer " + tok}
	}
	ctx := testContext(t)

	t.Run("Subscribe", func(t *testing.T) {
		_, h := shortLived("dave")
		sub, err := s.sinkClient().Subscribe(outgoing(ctx, h), &eventv1.SubscribeRequest{Types: []eventv1.Type{eventv1.Type_TYPE_HELLO}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sub.Recv()
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Subscribe ended with %v, want UNAUTHENTICATED: credential expired", err)
		}
	})
	t.Run("SSE", func(t *testing.T) {
		_, h := shortLived("dave")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/events:subscribe?types=hello", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set(h[0], h[1])
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		all := strings.Join(lines, "\n")
		if !strings.Contains(all, "event: error") || !strings.Contains(all, `"code":16`) {
			t.Errorf("SSE stream ended with %q, want an error event with UNAUTHENTICATED", all)
		}
	})
	t.Run("Stream", func(t *testing.T) {
		_, h := shortLived("dave")
		st, err := s.sinkClient().Stream(outgoing(ctx, h))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&eventv1.StreamRequest{Event: &eventv1.Event{Id: "1", Type: eventv1.Type_TYPE_HELLO}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := st.Recv(); err != nil || resp.GetError() != nil {
			t.Fatalf("first event: %v %v", resp, err)
		}
		_, err = st.Recv()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("Stream ended with %v, want UNAUTHENTICATED", err)
		}
	})
	t.Run("Stream refreshed", func(t *testing.T) {
		exp, h := shortLived("erin")
		st, err := s.sinkClient().Stream(outgoing(ctx, h))
		if err != nil {
			t.Fatal(err)
		}
		// Another principal's token is refused, and the stream goes on.
		other := s.issuer.Token("k1", authtest.Claims{Subject: "mallory", Scope: "send:*"})
		if err := st.Send(&eventv1.StreamRequest{Credential: other}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil || codes.Code(resp.GetError().GetCode()) != codes.PermissionDenied || resp.GetId() != "" {
			t.Fatalf("refresh with another's token: %v %v, want PERMISSION_DENIED", resp, err)
		}
		long := s.issuer.Token("k1", authtest.Claims{Subject: "erin", Scope: "send:*"})
		if err := st.Send(&eventv1.StreamRequest{Credential: long}); err != nil {
			t.Fatal(err)
		}
		resp, err = st.Recv()
		if err != nil || resp.GetCredentialExpires() == nil || !resp.GetCredentialExpires().AsTime().After(time.Now().Add(time.Minute)) {
			t.Fatalf("refresh: %v %v, want credential_expires in an hour", resp, err)
		}
		// Past the first token's expiry, events still flow.
		for time.Now().Before(exp.Add(auth.DefaultLeeway + 500*time.Millisecond)) {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(100 * time.Millisecond): // waiting for the first token to expire
			}
		}
		if err := st.Send(&eventv1.StreamRequest{Event: &eventv1.Event{Id: "after", Type: eventv1.Type_TYPE_HELLO}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := st.Recv(); err != nil || resp.GetError() != nil || resp.GetId() != "after" {
			t.Fatalf("event after the first token's expiry: %v %v", resp, err)
		}
	})
	t.Run("Go client refreshes", func(t *testing.T) {
		var mu sync.Mutex
		issued := 0
		conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := client.New(conn, client.Options{Credential: func(context.Context) (string, time.Time, error) {
			mu.Lock()
			issued++
			mu.Unlock()
			exp, h := shortLived("frank")
			return strings.TrimPrefix(h[1], "Bearer "), exp.Add(auth.DefaultLeeway), nil
		}})
		defer c.Close()
		// Send until the first token has expired, and then once more.
		exp := time.Now().Add(2 * time.Second)
		for n := 0; ; n++ {
			resp, err := c.Send(ctx, &eventv1.Event{Type: eventv1.Type_TYPE_HELLO})
			if err != nil || resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
				t.Fatalf("event %d: %v %v", n, resp, err)
			}
			if time.Now().After(exp.Add(500 * time.Millisecond)) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond): // the client's pace
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if issued < 2 {
			t.Errorf("credentials issued: %d, want a refresh", issued)
		}
		if strings.Contains(s.log.String(), `credential expired" principal=frank`) {
			t.Errorf("the stream of frank ended by expiry:\n%s", s.log)
		}
	})
}

// TestRateLimitAnswers checks what a client over --rate-limit gets: 429
// with Retry-After over HTTP, RESOURCE_EXHAUSTED with a RetryInfo over
// gRPC, counted; and that the limit is the principal's, whatever the
// transport.
func TestRateLimitAnswers(t *testing.T) {
	s := startAuthSink(t, "--rate-limit", "0.5", "--rate-burst", "2")
	ctx := testContext(t)
	key := [2]string{"X-Api-Key", "key-hello"}
	for i := range 2 { // the burst: one over REST, one over gRPC
		if i == 0 {
			if resp, body := s.post(ctx, `{"type":"TYPE_HELLO"}`, key[0], key[1]); resp.StatusCode != http.StatusOK {
				t.Fatalf("first event: %d %s", resp.StatusCode, body)
			}
		} else if _, err := s.sinkClient().Send(outgoing(ctx, key), &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO}}); err != nil {
			t.Fatalf("second event: %v", err)
		}
	}
	resp, body := s.post(ctx, `{"type":"TYPE_HELLO"}`, key[0], key[1])
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("over the limit: %d, Retry-After %q, %s; want 429 with Retry-After: 2", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	_, err := s.sinkClient().Send(outgoing(ctx, key), &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO}})
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	if status.Code(err) != codes.ResourceExhausted || delay != 2*time.Second {
		t.Errorf("over the limit over gRPC: %v, RetryInfo %v; want RESOURCE_EXHAUSTED, 2s", err, delay)
	}
	// Another principal is not limited.
	tok := s.issuer.Token("k1", authtest.Claims{Subject: "other", Scope: "send:*"})
	if resp, body := s.post(ctx, `{"type":"TYPE_HELLO"}`, "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK {
		t.Errorf("another principal: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	req.Header.Set(key[0], key[1])
	if _, body := s.do(ctx, req); !strings.Contains(string(body), `eventproc_rate_limited_total{by="principal"} 2`) {
		t.Errorf("metrics lack eventproc_rate_limited_total{by=\"principal\"} 2")
	}
}

// TestAuthPaths checks which paths need what once authentication is on:
// probes and the console's page need nothing, /v1/types a credential,
// /metrics and /v1/stats the read:metrics scope.
func TestAuthPaths(t *testing.T) {
	s := startAuthSink(t)
	ctx := testContext(t)
	noMetrics := s.issuer.Token("k1", authtest.Claims{Subject: "alice", Scope: "send:*"})
	for _, tc := range []struct {
		path, credential string
		want             int
	}{
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
		{"/", "", http.StatusOK},
		{"/console.js", "", http.StatusOK},
		{"/v1/types", "", http.StatusUnauthorized},
		{"/v1/types", noMetrics, http.StatusOK},
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", noMetrics, http.StatusForbidden},
		{"/metrics", "key-hello", http.StatusOK},
		{"/v1/stats", "", http.StatusUnauthorized},
		{"/v1/stats", noMetrics, http.StatusForbidden},
		{"/v1/stats", "key-hello", http.StatusOK},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+tc.path, nil)
		if tc.credential != "" {
			req.Header.Set("Authorization", "Bearer "+tc.credential)
		}
		if resp, body := s.do(ctx, req); resp.StatusCode != tc.want {
			t.Errorf("GET %s with %q: %d %.100s, want %d", tc.path, tc.credential, resp.StatusCode, body, tc.want)
		}
	}
}
