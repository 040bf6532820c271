package httpapi

import (
	_ "embed"
	"net/http"
)

// openapiJSON is the API's OpenAPI 3 spec, served at /openapi.json. `make
// generate` writes it (internal/openapigen): protoc-gen-openapiv2's
// output for event/v1/sink.proto, converted, plus the HTTP front's
// statuses, media types and paths.
//
//go:embed openapi.json
var openapiJSON []byte

// openapiPath serves openapiJSON, without authentication.
const openapiPath = "/openapi.json"

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openapiJSON)
}
