// Command openapigen writes the OpenAPI 3 spec the sink serves at
// /openapi.json (event/httpapi/openapi.json): the OpenAPI v2 that
// protoc-gen-openapiv2 generates from event/v1/sink.proto
// (docs/openapi/eventproc.swagger.json), converted with kin-openapi's
// openapi2conv, plus what the proto cannot say: every status the HTTP front
// answers, the CloudEvents media types and headers, the subscribe stream's
// media types and query, POST /v1/tickets, and the other GET paths. `make
// generate` runs it; event/httpapi's tests validate live traffic against
// its output.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

func main() {
	in := flag.String("in", "docs/openapi/eventproc.swagger.json", "the generated OpenAPI v2")
	out := flag.String("out", "event/httpapi/openapi.json", "where to write the OpenAPI 3 spec")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	spec, err := convert(b)
	if err != nil {
		return err
	}
	return os.WriteFile(out, spec, 0o644)
}

// convert turns the v2 spec into the served v3 spec, validated.
func convert(v2 []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, fmt.Errorf("OpenAPI v2: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	b, err := json.Marshal(doc3)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	augment(doc)
	b, err = json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	loaded, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("augmented spec: %w", err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("augmented spec is not valid OpenAPI 3: %w", err)
	}
	return append(b, '\n'), nil
}
