package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"time"
)

// The two sides of a comparison, as indexes.
const (
	sideBaseline = 0
	sideCurrent  = 1
)

var sideNames = [2]string{"baseline", "current"}

// compareTolerance is how far current/baseline may move the wrong way and
// still pass: the issue asks for each sink path's req/s and sink CPU per
// event within 5 % of its starting revision.
const compareTolerance = 0.05

// comparedRound is one round of a comparison: the scenario measured once
// with the baseline binaries and once with the current ones, back to back.
type comparedRound struct {
	round     int
	baseFirst bool // the baseline ran first in this round
	base, cur measurement
}

// order returns the sides in the order they run.
func (p comparedRound) order() []int {
	if p.baseFirst {
		return []int{sideBaseline, sideCurrent}
	}
	return []int{sideCurrent, sideBaseline}
}

// ok reports whether both sides were measured with at least one success.
func (p comparedRound) ok() bool {
	return measured(p.base) && measured(p.cur)
}

func measured(m measurement) bool { return m.err == nil && m.load.n > 0 }

// rateRatio returns current/baseline throughput.
func (p comparedRound) rateRatio() float64 {
	return p.cur.load.rate() / p.base.load.rate()
}

// cpuRatio returns current/baseline CPU per event of the measured server,
// or 0 when either side used too little to sample.
func (p comparedRound) cpuRatio() float64 {
	if p.base.serverCPU <= 0 || p.cur.serverCPU <= 0 {
		return 0
	}
	return float64(p.cur.serverCPU) / float64(p.base.serverCPU)
}

// comparison is one scenario at one concurrency, measured in rounds.
type comparison struct {
	scenario *scenario
	workers  int
	rounds   []comparedRound
}

// compareSummary is a comparison reduced to medians over the rounds in
// which both sides were measured. Each column's median is taken on its
// own: the ratios are the medians of the per-round ratios (each of a pair
// measured back to back), not the ratios of the medians.
type compareSummary struct {
	rounds            int // rounds with both sides measured
	baseRate, curRate float64
	rateRatio         float64
	baseCPU, curCPU   time.Duration
	cpuRatio          float64 // 0: CPU not sampled
	otherLoad         float64 // the busier side's other load, in cores
}

func (c *comparison) summary() compareSummary {
	var br, cr, rr, bc, cc, cpr, ol []float64
	for _, p := range c.rounds {
		if !p.ok() {
			continue
		}
		br = append(br, p.base.load.rate())
		cr = append(cr, p.cur.load.rate())
		rr = append(rr, p.rateRatio())
		ol = append(ol, max(p.base.otherLoad, p.cur.otherLoad))
		if x := p.cpuRatio(); x > 0 {
			bc = append(bc, float64(p.base.serverCPU))
			cc = append(cc, float64(p.cur.serverCPU))
			cpr = append(cpr, x)
		}
	}
	s := compareSummary{rounds: len(rr)}
	if s.rounds == 0 {
		return s
	}
	s.baseRate, s.curRate, s.rateRatio, s.otherLoad = median(br), median(cr), median(rr), median(ol)
	if len(cpr) > 0 {
		s.baseCPU, s.curCPU, s.cpuRatio = time.Duration(median(bc)), time.Duration(median(cc)), median(cpr)
	}
	return s
}

// judge holds a current/baseline ratio against compareTolerance. For
// throughput higher is better, for CPU per event lower is; moving the
// better way by any amount passes.
func judge(ratio float64, higherBetter bool) (string, bool) {
	if ratio <= 0 || math.IsNaN(ratio) || math.IsInf(ratio, 0) {
		return "no data", false
	}
	// The epsilon keeps a ratio of exactly 0.95 or 1.05, which floating
	// point may land a hair outside, within.
	const eps = 1e-9
	change := fmtChange(ratio)
	switch {
	case ratio >= 1-compareTolerance-eps && ratio <= 1+compareTolerance+eps:
		return fmt.Sprintf("PASS (%s, within ±%g %%)", change, compareTolerance*100), true
	case (ratio > 1) == higherBetter:
		return fmt.Sprintf("PASS (%s, better)", change), true
	default:
		return fmt.Sprintf("MISS (%s, worse)", change), false
	}
}

