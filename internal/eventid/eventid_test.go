package eventid

import (
	"strings"
	"sync"
	"testing"
)

// Ids are unique, also across generators and goroutines, and carry the
// generator's prefix.
func TestUnique(t *testing.T) {
	a, b := New(), New()
	if a.Prefix() == b.Prefix() || len(a.Prefix()) != 12 {
		t.Fatalf("prefixes %q and %q: want two different 12-digit ones", a.Prefix(), b.Prefix())
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, g := range []*Generator{a, b, a, b} {
		wg.Go(func() {
			for range 1000 {
				id := g.Next()
				if !strings.HasPrefix(id, g.Prefix()+"-") {
					t.Errorf("id %q without its prefix %q", id, g.Prefix())
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %q made twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
