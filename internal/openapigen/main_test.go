package main

import (
	"bytes"
	"os"
	"testing"
)

// TestSpecCurrent: the committed spec is what the generator makes of the
// committed OpenAPI v2 (`make generate` rewrites both).
func TestSpecCurrent(t *testing.T) {
	v2, err := os.ReadFile("../../docs/openapi/eventproc.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := convert(v2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../event/httpapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("event/httpapi/openapi.json is stale: run make generate (or go run ./internal/openapigen)")
	}
}