// verdict is judge for a sink scenario, marked noisy when the median other
// load exceeds noisyLoad cores; a reference
// scenario ran the same server on both sides, so its ratio only shows the
// noise.
func (c *comparison) verdict(s compareSummary, ratio float64, higherBetter bool) (string, bool) {
	if c.scenario.ref == "" && ratio > 0 {
		return "A/A noise " + fmtChange(ratio), true
	}
	v, ok := judge(ratio, higherBetter)
	if ratio > 0 && s.otherLoad > noisyLoad {
		v += fmt.Sprintf(", noisy: other load %.2f", s.otherLoad)
	}
	return v, ok
}

// fmtChange formats a ratio as a signed change in percent.
func fmtChange(ratio float64) string { return fmt.Sprintf("%+.1f %%", (ratio-1)*100) }

func fmtRatio(r float64) string {
	if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "–"
	}
	return fmt.Sprintf("%.3f", r)
}

// label names a comparison's line, e.g. "grpc-sink C=64".
func (c *comparison) label() string { return fmt.Sprintf("%s C=%d", c.scenario.name, c.workers) }

// table has one row per round and a last row of medians.
func (c *comparison) table() *table {
	t := &table{
		header: []string{"round", "order", "baseline req/s", "current req/s", "× req/s",
			"baseline CPU/event", "current CPU/event", "× CPU", "other load"},
		numeric: func(i, _ int) bool { return i >= 2 },
	}
	rate := func(m measurement) string {
		if !measured(m) {
			return "failed"
		}
		return fmtRate(m.load.rate())
	}
	cpu := func(m measurement) string {
		if !measured(m) {
			return "failed"
		}
		return fmtUs(m.serverCPU)
	}
	for _, p := range c.rounds {
		order := "B→C"
		if !p.baseFirst {
			order = "C→B"
		}
		rr, cr, ol := "–", "–", "–"
		if p.ok() {
			rr, cr = fmtRatio(p.rateRatio()), fmtRatio(p.cpuRatio())
			ol = fmt.Sprintf("%.2f", max(p.base.otherLoad, p.cur.otherLoad))
		}
		t.add(fmt.Sprint(p.round), order, rate(p.base), rate(p.cur), rr, cpu(p.base), cpu(p.cur), cr, ol)
	}
	s := c.summary()
	if s.rounds == 0 {
		t.add("median", "", "–", "–", "–", "–", "–", "–", "–")
		return t
	}
	t.add("median", "", fmtRate(s.baseRate), fmtRate(s.curRate), fmtRatio(s.rateRatio),
		fmtUs(s.baseCPU), fmtUs(s.curCPU), fmtRatio(s.cpuRatio), fmt.Sprintf("%.2f", s.otherLoad))
	return t
}

// verdicts returns the line under a comparison's table.
func (c *comparison) verdicts() string {
	s := c.summary()
	rv, _ := c.verdict(s, s.rateRatio, true)
	cv, _ := c.verdict(s, s.cpuRatio, false)
	return fmt.Sprintf("req/s × %s: %s; CPU/event × %s: %s", fmtRatio(s.rateRatio), rv, fmtRatio(s.cpuRatio), cv)
}

// summaryTable has one row per comparison, of its medians and verdicts,
// and returns how many sink verdicts missed.
func summaryTable(cmps []*comparison) (*table, int) {
	t := &table{
		header: []string{"scenario", "C", "rounds", "baseline req/s", "current req/s", "× req/s", "req/s verdict",
			"baseline CPU/event", "current CPU/event", "× CPU", "CPU/event verdict"},
		numeric: func(i, _ int) bool { return i >= 1 && i != 6 && i != 10 },
	}
	misses := 0
	for _, c := range cmps {
		s := c.summary()
		rv, rok := c.verdict(s, s.rateRatio, true)
		cv, cok := c.verdict(s, s.cpuRatio, false)
		for _, ok := range []bool{rok, cok} {
			if !ok {
				misses++
			}
		}
		if s.rounds == 0 {
			t.add(c.scenario.name, fmt.Sprint(c.workers), "0", "–", "–", "–", rv, "–", "–", "–", cv)
			continue
		}
		t.add(c.scenario.name, fmt.Sprint(c.workers), fmt.Sprint(s.rounds),
			fmtRate(s.baseRate), fmtRate(s.curRate), fmtRatio(s.rateRatio), rv,
			fmtUs(s.baseCPU), fmtUs(s.curCPU), fmtRatio(s.cpuRatio), cv)
	}
	return t, misses
}

