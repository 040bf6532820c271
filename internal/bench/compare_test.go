package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	for _, tt := range []struct {
		ratio        float64
		higherBetter bool
		want         string
		ok           bool
	}{
		{1, true, "PASS (+0.0 %, within ±5 %)", true},
		{0.95, true, "PASS (-5.0 %, within ±5 %)", true},
		{95.0 / 100.0, true, "PASS (-5.0 %, within ±5 %)", true},
		{0.949, true, "MISS (-5.1 %, worse)", false},
		{1.2, true, "PASS (+20.0 %, better)", true},
		{1.05, false, "PASS (+5.0 %, within ±5 %)", true},
		{1.051, false, "MISS (+5.1 %, worse)", false},
		{0.7, false, "PASS (-30.0 %, better)", true},
		{0, false, "no data", false},
	} {
		got, ok := judge(tt.ratio, tt.higherBetter)
		if got != tt.want || ok != tt.ok {
			t.Errorf("judge(%v, higherBetter=%v) = %q, %v; want %q, %v", tt.ratio, tt.higherBetter, got, ok, tt.want, tt.ok)
		}
	}
}

// compared builds a round from requests per second (over one second) and
// CPU per event of each side; n=0 is a failed side.
func compared(round, baseN int, baseCPU time.Duration, curN int, curCPU time.Duration) comparedRound {
	m := func(n int, cpu time.Duration) measurement {
		m := measurement{round: round, workers: 64, serverCPU: cpu,
			load: loadResult{n: n, elapsed: time.Second, lat: []time.Duration{time.Millisecond}}}
		if n == 0 {
			m.err = errors.New("eventproc exited")
		}
		return m
	}
	return comparedRound{round: round, baseFirst: round%2 == 1, base: m(baseN, baseCPU), cur: m(curN, curCPU)}
}

func sinkComparison() *comparison {
	sc := &scenario{name: "grpc-sink", ref: "grpc-echo", about: "unary"}
	return &comparison{scenario: sc, workers: 64, rounds: []comparedRound{
		compared(1, 1000, 20*time.Microsecond, 1100, 20*time.Microsecond), // 1.100, 1.000
		compared(2, 2000, 10*time.Microsecond, 1800, 12*time.Microsecond), // 0.900, 1.200
		compared(3, 1000, 20*time.Microsecond, 0, 0),                      // current failed: left out
		compared(4, 1000, 20*time.Microsecond, 980, 21*time.Microsecond),  // 0.980, 1.050
	}}
}

// TestCompareSummary: each column's median is its own; the ratios are the
// medians of the per-round ratios; a round with a failed side is left out.
func TestCompareSummary(t *testing.T) {
	s := sinkComparison().summary()
	want := compareSummary{
		rounds:   3,
		baseRate: 1000, curRate: 1100, rateRatio: 0.98,
		baseCPU: 20 * time.Microsecond, curCPU: 20 * time.Microsecond, cpuRatio: 1.05,
	}
	if s != want {
		t.Errorf("summary = %+v, want %+v", s, want)
	}
	if got := (&comparison{}).summary(); got != (compareSummary{}) {
		t.Errorf("summary of no rounds = %+v, want zero", got)
	}
}

func TestComparisonTable(t *testing.T) {
	c := sinkComparison()
	tab := c.table()
	want := [][]string{
		{"1", "B→C", "1000", "1100", "1.100", "20.0µs", "20.0µs", "1.000", "0.00"},
		{"2", "C→B", "2000", "1800", "0.900", "10.0µs", "12.0µs", "1.200", "0.00"},
		{"3", "B→C", "1000", "failed", "–", "20.0µs", "failed", "–", "–"},
		{"4", "C→B", "1000", "980", "0.980", "20.0µs", "21.0µs", "1.050", "0.00"},
		{"median", "", "1000", "1100", "0.980", "20.0µs", "20.0µs", "1.050", "0.00"},
	}
	if !slices.EqualFunc(tab.rows, want, slices.Equal) {
		t.Errorf("rows:\n got %q\nwant %q", tab.rows, want)
	}
	if got, want := c.verdicts(), "req/s × 0.980: PASS (-2.0 %, within ±5 %); CPU/event × 1.050: PASS (+5.0 %, within ±5 %)"; got != want {
		t.Errorf("verdicts = %q, want %q", got, want)
	}
	var md strings.Builder
	tab.markdown(&md)
	if !strings.Contains(md.String(), "| round | order | baseline req/s |") || !strings.Contains(md.String(), "| --- | --- | ---: |") {
		t.Errorf("markdown table:\n%s", md.String())
	}
}

