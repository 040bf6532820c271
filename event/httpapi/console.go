package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The browser console: one page and its script and style sheet, embedded in
// the binary and served at GET / (also /index.html), /console.js and
// /console.css. No build step and nothing loaded from elsewhere; the page's
// Content-Security-Policy allows only same-origin scripts, styles and
// requests. It uses the public API like any client: POST /v1/events, the
// SSE form of GET /v1/events:subscribe, GET /readyz and GET /v1/types.

//go:embed console
var consoleFiles embed.FS

// consoleCSP is the Content-Security-Policy of the console's responses.
// img-src allows data: for the inline favicon.
const consoleCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consolePaths adds the console's files to paths.
func consolePaths(paths map[string]http.HandlerFunc) error {
	for p, name := range map[string]string{
		"/":            "index.html",
		"/index.html":  "index.html",
		"/console.js":  "console.js",
		"/console.css": "console.css",
	} {
		body, err := fs.ReadFile(consoleFiles, path.Join("console", name))
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		paths[p] = func(w http.ResponseWriter, r *http.Request) {
			hd := w.Header()
			hd.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
			hd.Set("ETag", etag)
			hd.Set("Cache-Control", "no-cache") // revalidate: the binary may have changed
			hd.Set("X-Content-Type-Options", "nosniff")
			hd.Set("Referrer-Policy", "no-referrer")
			hd.Set("Content-Security-Policy", consoleCSP)
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body)) // answers If-None-Match with 304
		}
	}
	return nil
}

// typeInfo is one entry of GET /v1/types.
type typeInfo struct {
	// Name is the enum value name, as the JSON API spells it.
	Name string `json:"name"`
	// Number is its enum number.
	Number int32 `json:"number"`
	// Routed is true when the sink has a route for the type.
	Routed bool `json:"routed"`
}

// types answers GET /v1/types with every event type the API defines (but
// TYPE_UNSPECIFIED), in enum order, and whether it has a route:
//
//	{"types":[{"name":"TYPE_HELLO","number":1,"routed":true}, ...]}
func (h *Handler) types(w http.ResponseWriter, _ *http.Request) {
	routed := make(map[string]bool)
	for _, r := range h.backend.Status() {
		routed[r.Type] = true
	}
	numbers := make([]int32, 0, len(eventv1.Type_name))
	for n := range eventv1.Type_name {
		if n != int32(eventv1.Type_TYPE_UNSPECIFIED) {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	body := struct {
		Types []typeInfo `json:"types"`
	}{Types: make([]typeInfo, 0, len(numbers))}
	for _, n := range numbers {
		name := eventv1.Type_name[n]
		body.Types = append(body.Types, typeInfo{Name: name, Number: n, Routed: routed[name]})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}