// compareReport is everything one -baseline run measured.
type compareReport struct {
	baseline, current string // which code each side was built from
	started           time.Time
	command           string
	duration, warmup  time.Duration
	rounds            int
	comparisons       []*comparison
	notes             []string
}

// overall says in one sentence how the comparison went.
func overall(misses int) string {
	if misses == 0 {
		return fmt.Sprintf("every sink line within ±%g %% of the baseline or better", compareTolerance*100)
	}
	return fmt.Sprintf("%d verdict(s) MISS: worse than the baseline by more than %g %%", misses, compareTolerance*100)
}

// print writes the report as text.
func (r *compareReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nbaseline: %s\ncurrent:  %s\n", r.baseline, r.current)
	sum, misses := summaryTable(r.comparisons)
	fmt.Fprintf(w, "\nCurrent against baseline (%v measured per line after %v warm-up; rounds: %d; "+
		"medians of the rounds; × is current/baseline, the median of the per-round ratios)\n\n", r.duration, r.warmup, r.rounds)
	sum.text(w)
	fmt.Fprintf(w, "\nOverall: %s\n", overall(misses))
	for _, c := range r.comparisons {
		fmt.Fprintf(w, "\n%s: %s\n\n", c.label(), c.scenario.about)
		c.table().text(w)
		fmt.Fprintln(w, c.verdicts())
	}
	if len(r.notes) > 0 {
		fmt.Fprintf(w, "\nNotes\n\n")
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

// markdown writes the report as a Markdown page (docs/bench-compare.md).
func (r *compareReport) markdown(w io.Writer) {
	fmt.Fprintf(w, "# Benchmark comparison with a baseline revision\n\n")
	fmt.Fprintf(w, "Generated by `make bench-compare BASE=<rev>` (`internal/bench -baseline`); do not edit by hand.\n\n")
	fmt.Fprintf(w, "- date: %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d CPUs (%s), %s, Linux %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), kernel())
	fmt.Fprintf(w, "- command: `%s`\n", r.command)
	fmt.Fprintf(w, "- baseline: %s\n", r.baseline)
	fmt.Fprintf(w, "- current: %s\n", r.current)
	fmt.Fprintf(w, "- each line: sink and processor started fresh, %v warm-up, %v measured, closed-loop Go client with C workers; "+
		"only the sink and processor binaries differ between the sides, the load clients are the current tree's\n", r.warmup, r.duration)
	fmt.Fprintf(w, "- rounds: %d; each round runs every scenario with the baseline and with the current binaries, back to back, "+
		"the baseline first in odd rounds and second in even ones (`order`), so drift of the machine hits both sides alike\n", r.rounds)
	fmt.Fprintf(w, "- `×` is current/baseline: the median of the per-round ratios; the other columns' medians are taken on their own. "+
		"`CPU/event` is the sink process's CPU time per successful request; `other load` the CPU (in cores) that processes "+
		"outside the benchmark used, the busier side's. Verdicts: within ±%g %% passes, better by more passes, "+
		"worse by more misses; a verdict is marked noisy when the median `other load` exceeds %.1f core; reference scenarios run the same server on both sides (A/A) and show the noise\n\n", compareTolerance*100, noisyLoad)
	sum, misses := summaryTable(r.comparisons)
	fmt.Fprintf(w, "## Summary\n\n")
	sum.markdown(w)
	fmt.Fprintf(w, "\nOverall: %s.\n", overall(misses))
	fmt.Fprintf(w, "\n## Rounds\n")
	for _, c := range r.comparisons {
		fmt.Fprintf(w, "\n### %s\n\n%s\n\n", c.label(), c.scenario.about)
		c.table().markdown(w)
		fmt.Fprintf(w, "\n%s\n", c.verdicts())
	}
	if len(r.notes) > 0 {
		fmt.Fprintf(w, "\n## Notes\n\n")
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+strings.ReplaceAll(n, "\n", " "))
		}
	}
}
