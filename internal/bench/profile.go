package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// `bench profile` runs the real sink binary with --debug-addr (Go's
// profiler and runtime variables on a listener of their own) against a real
// proc, drives it with the suite's load client, and fetches a CPU profile of
// exactly the measured window, the allocation profile and the runtime's
// malloc counters; and, through proc's own --debug-addr, proc's CPU profile
// of the same window (<path>.proc.cpu.pprof).

// cmdProfile is the profiling subcommand.
const cmdProfile = "profile"

// memStats is the part of the sink's /debug/vars (expvar) that profile uses.
type memStats struct {
	Mallocs      uint64
	TotalAlloc   uint64
	NumGC        uint32
	PauseTotalNs uint64
	HeapInuse    uint64
	StackInuse   uint64
}

// getMemStats reads the runtime's memory statistics from the sink's
// debug listener.
func getMemStats(debugURL string, m *memStats) error {
	var vars struct {
		Memstats *memStats `json:"memstats"`
	}
	vars.Memstats = m
	return getJSON(debugURL+"/debug/vars", &vars)
}

// debugRE matches the sink's debug listener line.
var debugRE = regexp.MustCompile(`debug listening on ([^\s"]+)`)

// profile runs the sink paths against the sink binary and saves their
// profiles.
func profile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(cmdProfile, flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Second, "measured and profiled `time` per path (whole seconds)")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up before each profile")
	workers := fs.Int("concurrency", 64, "concurrent clients")
	paths := fs.String("paths", "rest,grpc,stream", "comma-separated sink paths to profile: rest, grpc, stream, "+
		"rest-durable, stream-durable (a durable route, its store in a temporary --data-dir)")
	dir := fs.String("dir", "", "`directory` for the profiles (default: a new temporary directory)")
	rev := fs.String("rev", "", "build proc from this git `revision` instead of the working tree")
	sinkArgs := fs.String("sink-args", "", "extra space-separated flags for eventproc, e.g. '--streams-per-target 4'")
	sinkEnv := fs.String("sink-env", "", "extra space-separated K=V environment variables for eventproc, e.g. GOGC=400")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secs := int(duration.Round(time.Second) / time.Second)
	if secs < 1 {
		return errors.New("-duration must be at least 1s")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "eventproc-profile-")
		if err != nil {
			return err
		}
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	bins, err := buildBinaries(ctx, root, *rev, stderr)
	if err != nil {
		return err
	}
	defer bins.remove()
	e := &env{bins: bins, log: stderr}
	// proc from another revision may not have --debug-addr.
	profileProc := *rev == ""

	byPath := map[string]func(context.Context, *servers, int) (func(int) caller, func(), error){
		"rest": restClient,
		"grpc": unaryClient,
		"stream": func(ctx context.Context, s *servers, c int) (func(int) caller, func(), error) {
			return streamClient(ctx, s, c, sinkStreamMux)
		},
	}
	for _, sc := range scenarios() {
		if sc.durable {
			byPath[sc.name] = sc.client
		}
	}
	t := &table{header: []string{"path", "C", "req/s", "p50", "p99", "errors", "sink CPU/req",
		"allocs/req", "bytes/req", "GCs/s", "GC pause/s", "heap", "stacks", "peak RSS", "CPU profile"}}
	for path := range strings.SplitSeq(*paths, ",") {
		client, ok := byPath[path]
		if !ok {
			return fmt.Errorf("-paths: unknown path %q", path)
		}
		args := strings.Fields(*sinkArgs)
		if strings.HasSuffix(path, "-durable") {
			args = append(args, "--durable", "hello", "--data-dir", filepath.Join(*dir, path+".data"))
		}
		row, err := e.profilePath(ctx, path, client, *workers, *warmup, secs, *dir,
			args, strings.Fields(*sinkEnv), profileProc)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		t.add(row...)
		fmt.Fprintf(stderr, "%s done\n", path)
	}
	fmt.Fprintf(stdout, "\nSink binary (eventproc %s, env %q), %ds profiled per path after %v warm-up\n\n",
		*sinkArgs, *sinkEnv, secs, *warmup)
	t.text(stdout)
	fmt.Fprintf(stdout, "\nprofiles in %s; e.g. go tool pprof -top -cum %s\n", *dir, filepath.Join(*dir, "rest.cpu.pprof"))
	return nil
}

