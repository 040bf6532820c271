package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
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

// TestMemoryBudget: the runtime's limit is the budget while what the
// runtime needs leaves a quarter as much room, and follows what it needs
// beyond that; no budget leaves the limit alone.
func TestMemoryBudget(t *testing.T) {
	var set []int64
	b := newMemoryBudget(1 << 40) // far above what a test process needs
	b.set = func(n int64) int64 { set = append(set, n); return 0 }
	b.adjust()
	b.adjust()
	if !slices.Equal(set, []int64{1 << 40}) {
		t.Errorf("limits set %v, want the budget once", set)
	}

	set = nil
	b = newMemoryBudget(1) // below anything
	b.set = func(n int64) int64 { set = append(set, n); return 0 }
	needed := b.needed()
	if needed <= 0 {
		t.Fatalf("needed = %d", needed)
	}
	b.adjust()
	if len(set) != 1 || set[0] < needed+needed/4 {
		t.Errorf("limits set %v, want one of at least %d (needed %d)", set, needed+needed/4, needed)
	}

	b = newMemoryBudget(0)
	b.set = func(n int64) int64 { t.Errorf("limit set to %d without a budget", n); return 0 }
	b.setGC = func(n int) int { t.Errorf("GOGC set to %d without a budget", n); return 0 }
	b.gcMax = gcPercent
	b.adjust()
}

// TestMemoryBudgetGC: under a budget far above what the runtime needs, GOGC
// is set once to its most; under one below it, to 100; without gcMax, never.
func TestMemoryBudgetGC(t *testing.T) {
	for _, tt := range []struct {
		budget int64
		gcMax  int
		want   []int
	}{
		{1 << 40, gcPercent, []int{gcPercent}},
		{1, gcPercent, []int{100}},
		{1 << 40, 0, nil},
	} {
		var set []int
		b := newMemoryBudget(tt.budget)
		b.set = func(int64) int64 { return 0 }
		b.setGC = func(n int) int { set = append(set, n); return 0 }
		b.gcMax = tt.gcMax
		b.adjust()
		b.adjust()
		if !slices.Equal(set, tt.want) {
			t.Errorf("budget %d, gcMax %d: GOGC set to %v, want %v", tt.budget, tt.gcMax, set, tt.want)
		}
	}
}

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		budget, needed int64
		want           int
	}{
		{48 * mib, 0, 400},
		{48 * mib, 4 * mib, 400},   // goal 20 MiB
		{50 * mib, 10 * mib, 400},  // goal exactly the budget
		{48 * mib, 16 * mib, 200},  // goal 48 MiB
		{48 * mib, 24 * mib, 100},  // half the budget
		{48 * mib, 40 * mib, 100},  // near it: as by default
		{48 * mib, 100 * mib, 100}, // beyond it
	} {
		if got := gcPercentFor(tt.budget, tt.needed, gcPercent); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d, want %d", tt.budget/mib, tt.needed/mib, got, tt.want)
		}
	}
}

func TestLimitFor(t *testing.T) {
	for _, tt := range []struct{ needed, want int64 }{{0, 0}, {4, 5}, {40 << 20, 50 << 20}} {
		if got := limitFor(tt.needed); got != tt.want {
			t.Errorf("limitFor(%d) = %d, want %d", tt.needed, got, tt.want)
		}
	}
}

// TestMemoryBudgetConfig: --memory-budget and its variable take sizes; by
// default the budget applies unless GOMEMLIMIT is set.
func TestMemoryBudgetConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	route := []string{"--route", "hello=localhost:9090"}
	for _, tt := range []struct {
		args []string
		env  func(string) string
		want int64
	}{
		{nil, noEnv, 48 << 20},
		{[]string{"--memory-budget", "1GiB"}, noEnv, 1 << 30},
		{[]string{"--memory-budget", "64 MiB"}, noEnv, 64 << 20},
		{[]string{"--memory-budget", "2048KiB"}, noEnv, 2 << 20},
		{[]string{"--memory-budget", "1000"}, noEnv, 1000},
		{[]string{"--memory-budget", "off"}, noEnv, 0},
		{[]string{"--memory-budget", "0"}, noEnv, 0},
		{nil, env("EVENTPROC_MEMORY_BUDGET", "100MiB"), 100 << 20},
		{nil, env("GOMEMLIMIT", "1GiB"), 0},
		{nil, env("GOMEMLIMIT", "1GiB", "EVENTPROC_MEMORY_BUDGET", "60MiB"), 60 << 20},
		{[]string{"--memory-budget", "70MiB"}, env("GOMEMLIMIT", "1GiB"), 70 << 20},
	} {
		c, err := parseConfig(append(route, tt.args...), tt.env)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if c.MemoryBudget != tt.want {
			t.Errorf("%q: budget %d, want %d", tt.args, c.MemoryBudget, tt.want)
		}
	}
	// GOGC defaults to gcPercent only under a budget, and never overrides
	// the environment's.
	for _, tt := range []struct {
		args []string
		env  func(string) string
		want int
	}{
		{nil, noEnv, gcPercent},
		{nil, env("GOGC", "100"), 0},
		{nil, env("GOGC", "off"), 0},
		{[]string{"--memory-budget", "off"}, noEnv, 0},
		{nil, env("GOMEMLIMIT", "1GiB"), 0},
		{[]string{"--memory-budget", "1GiB"}, env("GOMEMLIMIT", "1GiB"), gcPercent},
	} {
		c, err := parseConfig(append(route, tt.args...), tt.env)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if c.GCPercent != tt.want {
			t.Errorf("%q with GOGC=%q: GC percent %d, want %d", tt.args, tt.env("GOGC"), c.GCPercent, tt.want)
		}
	}
	for _, bad := range []string{"lots", "-1MiB", "1.5GiB", "MiB", "9999999999GiB"} {
		_, err := parseConfig(append(route, "--memory-budget", bad), noEnv)
		if err == nil || !strings.Contains(err.Error(), `--memory-budget "`+bad+`": want a size`) {
			t.Errorf("--memory-budget %q: error %v", bad, err)
		}
	}
}
