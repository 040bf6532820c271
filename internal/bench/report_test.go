package main

import (
	"strings"
	"testing"
	"time"
)

// TestRoundsMedian: a line measured in several rounds is compared with the
// reference of its own round, and judged on the median of its rounds.
func TestRoundsMedian(t *testing.T) {
	ref := &scenario{name: "http-echo"}
	sink := &scenario{name: "rest-sink", ref: "http-echo", minThroughput: 0.6, maxP99: 1.5}
	at := func(sc *scenario, round, n int, p99 time.Duration, cpu time.Duration) measurement {
		return measurement{scenario: sc, workers: 64, round: round, serverCPU: cpu,
			load: loadResult{n: n, elapsed: time.Second, lat: []time.Duration{p99}}}
	}
	r := &report{rr: []measurement{
		at(ref, 1, 1000, time.Millisecond, 30*time.Microsecond),
		at(sink, 1, 500, time.Millisecond, 40*time.Microsecond), // 0.50×
		at(ref, 2, 2000, time.Millisecond, 30*time.Microsecond),
		at(sink, 2, 1300, 2*time.Millisecond, 20*time.Microsecond), // 0.65×, p99 2×
		at(ref, 3, 1000, time.Millisecond, 30*time.Microsecond),
		at(sink, 3, 700, time.Millisecond, 24*time.Microsecond), // 0.70×
	}}
	tab, checks := r.rrTable()
	if len(tab.rows) != 6 || tab.rows[3][1] != "64 #2" {
		t.Fatalf("rows %q: want one per round, C shown as \"64 #2\" in the second", tab.rows)
	}
	want := map[string]struct {
		got string
		ok  bool
	}{
		"rest-sink C=64 req/s":        {"0.650× (median of 0.500, 0.650, 0.700)", true},
		"rest-sink C=64 p99":          {"1.000× (median of 1.000, 2.000, 1.000)", true},
		"rest-sink C=64 sink CPU/req": {"24.0µs (median of 40.0µs, 20.0µs, 24.0µs)", true},
	}
	if len(checks) != len(want) {
		t.Fatalf("checks %+v: want %d", checks, len(want))
	}
	for _, c := range checks {
		w, found := want[c.line]
		if !found || c.got != w.got || c.ok != w.ok {
			t.Errorf("check %q: got %q ok=%v, want %q ok=%v", c.line, c.got, c.ok, w.got, w.ok)
		}
		if c.line == "rest-sink C=64 req/s" && !strings.HasPrefix(c.want, "≥ 0.60× http-echo") {
			t.Errorf("req/s target %q", c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1}, 2}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
