//go:build unix

package chaos

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// phaseSpan is a stretch of the run; a request belongs to the phase in
// which it started.
type phaseSpan struct {
	name     string
	cycle    int // 0 for the warm-up
	from, to time.Time
	counts   [numVia]counts
}

// counts tallies answers.
type counts struct {
	total, okA, okB, okOther, s503, s504, bad int
}

func (c *counts) add(r *record) {
	c.total++
	switch {
	case r.err != "":
		c.bad++
	case r.status == http.StatusOK && r.processedBy == "A":
		c.okA++
	case r.status == http.StatusOK && r.processedBy == "B":
		c.okB++
	case r.status == http.StatusOK:
		c.okOther++
	case r.status == http.StatusServiceUnavailable:
		c.s503++
	case r.status == http.StatusGatewayTimeout:
		c.s504++
	default:
		c.bad++
	}
}

// cycleResult is what one cycle measured for the requests of one API.
type cycleResult struct {
	cycle
	via       via
	aRecovery time.Duration // A's listening line to its first 200; -1: none
	bRecovery time.Duration // SIGCONT to B's first 200 for a request started after it; -1: none
	aDeadOK   int           // 200s from B for requests started after A's death + grace
	frozenOK  int           // 200s from A for requests started after B's freeze + detection
	frozenBad int           // other answers to those requests
}

// report is the outcome of a run: its numbers and every failed check.
type report struct {
	cfg                   config
	loadStart, loadEnd    time.Time
	kinds                 []via // the APIs the load used: HTTP, Stream or both
	all                   counts
	by                    [numVia]counts
	faults                int // of the Stream load: answers nobody waited for, broken streams
	phases                []phaseSpan
	ncycles               int
	cycles                []cycleResult // by cycle, then API
	latency               [numVia]latencies
	maxLate               time.Duration // the latest answer's time past its deadline
	before, after         sinkStats
	replicas              []*replica // names the targets of per-target metrics
	eventsSeen, eventsSum float64    // answers the client saw and the sink counted; eventsSum -1 without metrics
	failures              []string
}

// latencies sums up the latencies of one API's requests.
type latencies struct{ p50, p99, max time.Duration }

func (rep *report) failf(format string, args ...any) {
	rep.failures = append(rep.failures, fmt.Sprintf(format, args...))
}

// at prints t as seconds since the load started.
func (rep *report) at(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(rep.loadStart).Seconds())
}

func (rep *report) describe(r *record) string {
	s := fmt.Sprintf("%s request %s (started %s, took %s)", r.via, r.payload, rep.at(r.start), fmtDur(r.latency()))
	switch {
	case r.err != "":
		s += ": " + r.err
	case r.status == http.StatusOK:
		s += fmt.Sprintf(": 200 from %q echoing %q", r.processedBy, r.echoed)
	default:
		s += fmt.Sprintf(": %d %s", r.status, r.body)
	}
	return s
}

