package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The spec every sink serves is the same (embedded): loaded once, from
// the first sink that is asked.
var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

// openAPI returns the spec s serves at /openapi.json, and its router.
func (s *sinkProc) openAPI(ctx context.Context) (*openapi3.T, routers.Router) {
	s.t.Helper()
	specOnce.Do(func() {
		// The streams are text, read whole here (they end in these tests).
		text := func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		}
		openapi3filter.RegisterBodyDecoder("text/event-stream", text)
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", text)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/openapi.json", nil)
		if err != nil {
			specErr = err
			return
		}
		resp, err := s.client.Do(req)
		if err != nil {
			specErr = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			specErr = err
			return
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			specErr = errors.New("GET /openapi.json: " + resp.Status)
			return
		}
		loader := openapi3.NewLoader()
		if specDoc, specErr = loader.LoadFromData(b); specErr != nil {
			return
		}
		if specErr = specDoc.Validate(loader.Context); specErr != nil {
			return
		}
		specRouter, specErr = gorillamux.NewRouter(specDoc)
	})
	if specErr != nil {
		s.t.Fatalf("the served OpenAPI spec: %v", specErr)
	}
	return specDoc, specRouter
}

// checkOpenAPI validates an exchange with s against the spec it serves:
// the response always (its status must be declared, its body and headers
// must match), the request when the sink accepted it (2xx). A wrong
// method's 405 is checked against the path's operation for the method in
// Allow; an unknown path's 404 body against the error schema.
func checkOpenAPI(t *testing.T, ctx context.Context, s *sinkProc, req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	t.Helper()
	doc, router := s.openAPI(ctx)
	req = req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	if len(reqBody) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json") // what the sink reads such a body as
	}
	route, params, err := router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed) && resp.StatusCode == http.StatusMethodNotAllowed:
		allowed := req.Clone(ctx)
		allowed.Method = resp.Header.Get("Allow")
		if route, params, err = router.FindRoute(allowed); err != nil {
			t.Fatalf("OpenAPI: %s %s: no operation for the Allow header %q: %v", req.Method, req.URL.Path, allowed.Method, err)
		}
	case errors.Is(err, routers.ErrPathNotFound) && resp.StatusCode == http.StatusNotFound:
		if err := doc.Components.Schemas["rpcStatus"].Value.VisitJSON(decodeJSON(t, body)); err != nil {
			t.Errorf("OpenAPI: 404 body %s is not an rpcStatus: %v", body, err)
		}
		return
	case err != nil:
		t.Fatalf("OpenAPI: %s %s: %v", req.Method, req.URL.Path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && resp.StatusCode < 300 {
		t.Errorf("OpenAPI: the sink answered %d to a request the spec rejects: %v", resp.StatusCode, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("OpenAPI: %s %s answered %d %s (%q), not as the spec says: %v", req.Method, req.URL.Path,
			resp.StatusCode, resp.Header.Get("Content-Type"), truncate(body), err)
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	return v
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// TestOpenAPIRows sends the rows of the README's status table that TestSend
// does not (it validates its own against the spec as it goes) and more
// paths, and validates each exchange against the served spec: broadcast
// 202, authentication's 401, 403 and 429, the 408 of a stalled body, the
// CloudEvents modes, the subscribe stream, tickets and the GET paths.
func TestOpenAPIRows(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	plain := echoFixtureWith(t, ctx, "--route", "goodbye=127.0.0.1:1", "--broadcast", "hello", "--body-read-timeout", "100ms")
	authed := startAuthSink(t, "--rate-limit", "0.001", "--rate-burst", "1")
	durable := startSink(t, "--route", "hello="+deadAddr(t), "--durable", "hello", "--data-dir", t.TempDir())
	durable.waitRoute(ctx, "TYPE_HELLO", true)
	type row struct {
		name, method, path, body string
		header                   map[string]string
		sink                     *sinkProc
		stall                    bool // the body sends its first bytes, then nothing
		tries                    int  // sent until it gets want, at most this often
		want                     int
	}
	ce := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "TYPE_HELLO", "Content-Type": "application/json"}
	rows := []row{
		{name: "broadcast route: 202", body: `{"type":"TYPE_HELLO"}`, want: 202},
		{name: "CloudEvents binary: 202", body: `{"a":1}`, header: ce, want: 202},
		{name: "CloudEvents structured: 202", body: `{"specversion":"1.0","id":"1","source":"/t","type":"TYPE_HELLO","data":1}`,
			header: map[string]string{"Content-Type": "application/cloudevents+json"}, want: 202},
		{name: "CloudEvents batch: 200", body: `[{"specversion":"1.0","id":"1","source":"/t","type":"TYPE_HELLO"},{"specversion":"1.0","id":"2","source":"/t","type":"x"}]`,
			header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, want: 200},
		{name: "CloudEvents unmapped type: 400", body: `{}`, header: map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "nope"}, want: 400},
		{name: "no live processor: 503", body: `{"type":"TYPE_GOODBYE"}`, want: 503},
		{name: "stalled body: 408", body: `{"type":`, stall: true, want: 408},
		{name: "subscribe without types: 400", method: "GET", path: "/v1/events:subscribe", want: 400},
		{name: "subscribe stream (NDJSON, ends at its deadline)", method: "GET", path: "/v1/events:subscribe?types=hello&format=cloudevents",
			header: map[string]string{"Request-Timeout": "50ms"}, want: 200},
		{name: "subscribe stream (SSE, ends at its deadline)", method: "GET", path: "/v1/events:subscribe?types=hello",
			header: map[string]string{"Request-Timeout": "50ms", "Accept": "text/event-stream"}, want: 200},
		{name: "types", method: "GET", path: "/v1/types", want: 200},
		{name: "stats", method: "GET", path: "/v1/stats", want: 200},
		{name: "readyz: 503 (goodbye has no live processor)", method: "GET", path: "/readyz", want: 503},
		{name: "healthz", method: "GET", path: "/healthz", want: 200},
		{name: "tickets without authentication: 404", path: "/v1/tickets", want: 404},
		{name: "no credential: 401", sink: authed.sinkProc, body: `{"type":"TYPE_HELLO"}`, want: 401},
		{name: "type not in the scopes: 403", sink: authed.sinkProc, body: `{"type":"TYPE_GOODBYE"}`,
			header: map[string]string{"x-api-key": "key-hello"}, want: 403},
		{name: "ticket", sink: authed.sinkProc, path: "/v1/tickets", header: map[string]string{"x-api-key": "key-gone"}, want: 200},
		{name: "rate limited: 429", sink: authed.sinkProc, body: `{"type":"TYPE_HELLO"}`,
			header: map[string]string{"x-api-key": "key-hello"}, tries: 3, want: 429},
		{name: "stats without a credential: 401", sink: authed.sinkProc, method: "GET", path: "/v1/stats", want: 401},
		{name: "stats with read:metrics", sink: authed.sinkProc, method: "GET", path: "/v1/stats",
			header: map[string]string{"x-api-key": "key-hello"}, want: 200},
		{name: "readyz needs no credential", sink: authed.sinkProc, method: "GET", path: "/readyz", want: 200},
		{name: "durable route: 202", sink: durable, body: `{"type":"TYPE_HELLO","payload":1}`,
			header: map[string]string{"Idempotency-Key": "k1"}, want: 202},
		{name: "durable route, key reused for another event: 422", sink: durable, body: `{"type":"TYPE_HELLO","payload":2}`,
			header: map[string]string{"Idempotency-Key": "k1"}, want: 422},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			s := r.sink
			if s == nil {
				s = plain.sink
			}
			method, path := r.method, r.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/events"
			}
			for try := 1; ; try++ {
				var body io.Reader = strings.NewReader(r.body)
				if r.stall {
					pr, pw := io.Pipe()
					go func() { _, _ = pw.Write([]byte(r.body)) }() // then nothing: the sink cuts it off
					t.Cleanup(func() { pw.Close() })
					body = pr
				}
				req, err := http.NewRequestWithContext(ctx, method, s.url+path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range r.header {
					req.Header.Set(k, v)
				}
				resp, got := s.do(ctx, req)
				checkOpenAPI(t, ctx, s, req, []byte(r.body), resp, got)
				if resp.StatusCode == r.want {
					return
				}
				if try >= max(r.tries, 1) {
					t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, got, r.want)
				}
			}
		})
	}
}
