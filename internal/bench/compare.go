package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// compare runs the -baseline mode: it builds the sink and the processor
// from the baseline revision and from the working tree (or -rev), and at
// each concurrency, in each round, measures every chosen scenario once
// with each pair of binaries, back to back. Odd rounds run the baseline
// first, even rounds the current binaries first, so that neither side is
// always the one that runs later on a machine whose speed drifts.
//
// Only the sink and the processor differ between the sides: both are
// started with the flags startSink has always passed, which the older
// binaries accept too, and both are loaded by the same clients, built with
// this program. A reference scenario, when asked for, runs this program's
// reference server on both sides: an A/A comparison that shows the noise.
func compare(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "current sink and processor:")
	cur, err := buildBinaries(ctx, root, o.rev, stderr)
	if err != nil {
		return err
	}
	defer cur.remove()
	fmt.Fprintln(stderr, "baseline sink and processor:")
	base, err := buildBinaries(ctx, root, o.baseline, stderr)
	if err != nil {
		return fmt.Errorf("baseline %s: %w", o.baseline, err)
	}
	defer base.remove()
	sides := [2]*env{{bins: base, log: stderr}, {bins: cur, log: stderr}}

	r := &compareReport{
		baseline: describeSource(ctx, root, o.baseline),
		current:  describeSource(ctx, root, o.rev),
		started:  time.Now(),
		command:  strings.TrimSpace("go run ./internal/bench " + strings.Join(args, " ")),
		duration: o.duration,
		warmup:   o.warmup,
		rounds:   o.rounds,
	}
	failed := false
	all := scenarios()
	for _, c := range o.concurrency {
		var cmps []*comparison
		for i := range all {
			if o.wants(all[i].name) {
				cmps = append(cmps, &comparison{scenario: &all[i], workers: c})
			}
		}
		r.comparisons = append(r.comparisons, cmps...)
		for round := 1; round <= o.rounds && ctx.Err() == nil; round++ {
			for _, cmp := range cmps {
				p := comparedRound{round: round, baseFirst: round%2 == 1}
				for _, side := range p.order() {
					if ctx.Err() != nil {
						break
					}
					m := sides[side].measure(ctx, cmp.scenario, c, o.warmup, o.duration)
					m.round = round
					label := fmt.Sprintf("%s C=%d #%d %s", cmp.scenario.name, c, round, sideNames[side])
					if notes := logCompared(stderr, label, m); len(notes) > 0 {
						failed = true
						r.notes = append(r.notes, notes...)
					}
					if side == sideBaseline {
						p.base = m
					} else {
						p.cur = m
					}
				}
				if ctx.Err() == nil {
					cmp.rounds = append(cmp.rounds, p)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	return writeReport(r, stdout, o.out, failed)
}

// logCompared prints one measurement's progress line and returns notes on
// what went wrong with it, if anything did.
func logCompared(w io.Writer, label string, m measurement) []string {
	if m.err != nil {
		fmt.Fprintf(w, "%-34s FAILED: %v\n", label, m.err)
		return []string{fmt.Sprintf("%s failed: %v", label, m.err)}
	}
	l := m.load
	fmt.Fprintf(w, "%-34s %8.0f req/s  p99 %s  errors %d  sink CPU/event %s  other load %.2f\n",
		label, l.rate(), fmtMs(l.percentile(.99)), l.errors, fmtUs(m.serverCPU), m.otherLoad)
	var notes []string
	if l.errors > 0 {
		notes = append(notes, fmt.Sprintf("%s: %d errors, e.g. %v", label, l.errors, l.firstErr))
	}
	if l.n == 0 {
		notes = append(notes, label+": no successful request")
	}
	return notes
}
