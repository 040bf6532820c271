// Command bench measures the sink against reference servers in one run and
// writes the results as Markdown (docs/benchmarks.md); `make bench` runs it.
//
// It builds the sink (eventproc), the echo processor (proc) and itself into
// a temporary directory, then, for every scenario and concurrency, starts
// the servers fresh as child processes, loads them with the same
// closed-loop client, and samples their CPU time and memory from /proc.
// The lines at the largest concurrency, where the targets are set, run in
// several rounds (-rounds, default 3) and the targets are judged on the
// median of the rounds: on a shared virtual machine one line's throughput
// can move by a third between minutes.
// The reference servers are subcommands of this program:
//
//	bench serve-http-echo --addr ADDR     REST reference (net/http + protojson)
//	bench serve-grpc-echo --addr ADDR     unary gRPC reference (SinkService.Send echo)
//	bench serve-stream-echo --addr ADDR   bidi stream reference (ProcessorService.Process echo)
//
// and `bench profile` profiles the sink binary under load through its
// --debug-addr listener (see profile.go).
//
// With -baseline REV it compares instead of measuring against references:
// it builds the sink and the processor twice, from REV and from the working
// tree (or -rev), and in each round runs every sink scenario once with each
// pair of binaries, back to back, then reports current/baseline ratios of
// throughput and sink CPU per event, judged on the median of the rounds
// (see compare.go; `make bench-compare BASE=REV` runs it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand, or runs the benchmark suite.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case cmdHTTPEcho, cmdGRPCEcho, cmdStreamEcho:
			return serveRef(ctx, args[0], args[1:], stdout)
		case cmdProfile:
			return profile(ctx, args[1:], stdout, stderr)
		}
	}
	return suite(ctx, args, stdout, stderr)
}

// options are the suite's flags.
type options struct {
	duration, warmup time.Duration
	concurrency      []int
	scenarios        map[string]bool // nil: all
	subscribers      []int
	senders          int
	conns            int
	connsDuration    time.Duration
	out              string
	rev              string
	// baseline, when set, is the git revision to compare the sink and
	// processor with (compare.go) instead of running the suite.
	baseline string
	// rounds is how many times the lines at the largest concurrency are
	// measured, each round running every scenario once in turn.
	rounds int
}

