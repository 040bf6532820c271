package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestConsoleFiles: the console's page, script and style sheet are served
// with their content types and a strict Content-Security-Policy; other
// paths stay 404.
func TestConsoleFiles(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := serve(t, &stubBackend{})
	tests := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html; charset=utf-8", "<title>eventproc console</title>"},
		{"/index.html", "text/html; charset=utf-8", `<script src="console.js" defer></script>`},
		{"/console.js", "text/javascript; charset=utf-8", "new EventSource("},
		{"/console.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := s.get(ctx, tc.path)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("GET %s: %d, body lacks %q", tc.path, resp.StatusCode, tc.wantBody)
			}
			for key, want := range map[string]string{
				"Content-Type":            tc.wantType,
				"Content-Security-Policy": consoleCSP,
				"X-Content-Type-Options":  "nosniff",
				"Cache-Control":           "no-cache",
			} {
				if got := resp.Header.Get(key); got != want {
					t.Errorf("%s: %q, want %q", key, got, want)
				}
			}
			// Revalidation with the ETag is answered 304.
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+tc.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			if resp, _ := s.do(ctx, req); resp.StatusCode != http.StatusNotModified {
				t.Errorf("GET with If-None-Match: %d, want 304", resp.StatusCode)
			}
		})
	}
	resp, body := s.get(ctx, "/nope.html")
	checkError(t, resp, body, http.StatusNotFound, 5, "no such path: /nope.html")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/", nil)
	resp, body = s.do(ctx, req)
	checkError(t, resp, body, http.StatusMethodNotAllowed, 12, "not allowed")
}

// TestTypes: GET /v1/types lists the API's event types in enum order, and
// which have a route.
func TestTypes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := serve(t, &stubBackend{routes: []sink.RouteStatus{{Type: "TYPE_GOODBYE"}}})
	resp, body := s.get(ctx, "/v1/types")
	var got struct {
		Types []typeInfo `json:"types"`
	}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/types: %d %s (%v)", resp.StatusCode, body, err)
	}
	want := []typeInfo{{"TYPE_HELLO", 1, false}, {"TYPE_GOODBYE", 2, true}}
	if len(got.Types) != len(eventv1.Type_name)-1 {
		t.Fatalf("types %+v, want every type but TYPE_UNSPECIFIED", got.Types)
	}
	for i := range want {
		if got.Types[i] != want[i] {
			t.Errorf("types[%d] = %+v, want %+v", i, got.Types[i], want[i])
		}
	}
}

// TestOpenAPIPublic: /openapi.json is served without authentication, as
// JSON.
func TestOpenAPIPublic(t *testing.T) {
	deny := func(*http.Request) (context.Context, error) { return nil, status.Error(codes.Unauthenticated, "no") }
	api := newAPI(t, &stubBackend{}, Options{Authenticate: deny})
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequestWithContext(testContext(t), http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(rec.Body.String(), "{\n  \"components\"") {
		t.Errorf("GET /openapi.json: %d %s %.40q, want 200 with the spec", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}
