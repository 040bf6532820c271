package workpool

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every task runs exactly once, goroutines are reused when idle, and they
// exit after Close.
func TestPool(t *testing.T) {
	p := New()
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			ran.Add(1)
		})
	}
	wg.Wait()
	if got := ran.Load(); got != 1000 {
		t.Errorf("ran %d tasks, want 1000", got)
	}
	p.Close()
	p.Close()
}

// Tasks blocked at once each get their own goroutine: Go never waits for a
// busy one.
func TestPoolRunsConcurrently(t *testing.T) {
	p := New()
	defer p.Close()
	const n = 50
	release := make(chan struct{})
	var started sync.WaitGroup
	var done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for range n {
		p.Go(func() {
			defer done.Done()
			started.Done()
			<-release
		})
	}
	started.Wait() // would deadlock if tasks had to share goroutines
	close(release)
	done.Wait()
}

func BenchmarkPool(b *testing.B) {
	p := New()
	defer p.Close()
	var wg sync.WaitGroup
	for b.Loop() {
		wg.Add(1)
		p.Go(wg.Done)
		wg.Wait()
	}
}

func BenchmarkGoroutine(b *testing.B) {
	var wg sync.WaitGroup
	for b.Loop() {
		wg.Add(1)
		go wg.Done()
		wg.Wait()
	}
}