// Names of the scenarios that are not request-response.
const (
	scFanout = "fanout"
	scConns  = "conns"
)

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `time` of each scenario at each concurrency")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before each measurement (0: duration/5, between 1s and 3s)")
	conc := fs.String("concurrency", "1,16,64", "comma-separated numbers of concurrent clients")
	scen := fs.String("scenarios", "", "comma-separated subset of: http-echo, rest-sink, grpc-echo, grpc-sink, stream-echo, "+
		"stream-sink, stream-batch-sink, rest-durable, stream-durable, rest-durable-steady, stream-durable-steady, fanout, conns, or the groups rest, grpc, stream (default all)")
	subs := fs.String("subscribers", "1,100,1000", "comma-separated subscriber counts for the fan-out scenario")
	fs.IntVar(&o.senders, "senders", 8, "concurrent Send clients driving the fan-out scenario")
	fs.IntVar(&o.conns, "conns", 1000, "concurrent keep-alive HTTP clients of the conns scenario")
	fs.DurationVar(&o.connsDuration, "conns-duration", 0, "measured time of the conns scenario (0: duration, at most 5s)")
	fs.IntVar(&o.rounds, "rounds", 3, "measure the lines at the largest concurrency this many times, "+
		"references and sink paths in turn, and judge the targets on the median")
	short := fs.Bool("short", false, "quick run: 2s per measurement, 500ms warm-up")
	fs.StringVar(&o.rev, "rev", "", "build the sink and processor from this git `revision` instead of the working tree")
	fs.StringVar(&o.baseline, "baseline", "", "compare with the sink and processor built from this git `revision`: "+
		"each round runs every sink scenario with the baseline and the current binaries in turn "+
		"(default -concurrency 64, no references unless named in -scenarios)")
	fs.StringVar(&o.out, "out", "", "also write the results as Markdown to this `file`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.baseline != "" && !set["concurrency"] {
		*conc = "64"
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *short {
		o.duration, o.warmup = 2*time.Second, 500*time.Millisecond
	}
	if o.duration <= 0 {
		return o, errors.New("-duration must be positive")
	}
	if o.warmup <= 0 {
		o.warmup = min(max(o.duration/5, time.Second), 3*time.Second)
	}
	if o.connsDuration <= 0 {
		o.connsDuration = min(o.duration, 5*time.Second)
	}
	var err error
	if o.concurrency, err = parseInts(*conc); err != nil {
		return o, fmt.Errorf("-concurrency: %w", err)
	}
	if o.subscribers, err = parseInts(*subs); err != nil {
		return o, fmt.Errorf("-subscribers: %w", err)
	}
	if o.senders < 1 || o.conns < 1 || o.rounds < 1 {
		return o, errors.New("-senders, -conns and -rounds must be at least 1")
	}
	if *scen != "" {
		o.scenarios = make(map[string]bool)
		known := []string{scFanout, scConns, scResume}
		for _, sc := range scenarios() {
			known = append(known, sc.name)
		}
		for name := range strings.SplitSeq(*scen, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "rest" || name == "grpc" || name == "stream":
				// The reference and every sink line compared with it; only
				// the sink lines when comparing with a baseline.
				ref := map[string]string{"rest": "http-echo", "grpc": "grpc-echo", "stream": "stream-echo"}[name]
				if o.baseline == "" {
					o.scenarios[ref] = true
				}
				// Sink lines compared with a sink line of the group (the
				// secure ones) come along.
				for _, sc := range scenarios() {
					if sc.ref == ref || o.scenarios[sc.ref] && sc.ref != "" {
						o.scenarios[sc.name] = true
					}
				}
			case slices.Contains(known, name):
				o.scenarios[name] = true
			default:
				return o, fmt.Errorf("-scenarios: unknown scenario %q (known: %s)", name, strings.Join(known, ", "))
			}
		}
	}
	if o.baseline != "" {
		if o.scenarios == nil {
			// Every sink scenario; references only when named.
			o.scenarios = make(map[string]bool)
			for _, sc := range scenarios() {
				o.scenarios[sc.name] = sc.ref != ""
			}
		}
		if o.scenarios[scFanout] || o.scenarios[scConns] || o.scenarios[scResume] {
			return o, fmt.Errorf("-baseline compares the request-response scenarios only, not %s, %s or %s", scFanout, scConns, scResume)
		}
	}
	return o, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o options) wants(name string) bool { return o.scenarios == nil || o.scenarios[name] }

