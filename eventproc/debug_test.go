package main

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestDebugAddr: --debug-addr serves the profiler and runtime variables on
// a listener of its own; without it there is no such listener.
func TestDebugAddr(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	p := startProcessor(t)
	s := startSink(t, "--route", "hello="+p.addr, "--debug-addr", "127.0.0.1:0")
	debug := s.log.addr("debug")
	if debug == "" {
		t.Fatal("no debug listening line")
	}
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+debug+path, nil)
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/debug/vars")
	var vars struct {
		Memstats struct{ Mallocs uint64 } `json:"memstats"`
	}
	err := json.NewDecoder(resp.Body).Decode(&vars)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || vars.Memstats.Mallocs == 0 {
		t.Errorf("/debug/vars: %d, %v, mallocs %d", resp.StatusCode, err, vars.Memstats.Mallocs)
	}
	resp = get("/debug/pprof/goroutine?debug=1")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/goroutine: %d", resp.StatusCode)
	}
	// The API port does not serve them.
	if resp, _ := s.get(ctx, "/debug/vars"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/vars on the API port: %d, want 404", resp.StatusCode)
	}
}