// profilePath profiles one sink path and returns its table row.
func (e *env) profilePath(ctx context.Context, path string,
	client func(context.Context, *servers, int) (func(int) caller, func(), error),
	workers int, warmup time.Duration, secs int, dir string, sinkArgs, sinkEnv []string, profileProc bool) ([]string, error) {
	procArgs, procWant := []string{"--addr", "127.0.0.1:0", "--shutdown-grace", "1s"}, []*regexp.Regexp{listeningRE}
	if profileProc {
		procArgs, procWant = append(procArgs, "--debug-addr", "127.0.0.1:0"), append(procWant, debugRE)
	}
	p, got, err := startChild("proc", e.bins.proc, procArgs, procWant, startTimeout)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	var procDebug string
	if profileProc {
		procDebug = "http://" + got[1]
	}
	sk, got, err := startChildEnv("eventproc", e.bins.eventproc,
		append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0",
			"--route", "hello=" + got[0]}, sinkArgs...), sinkEnv,
		[]*regexp.Regexp{sinkHTTPRE, sinkGRPCRE, debugRE}, startTimeout)
	if err != nil {
		return nil, err
	}
	defer sk.stop()
	s := &servers{server: sk, proc: p, httpAddr: got[0], grpcAddr: got[1]}
	debug := "http://" + got[2]
	if err := waitReady(&servers{httpAddr: got[0]}, startTimeout); err != nil {
		return nil, err
	}
	newCaller, release, err := client(ctx, s, workers)
	if err != nil {
		return nil, err
	}
	defer release()

	var m0, m1 memStats
	var st0, st1 procStat
	var fetchErr error
	cpuDone := make(chan error, 2)
	cpuFile := filepath.Join(dir, path+".cpu.pprof")
	procCPUFile := filepath.Join(dir, path+".proc.cpu.pprof")
	lr := runLoad(ctx, loadPlan{
		workers: workers, warmup: warmup, measure: time.Duration(secs) * time.Second,
		atStart: func() {
			st0, _ = sk.sample()
			fetchErr = getMemStats(debug, &m0)
			go func() { cpuDone <- fetchTo(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debug, secs), cpuFile) }()
			if procDebug != "" {
				go func() {
					cpuDone <- fetchTo(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", procDebug, secs), procCPUFile)
				}()
			} else {
				cpuDone <- nil
			}
		},
		atEnd: func() {
			st1, _ = sk.sample()
			fetchErr = errors.Join(fetchErr, getMemStats(debug, &m1))
		},
	}, newCaller)
	if err := errors.Join(fetchErr, <-cpuDone, <-cpuDone); err != nil {
		return nil, err
	}
	if err := fetchTo(debug+"/debug/pprof/allocs", filepath.Join(dir, path+".allocs.pprof")); err != nil {
		return nil, err
	}
	if err := fetchTo(debug+"/debug/pprof/goroutine", filepath.Join(dir, path+".goroutine.pprof")); err != nil {
		return nil, err
	}
	if err := s.died(); err != nil {
		return nil, err
	}
	if lr.n == 0 {
		return nil, fmt.Errorf("no successful request: %v", lr.firstErr)
	}
	n := float64(lr.n)
	secsF := lr.elapsed.Seconds()
	traces, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-traces", cpuFile).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	groups := breakdown(string(traces), lr.n)
	if err := writeTable(filepath.Join(dir, path+".cpu.groups.md"), groups); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.log, "\n%s: where the sink's CPU goes (%d requests profiled)\n\n", path, lr.n)
	groups.text(e.log)
	for _, view := range []struct{ name, flag string }{{"flat", ""}, {"cum", "-cum"}} {
		args := []string{"tool", "pprof", "-top", "-nodecount=60"}
		if view.flag != "" {
			args = append(args, view.flag)
		}
		out, err := exec.CommandContext(ctx, "go", append(args, cpuFile)...).Output()
		if err == nil {
			_ = os.WriteFile(filepath.Join(dir, path+".cpu."+view.name+".txt"), out, 0o644)
		}
	}
	return []string{path, fmt.Sprint(workers), fmtRate(lr.rate()), fmtMs(lr.percentile(.5)), fmtMs(lr.percentile(.99)),
		fmt.Sprint(lr.errors), fmtUs((st1.cpu - st0.cpu) / time.Duration(lr.n)),
		fmt.Sprintf("%.1f", float64(m1.Mallocs-m0.Mallocs)/n),
		fmt.Sprintf("%.0f", float64(m1.TotalAlloc-m0.TotalAlloc)/n),
		fmt.Sprintf("%.1f", float64(m1.NumGC-m0.NumGC)/secsF),
		fmt.Sprintf("%.2fms", float64(m1.PauseTotalNs-m0.PauseTotalNs)/1e6/secsF),
		fmtMiB(int64(m1.HeapInuse)), fmtMiB(int64(m1.StackInuse)), fmtMiB(st1.peakRSS),
		filepath.Base(cpuFile)}, nil
}

// writeTable writes t as Markdown to file.
func writeTable(file string, t *table) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	t.markdown(f)
	return f.Close()
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