// suite runs the benchmark suite and reports it.
func suite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.baseline != "" {
		return compare(ctx, o, args, stdout, stderr)
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	bins, err := buildBinaries(ctx, root, o.rev, stderr)
	if err != nil {
		return err
	}
	defer bins.remove()
	e := &env{bins: bins, log: stderr}
	r := &report{
		source:   describeSource(ctx, root, o.rev),
		started:  time.Now(),
		command:  strings.TrimSpace("go run ./internal/bench " + strings.Join(args, " ")),
		duration: o.duration,
		warmup:   o.warmup,
		rounds:   o.rounds,
	}
	failed := false
	note := func(format string, a ...any) {
		r.notes = append(r.notes, fmt.Sprintf(format, a...))
	}

	all := scenarios()
	for _, c := range o.concurrency {
		rounds := 1
		if c == slices.Max(o.concurrency) {
			rounds = o.rounds
		}
		for round := 1; round <= rounds; round++ {
			for i := range all {
				sc := &all[i]
				if !o.wants(sc.name) || ctx.Err() != nil {
					continue
				}
				m := e.measure(ctx, sc, c, o.warmup, o.duration)
				m.round = round
				r.rr = append(r.rr, m)
				switch {
				case m.err != nil:
					failed = true
					note("%s C=%d failed: %v", sc.name, c, m.err)
					fmt.Fprintf(stderr, "%-12s C=%-4d FAILED: %v\n", sc.name, c, m.err)
				default:
					l := m.load
					fmt.Fprintf(stderr, "%-12s C=%-4d %8.0f req/s  p50 %s  p99 %s  errors %d  server CPU/req %s\n",
						sc.name, c, l.rate(), fmtMs(l.percentile(.5)), fmtMs(l.percentile(.99)), l.errors, fmtUs(m.serverCPU))
					if l.errors > 0 {
						failed = true
						note("%s C=%d: %d errors, e.g. %v", sc.name, c, l.errors, l.firstErr)
					}
					if l.n == 0 {
						failed = true
						note("%s C=%d: no successful request", sc.name, c)
					}
				}
			}
		}
	}
	if o.wants(scFanout) {
		for _, subs := range o.subscribers {
			if ctx.Err() != nil {
				break
			}
			f := e.fanout(ctx, subs, o.senders, o.warmup, o.duration)
			r.fanout = append(r.fanout, f)
			if f.err != nil {
				failed = true
				note("fan-out to %d subscribers failed: %v", subs, f.err)
				fmt.Fprintf(stderr, "fanout       subs=%-4d FAILED: %v\n", subs, f.err)
				continue
			}
			fmt.Fprintf(stderr, "fanout       subs=%-4d %8.0f sent/s  %9.0f deliveries/s  missed %d  errors %d\n",
				subs, f.load.rate(), f.deliveryRate(), f.missed, f.load.errors)
			if f.load.errors > 0 {
				failed = true
				note("fan-out to %d subscribers: %d send errors, e.g. %v", subs, f.load.errors, f.load.firstErr)
			}
			if f.subErrors > 0 {
				failed = true
				note("fan-out to %d subscribers: %d subscriptions ended early, e.g. %v", subs, f.subErrors, f.firstSubErr)
			}
		}
	}
	if o.wants(scConns) && ctx.Err() == nil {
		c := e.manyConns(ctx, o.conns, min(o.warmup, time.Second), o.connsDuration)
		r.conns = &c
		if c.err != nil {
			failed = true
			note("%d HTTP clients failed: %v", o.conns, c.err)
			fmt.Fprintf(stderr, "conns        C=%-4d FAILED: %v\n", o.conns, c.err)
		} else {
			fmt.Fprintf(stderr, "conns        C=%-4d %8.0f req/s  p99 %s  errors %d  peak RSS %s\n",
				o.conns, c.load.rate(), fmtMs(c.load.percentile(.99)), c.load.errors, fmtMiB(c.peakRSS))
			if c.load.errors > 0 {
				failed = true
				note("%d HTTP clients: %d errors, e.g. %v", o.conns, c.load.errors, c.load.firstErr)
			}
		}
	}
	if o.wants(scResume) && ctx.Err() == nil {
		res := e.resume(ctx)
		r.resume = &res
		switch {
		case res.err != nil:
			failed = true
			note("SSE resume on another sink failed: %v", res.err)
			fmt.Fprintf(stderr, "resume       FAILED: %v\n", res.err)
		default:
			fmt.Fprintf(stderr, "resume       %d on A, %d resumed on B, exact %v, first after %s, all after %s\n",
				res.onA, res.onB, res.exact, fmtMs(res.first), fmtMs(res.all))
			if !res.exact {
				failed = true
				note("SSE resume on another sink was not exact: a gap, a duplicate or an event out of order")
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	return writeReport(r, stdout, o.out, failed)
}

// writeReport prints r to stdout and, when out is set, writes it as
// Markdown to that file; failed says some measurements failed.
func writeReport(r interface {
	print(io.Writer)
	markdown(io.Writer)
}, stdout io.Writer, out string, failed bool) error {
	r.print(stdout)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		r.markdown(f)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", out)
	}
	if failed {
		return errors.New("some measurements failed or saw errors (see notes)")
	}
	return nil
}