func TestSummaryTable(t *testing.T) {
	noisy := compared(1, 1000, 20*time.Microsecond, 900, 20*time.Microsecond)
	noisy.cur.otherLoad = 0.8
	worse := &comparison{scenario: &scenario{name: "rest-sink", ref: "http-echo"}, workers: 64, rounds: []comparedRound{noisy}}
	aa := &comparison{scenario: &scenario{name: "grpc-echo"}, workers: 64, rounds: []comparedRound{
		compared(1, 1000, 10*time.Microsecond, 800, 10*time.Microsecond),
	}}
	tab, misses := summaryTable([]*comparison{sinkComparison(), worse, aa})
	if misses != 1 {
		t.Errorf("misses = %d, want 1 (rest-sink req/s; the A/A reference is never judged)", misses)
	}
	want := [][]string{
		{"grpc-sink", "64", "3", "1000", "1100", "0.980", "PASS (-2.0 %, within ±5 %)", "20.0µs", "20.0µs", "1.050", "PASS (+5.0 %, within ±5 %)"},
		{"rest-sink", "64", "1", "1000", "900", "0.900", "MISS (-10.0 %, worse), noisy: other load 0.80",
			"20.0µs", "20.0µs", "1.000", "PASS (+0.0 %, within ±5 %), noisy: other load 0.80"},
		{"grpc-echo", "64", "1", "1000", "800", "0.800", "A/A noise -20.0 %", "10.0µs", "10.0µs", "1.000", "A/A noise +0.0 %"},
	}
	if !slices.EqualFunc(tab.rows, want, slices.Equal) {
		t.Errorf("rows:\n got %q\nwant %q", tab.rows, want)
	}
	r := &compareReport{baseline: "git revision abc", current: "working tree at def", rounds: 3,
		comparisons: []*comparison{sinkComparison(), worse}, notes: []string{"grpc-sink C=64 #3 current failed: eventproc exited"}}
	var text, md strings.Builder
	r.print(&text)
	r.markdown(&md)
	for _, s := range []string{"baseline: git revision abc", "Overall: 1 verdict(s) MISS", "grpc-sink C=64: unary", "- grpc-sink C=64 #3 current failed"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, text.String())
		}
	}
	for _, s := range []string{"## Summary", "| scenario | C | rounds |", "### grpc-sink C=64", "- baseline: git revision abc"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("Markdown report lacks %q:\n%s", s, md.String())
		}
	}
}

func TestParseOptionsBaseline(t *testing.T) {
	sinkLines := []string{"grpc-sink", "rest-durable", "rest-durable-steady", "rest-sink", "rest-sink-secure", "stream-batch-sink", "stream-durable", "stream-durable-steady", "stream-sink", "stream-sink-secure"}
	for _, tt := range []struct {
		args      []string
		conc      []int
		scenarios []string
		err       string
	}{
		{args: []string{"-baseline", "HEAD~1"}, conc: []int{64}, scenarios: sinkLines},
		{args: []string{"-baseline", "HEAD~1", "-concurrency", "16,64", "-scenarios", "grpc"}, conc: []int{16, 64}, scenarios: []string{"grpc-sink"}},
		{args: []string{"-baseline", "HEAD~1", "-scenarios", "grpc-echo,grpc"}, conc: []int{64}, scenarios: []string{"grpc-echo", "grpc-sink"}},
		{args: []string{"-baseline", "HEAD~1", "-scenarios", "fanout"}, err: "request-response scenarios only"},
		{args: []string{"-scenarios", "grpc"}, conc: []int{1, 16, 64}, scenarios: []string{"grpc-echo", "grpc-sink"}},
	} {
		o, err := parseOptions(tt.args, io.Discard)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseOptions(%q) error = %v, want one containing %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseOptions(%q): %v", tt.args, err)
			continue
		}
		var got []string
		for _, sc := range scenarios() {
			if o.wants(sc.name) {
				got = append(got, sc.name)
			}
		}
		slices.Sort(got)
		if !slices.Equal(o.concurrency, tt.conc) || !slices.Equal(got, tt.scenarios) {
			t.Errorf("parseOptions(%q): concurrency %v, scenarios %q; want %v, %q", tt.args, o.concurrency, got, tt.conc, tt.scenarios)
		}
	}
}