// analyse checks the records, and the faults of the Stream load, against
// the scenario.
func analyse(cfg config, records []record, faults []fault, cycles []cycle, loadStart, loadEnd time.Time, before, after sinkStats) *report {
	rep := &report{cfg: cfg, loadStart: loadStart, loadEnd: loadEnd, before: before, after: after, maxLate: -deadline}
	rep.faults = len(faults)
	for _, f := range faults {
		rep.failf("Stream load at %s: %s", rep.at(f.at), f.what)
	}
	workers := [numVia]int{viaHTTP: cfg.clients, viaStream: cfg.streamClients}
	for v := range numVia {
		if workers[v] > 0 || slices.ContainsFunc(records, func(r record) bool { return r.via == v }) {
			rep.kinds = append(rep.kinds, v)
		}
	}
	if len(records) == 0 {
		rep.failf("no requests were sent")
		return rep
	}

	// Phases: the warm-up, then each cycle's four.
	rep.phases = append(rep.phases, phaseSpan{name: phaseSteady, from: loadStart, to: cycles[0].kill})
	for i, c := range cycles {
		next := loadEnd
		if i+1 < len(cycles) {
			next = cycles[i+1].kill
		}
		rep.phases = append(rep.phases,
			phaseSpan{name: phaseADead, cycle: c.n, from: c.kill, to: c.restart},
			phaseSpan{name: phaseABack, cycle: c.n, from: c.restart, to: c.stop},
			phaseSpan{name: phaseBFrozen, cycle: c.n, from: c.stop, to: c.cont},
			phaseSpan{name: phaseBBack, cycle: c.n, from: c.cont, to: next})
	}

	// Every request: one answer, a permitted status, in time, its own echo.
	replyIDs := make(map[string]string, len(records))
	var lat [numVia][]time.Duration
	for i := range records {
		r := &records[i]
		rep.all.add(r)
		rep.by[r.via].add(r)
		for j := range rep.phases {
			p := &rep.phases[j]
			if last := j == len(rep.phases)-1; !r.start.Before(p.from) && (r.start.Before(p.to) || last) {
				p.counts[r.via].add(r)
				break
			}
		}
		late := r.latency() - deadline
		rep.maxLate = max(rep.maxLate, late)
		lat[r.via] = append(lat[r.via], r.latency())
		switch {
		case r.err != "":
			rep.failf("no answer: %s", rep.describe(r))
			continue
		case r.status != http.StatusOK && r.status != http.StatusServiceUnavailable && r.status != http.StatusGatewayTimeout:
			rep.failf("status %d, want 200, 503 or 504: %s", r.status, rep.describe(r))
		}
		if late > cfg.slack {
			rep.failf("answered %s after its %s deadline (slack %s): %s", fmtDur(late), deadline, cfg.slack, rep.describe(r))
		}
		if r.status != http.StatusOK {
			continue
		}
		if r.echoed != r.payload {
			rep.failf("reply echoes another payload: %s", rep.describe(r))
		}
		if r.processedBy != "A" && r.processedBy != "B" {
			rep.failf("reply with processed_by %q, want A or B: %s", r.processedBy, rep.describe(r))
		}
		if r.replyID == "" {
			rep.failf("reply without an event id: %s", rep.describe(r))
		} else if r.id != "" && r.replyID != r.id {
			rep.failf("reply carries event id %s, not its request's %s: %s", r.replyID, r.id, rep.describe(r))
		} else if other, dup := replyIDs[r.replyID]; dup {
			rep.failf("reply event id %s answered two requests, %s and %s", r.replyID, other, r.payload)
		} else {
			replyIDs[r.replyID] = r.payload
		}
	}
	for _, v := range rep.kinds {
		ls := lat[v]
		if len(ls) == 0 {
			rep.failf("no %s requests were sent", v)
			continue
		}
		slices.Sort(ls)
		rep.latency[v] = latencies{p50: ls[len(ls)/2], p99: ls[len(ls)*99/100], max: ls[len(ls)-1]}
	}

	rep.ncycles = len(cycles)
	for _, c := range cycles {
		for _, v := range rep.kinds {
			rep.cycles = append(rep.cycles, rep.checkCycle(c, v, records))
		}
	}
	rep.checkSink()
	return rep
}

