package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The browser console: a page, script and style sheet served at GET /
// (also /index.html), /console.js and /console.css, using the public API
// like any client, with only same-origin scripts, styles and requests.

//go:embed console
var consoleFiles embed.FS

// consoleCSP is the Content-Security-Policy of the console's responses.
// img-src allows data: for the inline favicon.
const consoleCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consolePaths adds the console's files to paths.
func consolePaths(paths map[string]http.HandlerFunc, public map[string]bool) error {
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
		public[p] = true // the page asks for a credential itself, if needed
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

// types answers GET /v1/types with every event type the API declares (but
// TYPE_UNSPECIFIED), in its order, and whether it has a route:
//
//	{"types":[{"name":"TYPE_HELLO","number":1,"routed":true}, ...]}
func (h *Handler) types(w http.ResponseWriter, _ *http.Request) {
	routed := make(map[string]bool)
	for _, r := range h.backend.Status() {
		routed[r.Type] = true
	}
	var body struct {
		Types []typeInfo `json:"types"`
	}
	values := eventv1.Type(0).Descriptor().Values()
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 {
			name := string(v.Name())
			body.Types = append(body.Types, typeInfo{Name: name, Number: int32(v.Number()), Routed: routed[name]})
		}
	}
	writeJSON(w, http.StatusOK, body)
}
