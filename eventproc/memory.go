package main

import (
	"context"
	"net"
	"net/http"
	"runtime/debug"
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
	// release; only run's goroutine uses them.
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

// run calls tick at every tick of ticks until ctx ends.
func (m *memoryReleaser) run(ctx context.Context, ticks <-chan time.Time) {
	m.seen = m.activity.Load()
	m.released = m.seen
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			m.tick()
		}
	}
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
