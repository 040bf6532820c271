package main

import (
	"net"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Memory goes back to the OS when the HTTP front goes quiet.
//
// Under load the heap grows to the garbage collector's goal (twice the live
// heap plus the goroutine stacks at the default GOGC), and with many
// connections the live heap and the stacks are mostly per connection: their
// buffers, their goroutine and the request each has in flight. When the load
// stops, the Go runtime returns the freed memory only slowly, and not at all
// before the next collection, which a process that no longer allocates may
// not run for two minutes: the sink kept its peak RSS long after the clients
// had gone. So once the HTTP front has been quiet for a whole interval after
// some activity, the sink collects and returns what is free at once
// ([debug.FreeOSMemory]). That costs one collection per quiet spell, cheap
// when nothing is in flight, and never runs under steady load.

// releaseInterval is how long the HTTP front must be quiet before memory is
// released; releaseActivity is how many requests or closed connections must
// have happened since the last release, so that an occasional probe does not
// force a collection each time.
const (
	releaseInterval = time.Second
	releaseActivity = 64
)

// memoryReleaser counts the HTTP front's activity and releases memory when
// it stops (see run).
type memoryReleaser struct {
	activity atomic.Int64 // requests started and connections closed
	// seen is the activity at the previous tick, released at the last
	// release; only the goroutine calling tick uses them.
	seen, released int64
	// release returns memory to the OS: debug.FreeOSMemory; tests count.
	release func()
}

func newMemoryReleaser() *memoryReleaser {
	return &memoryReleaser{release: debug.FreeOSMemory}
}

// connState is an [http.Server] ConnState hook: a request starting on a
// connection and a connection going away are both activity.
func (m *memoryReleaser) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateActive, http.StateClosed, http.StateHijacked:
		m.activity.Add(1)
	}
}

// init starts counting from the activity so far.
func (m *memoryReleaser) init() {
	m.seen = m.activity.Load()
	m.released = m.seen
}

// tick releases memory when there was no activity since the previous tick
// and at least releaseActivity events since the last release.
func (m *memoryReleaser) tick() {
	now := m.activity.Load()
	if now != m.seen { // still busy
		m.seen = now
		return
	}
	if now-m.released >= releaseActivity {
		m.release()
		m.released = now
	}
}

// defaultMemoryBudget is --memory-budget's default: with 1,000 keep-alive
// HTTP clients, each with a request in flight, the sink's resident set stays
// within 64 MiB (its binary accounts for about 15 MiB of it).
const defaultMemoryBudget = "48MiB"

// gcPercent is the GOGC the sink runs with while its memory is far below
// the budget, when the environment sets no GOGC. Under steady load the live
// heap is a few MiB and every request allocates, so the default GOGC=100
// collects 20-45 times a second; at 400, 5-10 times, which saved 5-20 % of
// the sink's CPU per request (docs/performance.md). The heap may then grow
// to five times what is live, so memoryBudget lowers GOGC towards 100 as
// what the sink needs nears the budget (see gcPercentFor): with many
// connections the sink collects as it would at GOGC=100. Without a budget
// the sink keeps the runtime's GOGC.
const gcPercent = 400

// memoryBudget keeps the Go runtime's soft memory limit
// ([debug.SetMemoryLimit]) at the budget, so that the heap does not grow to
// twice the live heap plus the stacks (GOGC=100) when that would exceed the
// budget. A fixed limit makes the collector run back to back once what is
// live nears it (GOMEMLIMIT=56MiB with GOGC=400 did, in docs/performance.md):
// so the limit is raised to a quarter more than what the runtime needs after
// a collection whenever that is more than the budget: the room left for
// garbage is then at least a quarter of what GOGC=100 leaves, so the
// collector runs at most about four times as often as with GOGC alone.
type memoryBudget struct {
	budget  int64
	limit   int64             // the limit set last
	set     func(int64) int64 // debug.SetMemoryLimit; tests record
	samples []metrics.Sample
	// gcMax, when positive, is the most GOGC is set to (see gcPercent);
	// gc is the GOGC set last, setGC debug.SetGCPercent.
	gcMax, gc int
	setGC     func(int) int
}

// The runtime metrics memoryBudget reads, in this order.
var memoryMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
}

func newMemoryBudget(budget int64) *memoryBudget {
	b := &memoryBudget{budget: budget, set: debug.SetMemoryLimit, setGC: debug.SetGCPercent}
	for _, name := range memoryMetrics {
		b.samples = append(b.samples, metrics.Sample{Name: name})
	}
	return b
}

// needed is what the runtime needs: the heap the last collection found
// live, and everything it holds besides the heap (stacks, its own data).
func (b *memoryBudget) needed() int64 {
	metrics.Read(b.samples)
	var v [6]int64
	for i, s := range b.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = int64(s.Value.Uint64())
		}
	}
	total, released, free, unused, objects, live := v[0], v[1], v[2], v[3], v[4], v[5]
	return total - released - free - unused - objects + live
}

// adjust sets the runtime's limit for what it needs now (see memoryBudget).
func (b *memoryBudget) adjust() {
	if b.budget <= 0 {
		return
	}
	needed := b.needed()
	limit := max(b.budget, limitFor(needed))
	if limit != b.limit {
		b.set(limit)
		b.limit = limit
	}
	if b.gcMax > 0 {
		if gc := gcPercentFor(b.budget, needed, b.gcMax); gc != b.gc {
			b.setGC(gc)
			b.gc = gc
		}
	}
}

// gcPercentFor is the GOGC, between 100 and most, whose heap goal for
// needed bytes stays within budget: a sink that needs a fifth of its budget
// or less collects at GOGC=most (400), one that needs half of it or more at
// 100, as the runtime would by default.
func gcPercentFor(budget, needed int64, most int) int {
	if needed <= 0 {
		return most
	}
	return int(max(100, min(int64(most), 100*(budget-needed)/needed)))
}

// limitFor is the least limit for needed bytes: a quarter more, for garbage.
func limitFor(needed int64) int64 { return needed + needed/4 }
