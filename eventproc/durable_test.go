package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDurableHTTP: a durable route answers 202 with the stored event's id
// and sequence, a retry with the same Idempotency-Key the same with
// "duplicate": true, and the key with another event 422; /readyz shows the
// store.
func TestDurableHTTP(t *testing.T) {
	ctx := testContext(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String() // no processor: events wait in the store
	lis.Close()
	s := startSink(t, "--route", "hello="+addr, "--durable", "hello", "--data-dir", t.TempDir())
	s.waitRoute(ctx, "TYPE_HELLO", true)
	if _, body := s.get(ctx, "/readyz"); !strings.Contains(string(body), `"durable":true,"store":"connected"`) {
		t.Errorf("/readyz = %s, want the route durable with its store connected", body)
	}
	type stored struct {
		ID        string `json:"id"`
		Sequence  uint64 `json:"sequence"`
		Duplicate bool   `json:"duplicate"`
	}
	post := func(body, key string, want int) stored {
		t.Helper()
		resp, b := s.post(ctx, body, "Idempotency-Key", key)
		if resp.StatusCode != want {
			t.Fatalf("POST %s with key %q: %d %s, want %d", body, key, resp.StatusCode, b, want)
		}
		var st stored
		if want == http.StatusAccepted {
			if err := json.Unmarshal(b, &st); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("202 body %q (%s): %v", b, resp.Header.Get("Content-Type"), err)
			}
		}
		return st
	}
	first := post(`{"type":"TYPE_HELLO","payload":1}`, "order-1", http.StatusAccepted)
	again := post(`{"type":"TYPE_HELLO","payload":1}`, "order-1", http.StatusAccepted)
	if first.ID == "" || first.Sequence != 1 || first.Duplicate || again != (stored{first.ID, 1, true}) {
		t.Errorf("first %+v, retry %+v; want the same id and sequence 1, the retry a duplicate", first, again)
	}
	post(`{"type":"TYPE_HELLO","payload":2}`, "order-1", http.StatusUnprocessableEntity)
	if next := post(`{"type":"TYPE_HELLO","payload":2}`, "order-2", http.StatusAccepted); next.Sequence != 2 || next.Duplicate {
		t.Errorf("another key: %+v, want sequence 2, not a duplicate", next)
	}
}