// checkCycle checks, for the requests that went through v, what must hold
// while A is dead, after it restarts, while B is frozen and after it thaws.
func (rep *report) checkCycle(c cycle, v via, records []record) cycleResult {
	cfg := rep.cfg
	res := cycleResult{cycle: c, via: v, aRecovery: -1, bRecovery: -1}
	var firstA, firstB *record
	var aDeadFailed, frozenFailed []*record
	for i := range records {
		r := &records[i]
		if r.via != v {
			continue
		}
		ok := r.err == "" && r.status == http.StatusOK
		switch {
		case !r.start.Before(c.aExited) && r.start.Before(c.restart):
			// A is dead: no answer can come from it, and after the
			// grace every request goes to B.
			if ok && r.processedBy == "A" {
				rep.failf("cycle %d, %s: 200 from A while A was dead (%s..%s): %s", c.n, v, rep.at(c.aExited), rep.at(c.restart), rep.describe(r))
			}
			if !r.start.Before(c.aExited.Add(cfg.grace)) {
				if ok && r.processedBy == "B" {
					res.aDeadOK++
				} else {
					aDeadFailed = append(aDeadFailed, r)
				}
			}
		case !r.start.Before(c.stop) && r.start.Before(c.cont):
			// B is frozen: it answers nothing until SIGCONT, and once
			// the sink noticed, every request goes to A.
			if ok && r.processedBy == "B" && r.start.After(c.stop.Add(100*time.Millisecond)) && r.end.Before(c.cont) {
				rep.failf("cycle %d, %s: 200 from B while B was stopped (%s..%s): %s", c.n, v, rep.at(c.stop), rep.at(c.cont), rep.describe(r))
			}
			// A request sent just before SIGCONT may reach the sink after
			// it and be served by the thawed B at once: that is no failure.
			thawedB := ok && r.processedBy == "B" && !r.end.Before(c.cont) && r.end.Sub(r.start) < 100*time.Millisecond
			if cfg.detectIn > 0 && !r.start.Before(c.stop.Add(cfg.detectIn)) && !thawedB {
				if ok && r.processedBy == "A" {
					res.frozenOK++
				} else {
					frozenFailed = append(frozenFailed, r)
				}
			}
		}
		if ok && r.processedBy == "A" && !r.start.Before(c.restart) && (firstA == nil || r.end.Before(firstA.end)) {
			firstA = r
		}
		if ok && r.processedBy == "B" && !r.start.Before(c.cont) && (firstB == nil || r.end.Before(firstB.end)) {
			firstB = r
		}
	}

	if len(aDeadFailed) > 0 {
		rep.failf("cycle %d, %s: %d requests started while A was dead (after %s grace) were not answered 200 by B; first: %s",
			c.n, v, len(aDeadFailed), cfg.grace, rep.describe(aDeadFailed[0]))
	}
	if res.aDeadOK == 0 && c.restart.Sub(c.aExited) > cfg.grace {
		rep.failf("cycle %d, %s: no request succeeded on B while A was dead", c.n, v)
	}
	if firstA == nil {
		rep.failf("cycle %d, %s: A never answered again after its restart at %s", c.n, v, rep.at(c.aListening))
	} else {
		res.aRecovery = max(firstA.end.Sub(c.aListening), 0)
		if res.aRecovery > cfg.recover {
			rep.failf("cycle %d, %s: first 200 from the restarted A came %s after it listened, want within %s: %s",
				c.n, v, fmtDur(res.aRecovery), cfg.recover, rep.describe(firstA))
		}
	}
	res.frozenBad = len(frozenFailed)
	if cfg.detectIn > 0 && c.cont.Sub(c.stop) > cfg.detectIn {
		if len(frozenFailed) > 0 {
			noticed := "the sink logged no stream to B going down during the freeze"
			if !c.bNoticed.IsZero() {
				noticed = fmt.Sprintf("the sink logged a stream to B down %s after SIGSTOP", fmtDur(c.bNoticed.Sub(c.stop)))
			}
			rep.failf("cycle %d, %s: %d requests started while B was frozen, %s or more after SIGSTOP (by then the sink should have noticed: "+
				"-chaos.detect, by default keepalive + timeout + 500ms), were not answered 200 by A (%s); first: %s",
				c.n, v, len(frozenFailed), cfg.detectIn, noticed, rep.describe(frozenFailed[0]))
		}
		if res.frozenOK == 0 {
			rep.failf("cycle %d, %s: no request succeeded on A after the sink should have noticed B's freeze", c.n, v)
		}
	}
	if firstB == nil || firstB.end.After(c.end) {
		rep.failf("cycle %d, %s: B served no request within %s of SIGCONT", c.n, v, c.end.Sub(c.cont).Round(time.Millisecond))
	}
	if firstB != nil {
		res.bRecovery = firstB.end.Sub(c.cont)
	}
	return res
}

// checkSink checks the sink's resources after the load against before, and
// that it counted as many answers as the clients got.
func (rep *report) checkSink() {
	b, a := rep.before, rep.after
	if a.goroutines > b.goroutines+rep.cfg.goMargin {
		rep.failf("sink %s: %.0f after the load, %.0f before; want at most %.0f more (after a 5s settle)",
			a.goroutineLabel(), a.goroutines, b.goroutines, rep.cfg.goMargin)
	}
	if a.rss > b.rss+rep.cfg.rssMargin {
		rep.failf("sink RSS: %s after the load, %s before; want at most %s more", mib(a.rss), mib(b.rss), mib(rep.cfg.rssMargin))
	}
	for target, n := range a.byTarget[metricInflight] {
		if n != 0 {
			rep.failf("the sink still has %.0f requests in flight to %s after the load (%s)", n, target, metricInflight)
		}
	}
	rep.eventsSeen = float64(rep.all.total - rep.all.bad)
	rep.eventsSum = -1
	if a.events == nil {
		return
	}
	rep.eventsSum = 0
	for code, n := range a.events {
		rep.eventsSum += n - b.events[code]
	}
	if rep.eventsSum != rep.eventsSeen {
		rep.failf("the sink counted %.0f answers to TYPE_HELLO events (eventproc_events_total), the clients got %.0f",
			rep.eventsSum, rep.eventsSeen)
	}
}

