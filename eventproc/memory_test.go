package main

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestMemoryReleaser: memory is released at the first tick after a quiet
// interval that follows enough activity, once per quiet spell, never while
// requests keep coming, and not for a trickle of probes.
func TestMemoryReleaser(t *testing.T) {
	m := newMemoryReleaser()
	releases := 0
	m.release = func() { releases++ }
	requests := func(n int) {
		for range n {
			m.connState(nil, http.StateActive)
			m.connState(nil, http.StateIdle) // not activity
		}
	}

	m.tick()
	if releases != 0 {
		t.Fatalf("%d releases with no activity", releases)
	}
	// A busy spell: every tick sees new requests.
	for range 3 {
		requests(releaseActivity)
		m.tick()
		if releases != 0 {
			t.Fatalf("released while busy (%d)", releases)
		}
	}
	// The first quiet interval releases, once.
	m.tick()
	if releases != 1 {
		t.Fatalf("%d releases after the load stopped, want 1", releases)
	}
	m.tick()
	if releases != 1 {
		t.Fatalf("%d releases in one quiet spell, want 1", releases)
	}
	// Connections closing are activity too.
	for range releaseActivity {
		m.connState(nil, http.StateClosed)
	}
	m.tick()
	m.tick()
	if releases != 2 {
		t.Fatalf("%d releases after the connections closed, want 2", releases)
	}
	// A probe now and then does not force a collection each time.
	for range releaseActivity - 1 {
		requests(1)
		m.tick()
		m.tick()
	}
	if releases != 2 {
		t.Fatalf("%d releases for %d probes, want still 2", releases, releaseActivity-1)
	}
	requests(1)
	m.tick()
	m.tick()
	if releases != 3 {
		t.Fatalf("%d releases once the probes added up, want 3", releases)
	}
}

// TestMemoryReleaserRun: run ticks until its context ends.
func TestMemoryReleaserRun(t *testing.T) {
	m := newMemoryReleaser()
	released := make(chan struct{}, 1)
	m.release = func() { released <- struct{}{} }
	for range releaseActivity {
		m.connState(nil, http.StateActive)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		m.run(ctx, ticks)
		close(done)
	}()
	// run takes the activity so far as its starting point. Once it has taken
	// a tick (so it has started), more activity and then a busy and a quiet
	// tick release.
	ticks <- time.Time{}
	for range releaseActivity {
		m.connState(nil, http.StateClosed)
	}
	ticks <- time.Time{}
	ticks <- time.Time{}
	<-released
	cancel()
	<-done
}
