package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestIdempotentHTTP: on an --idempotent request/response route, a retry
// with the same Idempotency-Key gets the first reply, byte for byte,
// without reaching the processor; concurrent retries reach it once; the
// key with another event is 422; /readyz shows the store.
func TestIdempotentHTTP(t *testing.T) {
	ctx := testContext(t)
	p := startProcessor(t)
	s := startSink(t, "--route", "hello="+p.addr, "--idempotent", "hello", "--data-dir", t.TempDir())
	s.waitRoute(ctx, "TYPE_HELLO", true)
	if _, body := s.get(ctx, "/readyz"); !strings.Contains(string(body), `"store":"connected"`) {
		t.Errorf("/readyz = %s, want the route's store connected", body)
	}
	post := func(body, key string, want int) string {
		t.Helper()
		resp, b := s.post(ctx, body, "Idempotency-Key", key)
		if resp.StatusCode != want {
			t.Fatalf("POST %s with key %q: %d %s, want %d", body, key, resp.StatusCode, b, want)
		}
		return string(b)
	}
	// "fresh" replies with a new event naming the id the sink gave the
	// request: a second processing would name another.
	fresh := `{"type":"TYPE_HELLO","payload":1,"metadata":{"act":"fresh"}}`
	first := post(fresh, "order-1", http.StatusOK)
	if again := post(fresh, "order-1", http.StatusOK); again != first {
		t.Errorf("retry answered %s, want the first reply %s", again, first)
	}
	if other := post(fresh, "order-2", http.StatusOK); other == first {
		t.Errorf("another key answered the first reply %s, want a new one", other)
	}
	post(`{"type":"TYPE_HELLO","payload":2,"metadata":{"act":"fresh"}}`, "order-1", http.StatusUnprocessableEntity)

	// Concurrent retries: the processor sees one.
	block := `{"type":"TYPE_HELLO","payload":3,"metadata":{"act":"block"}}`
	const n = 10
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, b := s.post(ctx, block, "Idempotency-Key", "order-3")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("concurrent retry: %d %s, want 200", resp.StatusCode, b)
			}
			bodies[i] = string(b)
		})
	}
	<-p.started
	time.Sleep(200 * time.Millisecond) // the other retries are waiting
	p.unblock()
	wg.Wait()
	select {
	case id := <-p.started:
		t.Errorf("the processor got a retry (%s) too", id)
	default:
	}
	for _, b := range bodies {
		if b != bodies[0] {
			t.Errorf("concurrent retries answered %s and %s, want one reply", bodies[0], b)
		}
	}
}