// summary prints the report as tables.
func (rep *report) summary() string {
	var sb strings.Builder
	cfg := rep.cfg
	var load []string
	for _, v := range rep.kinds {
		switch v {
		case viaHTTP:
			load = append(load, fmt.Sprintf("%d HTTP clients (Grpc-Timeout %s)", cfg.clients, grpcTimeout(deadline)))
		case viaStream:
			load = append(load, fmt.Sprintf("%d Stream workers on %d streams (timeout %s)", cfg.streamClients, cfg.streams, deadline))
		}
	}
	fmt.Fprintf(&sb, "=== chaos summary: load %s, %s, deadline %s, slack %s, %d cycle(s)\n",
		fmtDur(rep.loadEnd.Sub(rep.loadStart)), strings.Join(load, " + "), deadline, cfg.slack, rep.ncycles)
	ka := "sink without --keepalive flags"
	if cfg.keepalive {
		ka = fmt.Sprintf("sink --keepalive %s --keepalive-timeout %s", keepalive, keepaliveTimeout)
	}
	detect := "no check"
	if cfg.detectIn > 0 {
		detect = "all 200 from A from " + fmtDur(cfg.detectIn)
	}
	fmt.Fprintf(&sb, "scenario: A dead %s, steady %s, B frozen %s (%s), %s; recovery within %s\n",
		cfg.dead, cfg.steady, cfg.freeze, detect, ka, cfg.recover)
	fmt.Fprintf(&sb, "requests: %d total, %d other/no answer; max beyond deadline: %s (allowed %s)\n",
		rep.all.total, rep.all.bad+rep.all.okOther, fmtDur(max(rep.maxLate, 0)), cfg.slack)
	for _, v := range rep.kinds {
		a, l := rep.by[v], rep.latency[v]
		fmt.Fprintf(&sb, "  %-6s %d; 200: %d (A %d, B %d, other %d); 503: %d; 504: %d; other/no answer: %d; latency p50 %s, p99 %s, max %s\n",
			v, a.total, a.okA+a.okB+a.okOther, a.okA, a.okB, a.okOther, a.s503, a.s504, a.bad,
			fmtDur(l.p50), fmtDur(l.p99), fmtDur(l.max))
	}
	if slices.Contains(rep.kinds, viaStream) {
		fmt.Fprintf(&sb, "  Stream faults (answers nobody waited for, streams ended early): %d\n", rep.faults)
	}

	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "phase\tcycle\tfrom\tto\t")
	for _, v := range rep.kinds {
		fmt.Fprintf(tw, "%s\t200 A\t200 B\t503\t504\tbad\t", v)
	}
	fmt.Fprintln(tw)
	for _, p := range rep.phases {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t", p.name, p.cycle, rep.at(p.from), rep.at(p.to))
		for _, v := range rep.kinds {
			c := p.counts[v]
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t", c.total, c.okA, c.okB, c.s503, c.s504, c.bad+c.okOther)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	tw = tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cycle\tvia\tA dead for\tA listen→first 200 A\t200 B while A dead\tB frozen for\tsink noticed after\t200 A after detection\tbad after detection\tSIGCONT→first 200 B\t")
	for _, c := range rep.cycles {
		noticed := time.Duration(-1)
		if !c.bNoticed.IsZero() {
			noticed = c.bNoticed.Sub(c.stop)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t\n", c.n, c.via,
			fmtDur(c.restart.Sub(c.aExited)), optDur(c.aRecovery), c.aDeadOK,
			fmtDur(c.cont.Sub(c.stop)), optDur(noticed), c.frozenOK, c.frozenBad, optDur(c.bRecovery))
	}
	tw.Flush()

	b, af := rep.before, rep.after
	fmt.Fprintf(&sb, "sink (from %s): %s %.0f → %.0f (limit +%.0f); RSS %s → %s (limit +%s)\n",
		b.source, b.goroutineLabel(), b.goroutines, af.goroutines, cfg.goMargin, mib(b.rss), mib(af.rss), mib(cfg.rssMargin))
	if rep.eventsSum >= 0 {
		fmt.Fprintf(&sb, "sink counted %.0f answers, clients got %.0f\n", rep.eventsSum, rep.eventsSeen)
	}
	for _, m := range []struct {
		name, what string
		counter    bool // show the increase over the run, not the value
	}{
		{metricReconnects, "stream reconnects", true},
		{metricDropped, "late or unknown replies dropped", true},
		{metricInflight, "requests in flight after the load", false},
	} {
		after := af.byTarget[m.name]
		if after == nil {
			continue
		}
		var parts []string
		for _, r := range rep.replicas {
			n := after[r.addr]
			if m.counter {
				n -= b.byTarget[m.name][r.addr]
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", r.name, n))
		}
		fmt.Fprintf(&sb, "sink %s: %s\n", m.what, strings.Join(parts, ", "))
	}
	if len(rep.failures) == 0 {
		sb.WriteString("result: PASS\n")
	} else {
		fmt.Fprintf(&sb, "result: FAIL (%d failed checks)\n", len(rep.failures))
	}
	return sb.String()
}

func optDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmtDur(d)
}
