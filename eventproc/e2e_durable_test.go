//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// TestDurableSurvivesSIGKILL posts durable events while the processor is
// down, kills the real eventproc with SIGKILL, starts it again on the same
// --data-dir, then starts the processor: every event answered 202 is
// delivered (and its reply published to subscribers).
func TestDurableSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	dir := buildBinaries(t)
	ctx := testContext(t)
	dataDir := t.TempDir()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	procAddr := lis.Addr().String()
	lis.Close() // the processor comes up on it later
	args := []string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello=" + procAddr,
		"--durable", "hello", "--data-dir", dataDir, "--memory-budget", "off"}
	start := func() (*sinkProc, *binary) {
		b := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`, args...)
		s := &sinkProc{t: t, url: "http://" + b.wait(ctx)["http"], client: &http.Client{Transport: &http.Transport{}}}
		t.Cleanup(s.client.CloseIdleConnections)
		return s, b
	}

	first, firstBin := start()
	first.waitRoute(ctx, "TYPE_HELLO", true) // ready: the store is up, with no processor
	const n = 20
	ids := make(map[string]bool, n)
	for i := range n {
		resp, body := first.post(ctx, fmt.Sprintf(`{"type":"TYPE_HELLO","payload":%d}`, i))
		var stored struct {
			ID        string `json:"id"`
			Sequence  uint64 `json:"sequence"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(body, &stored); resp.StatusCode != http.StatusAccepted || err != nil ||
			stored.ID == "" || stored.Sequence != uint64(i+1) || stored.Duplicate {
			t.Fatalf("POST %d: %d %s, want 202 with an id, sequence %d, not a duplicate", i, resp.StatusCode, body, i+1)
		}
		ids[stored.ID] = true
	}
	if err := firstBin.cmd.Process.Kill(); err != nil { // SIGKILL: no drain, no flush
		t.Fatal(err)
	}
	<-firstBin.done

	second, secondBin := start()
	second.waitRoute(ctx, "TYPE_HELLO", true)
	// The replies of delivered durable events are published.
	resp, _ := second.openSubscription(ctx, "/v1/events:subscribe?types=hello")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	defer resp.Body.Close()
	proc := startBinary(t, ctx, filepath.Join(dir, "proc"), `listening on (\S+)`, "--addr", procAddr)
	proc.wait(ctx)
	lines := bufio.NewScanner(resp.Body)
	for len(ids) > 0 && lines.Scan() {
		var m struct {
			Result struct {
				Event struct {
					ID       string            `json:"id"`
					Metadata map[string]string `json:"metadata"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("subscription line %q: %v", lines.Bytes(), err)
		}
		ev := m.Result.Event
		if ev.Metadata["eventproc-delivery"] == "" || ev.Metadata["eventproc-accepted"] == "" {
			t.Errorf("delivered event %s without the delivery metadata: %v", ev.ID, ev.Metadata)
		}
		delete(ids, ev.ID)
	}
	if len(ids) > 0 {
		t.Fatalf("%d events answered 202 were not delivered after the restart (%v)", len(ids), lines.Err())
	}
	secondBin.terminate()
	proc.terminate()
	secondBin.checkExit(ctx)
	proc.checkExit(ctx)
}
