package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets not relative to a reference.
const (
	maxSinkCPU       = 25 * time.Microsecond // sink CPU per event
	maxManyConnsPeak = 64 << 20              // sink peak RSS with 1,000 HTTP clients
)

// table is rows of cells under a header, printed aligned as text or as
// Markdown.
type table struct {
	header []string
	rows   [][]string
	// numeric reports whether column i holds numbers (right-aligned); by
	// default every column but the first two and the last does.
	numeric func(i, n int) bool
}

func (t *table) isNumeric(i int) bool {
	if t.numeric != nil {
		return t.numeric(i, len(t.header))
	}
	return i > 1 && i != len(t.header)-1
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// text writes t with aligned columns.
func (t *table) text(w io.Writer) {
	width := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := width[i] - len([]rune(c))
			if t.isNumeric(i) {
				b.WriteString(strings.Repeat(" ", pad) + c + "  ")
			} else {
				b.WriteString(c + strings.Repeat(" ", pad) + "  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
}

// markdown writes t as a Markdown table.
func (t *table) markdown(w io.Writer) {
	fmt.Fprintln(w, "| "+strings.Join(t.header, " | ")+" |")
	seps := make([]string, len(t.header))
	for i := range seps {
		if t.isNumeric(i) {
			seps[i] = "---:"
		} else {
			seps[i] = "---"
		}
	}
	fmt.Fprintln(w, "| "+strings.Join(seps, " | ")+" |")
	for _, r := range t.rows {
		fmt.Fprintln(w, "| "+strings.Join(r, " | ")+" |")
	}
}

// report is everything one run measured.
type report struct {
	source   string // which code was measured
	started  time.Time
	command  string
	duration time.Duration
	warmup   time.Duration
	rounds   int           // rounds at the largest concurrency
	rr       []measurement // request-response scenarios
	fanout   []fanoutResult
	conns    *connsResult
	resume   *resumeResult
	notes    []string // failures and example errors
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

func fmtUs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/1e3)
}

func fmtMiB(b int64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func fmtRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	default:
		return fmt.Sprintf("%.1f", r)
	}
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// reference returns the measurement of sc's reference at the same
// concurrency.
func (r *report) reference(m measurement) *measurement {
	for i := range r.rr {
		o := &r.rr[i]
		if o.scenario.name == m.scenario.ref && o.workers == m.workers && o.round == m.round && o.err == nil {
			return o
		}
	}
	return nil
}

// noisyLoad is the other load, in cores, above which a line's throughput
// and latency are marked as disturbed.
const noisyLoad = 0.5

// targetCheck is one target of one line.
type targetCheck struct {
	line string // e.g. "rest-sink C=64 throughput"
	want string // e.g. "≥ 0.60× http-echo"
	got  string
	ok   bool
	// noisy: the line or its reference ran while other processes used more
	// than noisyLoad cores.
	noisy bool
}

// rrTable builds the request-response table and the target checks. A line
// measured in several rounds has one row per round and one check per
// target, judged on the median of its rounds.
func (r *report) rrTable() (*table, []targetCheck) {
	t := &table{header: []string{"scenario", "C", "req/s", "p50", "p90", "p99", "errors",
		"server CPU/req", "proc CPU/req", "peak RSS", "RSS after", "other load", "× ref req/s", "× ref p99", "× ref CPU", "targets"}}
	rounds := map[string]int{} // line → rounds measured
	for _, m := range r.rr {
		line := fmt.Sprintf("%s C=%d", m.scenario.name, m.workers)
		rounds[line] = max(rounds[line], m.round)
	}
	var (
		order  []string // checks in the order of their first line
		values = map[string][]float64{}
		noisy  = map[string]bool{}
		wants  = map[string]func(float64) (string, bool){}
	)
	check := func(name string, v float64, isNoisy bool, want func(float64) (string, bool)) bool {
		if _, seen := values[name]; !seen {
			order = append(order, name)
			wants[name] = want
		}
		values[name] = append(values[name], v)
		noisy[name] = noisy[name] || isNoisy
		_, ok := want(v)
		return ok
	}
	for _, m := range r.rr {
		name := m.scenario.name
		line := fmt.Sprintf("%s C=%d", name, m.workers)
		c := fmt.Sprint(m.workers)
		if rounds[line] > 1 {
			c = fmt.Sprintf("%d #%d", m.workers, m.round)
		}
		if m.err != nil {
			t.add(name, c, "failed", "", "", "", "", "", "", "", "", "", "", "", "", "see notes")
			continue
		}
		l := m.load
		row := []string{name, c, fmtRate(l.rate()), fmtMs(l.percentile(.5)), fmtMs(l.percentile(.9)),
			fmtMs(l.percentile(.99)), fmt.Sprint(l.errors), fmtUs(m.serverCPU), fmtUs(m.procCPU),
			fmtMiB(m.peakRSS), fmtMiB(m.rss), fmt.Sprintf("%.2f", m.otherLoad)}
		var verdicts []string
		if m.scenario.ref == "" {
			row = append(row, "", "", "", "")
			t.add(row...)
			continue
		}
		if ref := r.reference(m); ref != nil && ref.load.rate() > 0 && ref.load.percentile(.99) > 0 {
			thr := l.rate() / ref.load.rate()
			p99 := float64(l.percentile(.99)) / float64(ref.load.percentile(.99))
			row = append(row, fmt.Sprintf("%.3f", thr), fmt.Sprintf("%.3f", p99), "–")
			if ref.serverCPU > 0 {
				// What the sink spends per request against what the bare
				// reference server spends: the CPU target's context.
				row[len(row)-1] = fmt.Sprintf("%.2f", float64(m.serverCPU)/float64(ref.serverCPU))
			}
			if m.scenario.noTargets != "" {
				t.add(append(row, "none ("+m.scenario.noTargets+")")...)
				continue
			}
			isNoisy := m.otherLoad > noisyLoad || ref.otherLoad > noisyLoad
			minThr, refName := m.scenario.minThroughput, ref.scenario.name
			ok := check(line+" req/s", thr, isNoisy, func(v float64) (string, bool) {
				return fmt.Sprintf("≥ %.2f× %s", minThr, refName), v >= minThr
			})
			verdicts = append(verdicts, "req/s "+passMiss(ok))
			if minDel := m.scenario.minDelivery; minDel > 0 {
				ok := check(line+" delivered/s", m.deliveryRate()/ref.load.rate(), isNoisy, func(v float64) (string, bool) {
					return fmt.Sprintf("≥ %.2f× %s req/s", minDel, refName), v >= minDel
				})
				verdicts = append(verdicts, "delivered "+passMiss(ok))
			}
			if maxP99 := m.scenario.maxP99; maxP99 > 0 {
				ok := check(line+" p99", p99, isNoisy, func(v float64) (string, bool) {
					return fmt.Sprintf("≤ %.2f× %s", maxP99, refName), v <= maxP99
				})
				verdicts = append(verdicts, "p99 "+passMiss(ok))
			}
			if isNoisy {
				verdicts = append(verdicts, "noisy")
			}
		} else {
			row = append(row, "–", "–", "–")
		}
		if m.scenario.noTargets != "" {
			t.add(append(row, "none ("+m.scenario.noTargets+")")...)
			continue
		}
		if m.scenario.noCPUTarget {
			t.add(append(row, strings.Join(verdicts, ", "))...)
			continue
		}
		ok := check(line+" sink CPU/req", float64(m.serverCPU), false, func(v float64) (string, bool) {
			return "≤ " + fmtUs(maxSinkCPU), time.Duration(v) <= maxSinkCPU
		})
		verdicts = append(verdicts, "cpu "+passMiss(ok))
		row = append(row, strings.Join(verdicts, ", "))
		t.add(row...)
	}
	var checks []targetCheck
	for _, name := range order {
		vs := values[name]
		cpu := strings.HasSuffix(name, " CPU/req")
		format := func(v float64) string {
			if cpu {
				return fmtUs(time.Duration(v))
			}
			return fmt.Sprintf("%.3f×", v)
		}
		med := median(vs)
		want, ok := wants[name](med)
		got := format(med)
		if len(vs) > 1 {
			all := make([]string, len(vs))
			for i, v := range vs {
				all[i] = strings.TrimSuffix(format(v), "×")
			}
			got += fmt.Sprintf(" (median of %s)", strings.Join(all, ", "))
		}
		checks = append(checks, targetCheck{line: name, want: want, got: got, ok: ok, noisy: noisy[name]})
	}
	return t, checks
}

// durableTable builds the durable lines' table: intake against delivery.
func (r *report) durableTable() *table {
	t := &table{header: []string{"scenario", "C", "processor", "intake req/s", "intake p99", "delivered/s", "drain",
		"waiting at end", "× ref req/s", "delivered × ref req/s"}}
	for _, m := range r.rr {
		if !m.scenario.durable {
			continue
		}
		c := fmt.Sprint(m.workers)
		if m.round > 1 || r.rounds > 1 && m.workers == r.maxWorkers() {
			c = fmt.Sprintf("%d #%d", m.workers, m.round)
		}
		if m.err != nil {
			t.add(m.scenario.name, c, "failed", "", "", "", "", "", "", "")
			continue
		}
		how, drain := "up", "–"
		if m.scenario.burst {
			how, drain = "away, then back", m.drain.Round(10*time.Millisecond).String()
		}
		thr, del := "–", "–"
		if ref := r.reference(m); ref != nil && ref.load.rate() > 0 {
			thr = fmt.Sprintf("%.3f", m.load.rate()/ref.load.rate())
			del = fmt.Sprintf("%.3f", m.deliveryRate()/ref.load.rate())
		}
		t.add(m.scenario.name, c, how, fmtRate(m.load.rate()), fmtMs(m.load.percentile(.99)), fmtRate(m.deliveryRate()),
			drain, fmt.Sprint(m.backlog), thr, del)
	}
	if len(t.rows) == 0 {
		return nil
	}
	return t
}

// maxWorkers is the largest concurrency measured.
func (r *report) maxWorkers() int {
	n := 0
	for _, m := range r.rr {
		n = max(n, m.workers)
	}
	return n
}

// median returns the median of vs.
func median(vs []float64) float64 {
	vs = slices.Sorted(slices.Values(vs))
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// fanoutTable builds the pub/sub table.
func (r *report) fanoutTable() *table {
	t := &table{header: []string{"subscribers", "senders", "events/s sent", "deliveries/s", "in window",
		"after drain", "drain", "missed", "send p99", "errors", "sink CPU/delivery", "sink peak RSS", "notes"}}
	for _, f := range r.fanout {
		if f.err != nil {
			t.add(fmt.Sprint(f.subscribers), fmt.Sprint(f.senders), "failed", "", "", "", "", "", "", "", "", "", "see notes")
			continue
		}
		share := "–"
		if want := int64(f.load.n) * int64(f.subscribers); want > 0 {
			share = fmt.Sprintf("%.1f%%", 100*float64(f.delivered)/float64(want))
		}
		note := ""
		if f.subErrors > 0 {
			note = fmt.Sprintf("%d subscriptions ended", f.subErrors)
		}
		t.add(fmt.Sprint(f.subscribers), fmt.Sprint(f.senders), fmtRate(f.load.rate()), fmtRate(f.deliveryRate()),
			share, fmt.Sprintf("%.1f%%", 100*f.drained), f.drain.Round(10*time.Millisecond).String(), fmt.Sprint(f.missed), fmtMs(f.load.percentile(.99)), fmt.Sprint(f.load.errors),
			fmtUs(f.sinkCPU), fmtMiB(f.peakRSS), note)
	}
	return t
}

// connsTable builds the many-connections table and its target check.
func (r *report) connsTable() (*table, []targetCheck) {
	t := &table{header: []string{"HTTP clients", "C", "req/s", "p50", "p99", "errors", "sink peak RSS",
		"RSS right after", fmt.Sprintf("RSS after %v idle", idleWait), "RSS after close", "target"}}
	c := r.conns
	if c == nil {
		return nil, nil
	}
	if c.err != nil {
		t.add(fmt.Sprint(c.conns), fmt.Sprint(c.conns), "failed", "", "", "", "", "", "", "", "see notes")
		return t, nil
	}
	ok := c.peakRSS <= maxManyConnsPeak
	t.add(fmt.Sprint(c.conns), fmt.Sprint(c.conns), fmtRate(c.load.rate()), fmtMs(c.load.percentile(.5)),
		fmtMs(c.load.percentile(.99)), fmt.Sprint(c.load.errors), fmtMiB(c.peakRSS), fmtMiB(c.rssAfter),
		fmtMiB(c.rssIdle), fmtMiB(c.rssClosed), "peak ≤ 64 MiB "+passMiss(ok))
	return t, []targetCheck{{fmt.Sprintf("rest-sink with %d keep-alive clients: peak RSS", c.conns), "≤ 64.0 MiB", fmtMiB(c.peakRSS), ok, false}}
}

// targetsTable lists every target check.
func targetsTable(checks []targetCheck) *table {
	t := &table{header: []string{"line", "target", "measured", "verdict"}}
	for _, c := range checks {
		v := passMiss(c.ok)
		if c.noisy {
			v += fmt.Sprintf(" (noisy: other load > %.1f core)", noisyLoad)
		}
		t.add(c.line, c.want, c.got, v)
	}
	return t
}

// print writes the report as text.
func (r *report) print(w io.Writer) {
	rr, checks := r.rrTable()
	if len(r.rr) > 0 {
		fmt.Fprintf(w, "\nRequest-response (%v measured per line after %v warm-up; CPU and RSS are of the server process: reference server or sink)\n\n", r.duration, r.warmup)
		rr.text(w)
	}
	if dt := r.durableTable(); dt != nil {
		fmt.Fprintf(w, "\nDurable intake and delivery (processor away: intake alone, then the drain; -steady: both together)\n\n")
		dt.text(w)
	}
	if len(r.fanout) > 0 {
		fmt.Fprintf(w, "\nPub/sub fan-out (gRPC Subscribe clients; events sent with unary Send to a processor that publishes each)\n\n")
		r.fanoutTable().text(w)
	}
	if ct, cc := r.connsTable(); ct != nil {
		fmt.Fprintf(w, "\nMany concurrent HTTP clients (REST → sink → processor)\n\n")
		ct.text(w)
		checks = append(checks, cc...)
	}
	if rt, rc := r.resumeTable(); rt != nil {
		fmt.Fprintf(w, "\nSSE resume on another sink (two sinks sharing one NATS)\n\n")
		rt.text(w)
		checks = append(checks, rc...)
	}
	if len(checks) > 0 {
		fmt.Fprintf(w, "\nTargets (informational)\n\n")
		targetsTable(checks).text(w)
	}
	if len(r.notes) > 0 {
		fmt.Fprintf(w, "\nNotes\n\n")
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

// markdown writes the report as the Markdown page docs/benchmarks.md.
func (r *report) markdown(w io.Writer) {
	fmt.Fprintf(w, "# Benchmarks\n\n")
	fmt.Fprintf(w, "Generated by `make bench` (`internal/bench`); do not edit by hand. "+
		"Method and analysis: [performance.md](performance.md).\n\n")
	fmt.Fprintf(w, "- date: %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- machine: %d CPUs (%s), %s, Linux %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), kernel())
	fmt.Fprintf(w, "- command: `%s`\n", r.command)
	fmt.Fprintf(w, "- source: %s\n", r.source)
	fmt.Fprintf(w, "- each line: servers started fresh, %v warm-up, %v measured; closed-loop Go client with C workers "+
		"in the same process for every line; the load client, the sink and the processor share the CPUs\n", r.warmup, r.duration)
	if r.rounds > 1 {
		fmt.Fprintf(w, "- the lines at the largest concurrency were measured in %d rounds, each running every scenario in turn "+
			"(`C` shows the round as `#n`); a sink line is compared with its reference in the same round, and each target "+
			"is judged on the median of the rounds\n", r.rounds)
	}
	fmt.Fprintln(w)
	rr, checks := r.rrTable()
	if len(r.rr) > 0 {
		fmt.Fprintf(w, "## Request-response\n\n")
		fmt.Fprintf(w, "`server CPU/req` and the RSS columns are of the measured server process: the reference server, "+
			"or the sink (`eventproc`) for `*-sink` lines; `proc CPU/req` is the echo processor's. "+
			"`× ref` compares a sink line with its reference at the same C in this run "+
			"(rest-sink/http-echo, grpc-sink/grpc-echo, stream-sink/stream-echo, rest-durable(-steady)/rest-sink, stream-durable(-steady)/stream-sink, and stream-batch-sink/stream-echo for comparison only: it batches, the reference does not); "+
			"`× ref CPU` is the sink's CPU per request over the reference server's, which puts the absolute CPU target in context. "+
			"`other load` is the CPU (in cores) that processes outside the benchmark used during the window: "+
			"anything well above 0 means the line was disturbed by other work on the machine.\n\n")
		rr.markdown(w)
	}
	if dt := r.durableTable(); dt != nil {
		fmt.Fprintf(w, "\n## Durable intake and delivery\n\n")
		fmt.Fprintf(w, "Durable lines send to a durable route (`--durable hello`, the embedded JetStream store in a fresh "+
			"`--data-dir`, as a single sink runs by default): intake is answered once the event is stored (202, `OUTCOME_STORED`). "+
			"`rest-durable` and `stream-durable` play out a processor outage: the echo processor is stopped for the window, so "+
			"intake is measured alone; then it is started again, and `delivered/s` is the events stored (from the warm-up on) "+
			"over the `drain` time until the sink had delivered and acked them all. The `-steady` lines keep the processor up: "+
			"delivery runs during the window, on the same two cores, and `delivered/s` counts the events acked in it "+
			"(`waiting at end` is the backlog when it closed); there delivery equals intake, and both are bounded by the "+
			"machine (docs/performance.md). Counts come from the sink's `eventproc_durable_*_total` metrics. All are compared "+
			"with the request-response line of the same path (rest-sink, stream-sink) in the same round. The sink CPU target "+
			"does not apply: the sink process hosts the store.\n\n")
		dt.markdown(w)
	}
	if len(r.fanout) > 0 {
		fmt.Fprintf(w, "\n## Pub/sub fan-out\n\n")
		fmt.Fprintf(w, "gRPC `Subscribe` clients in the benchmark process; events are sent with unary `Send` "+
			"to `proc --publish`, which publishes a copy of each. `in window` is deliveries during the window over "+
			"events sent in it × subscribers (below 100 %% when subscribers lag); `after drain` the same once the senders "+
			"stopped and deliveries caught up, which took `drain`; "+
			"`missed` is the sum of `SubscribeResponse.missed` (events the hub dropped for slow subscribers).\n\n")
		r.fanoutTable().markdown(w)
	}
	if ct, cc := r.connsTable(); ct != nil {
		fmt.Fprintf(w, "\n## Many concurrent HTTP clients\n\n")
		fmt.Fprintf(w, "Closed loop with one keep-alive connection per client on the REST path; the sink's resident set "+
			"is sampled right after the load, after %v idle with the connections open, and %v after the clients closed them.\n\n",
			idleWait, idleWait)
		ct.markdown(w)
		checks = append(checks, cc...)
	}
	if rt, rc := r.resumeTable(); rt != nil {
		fmt.Fprintf(w, "\n## SSE resume on another sink\n\n")
		fmt.Fprintf(w, "Two sinks share one NATS (the first's embedded server, `--nats-listen`; the second `--nats-url`), "+
			"with `proc --publish` behind them. A Server-Sent Events client subscribes on sink A, %d events are posted "+
			"there, the client reads half of the published copies on A, then reconnects to sink B with `Last-Event-ID` and "+
			"reads the rest. `exact`: B gave every later event once, in stream order, and nothing before; the times run "+
			"from B's request.\n\n", resumeEvents)
		rt.markdown(w)
		checks = append(checks, rc...)
	}
	if len(checks) > 0 {
		fmt.Fprintf(w, "\n## Targets\n\n")
		targetsTable(checks).markdown(w)
	}
	if len(r.notes) > 0 {
		fmt.Fprintf(w, "\n## Notes\n\n")
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+strings.ReplaceAll(n, "\n", " "))
		}
	}
}

// cpuModel returns the CPU model name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// kernel returns the kernel release.
func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
