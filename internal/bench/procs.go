package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux platform Go supports.
const clockTicks = 100

// binaries are the programs the benchmark runs as child processes.
type binaries struct {
	dir       string
	eventproc string // the sink
	proc      string // the echo processor
	bench     string // this program, for the reference servers
}

// buildBinaries builds the sink and the echo processor into a fresh
// temporary directory, from the module rooted at root: from its working
// tree when rev is empty, else from the git revision rev (so that a run is
// not disturbed by edits in progress). The reference servers are this very
// program.
func buildBinaries(ctx context.Context, root, rev string, log io.Writer) (*binaries, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "eventproc-bench-")
	if err != nil {
		return nil, err
	}
	b := &binaries{
		dir:       dir,
		eventproc: filepath.Join(dir, "eventproc"),
		proc:      filepath.Join(dir, "proc"),
		bench:     self,
	}
	src := root
	if rev != "" {
		src = filepath.Join(dir, "src")
		if err := exportRev(ctx, root, rev, src); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		fmt.Fprintf(log, "building from git revision %s\n", rev)
	}
	for _, t := range []struct{ out, pkg string }{
		{b.eventproc, "./eventproc"},
		{b.proc, "./proc"},
	} {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("go build %s: %v\n%s", t.pkg, err, out)
		}
		fmt.Fprintf(log, "built %-12s in %v\n", t.pkg, time.Since(start).Round(time.Millisecond))
	}
	return b, nil
}

// exportRev writes the files of git revision rev of the repository at root
// into dir, without touching the repository.
func exportRev(ctx context.Context, root, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", rev)
	archive.Dir = root
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var aerr, uerr strings.Builder
	archive.Stderr, untar.Stderr = &aerr, &uerr
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return fmt.Errorf("git archive %s: %v %s", rev, err, aerr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("untar %s: %v %s", rev, err, uerr.String())
	}
	return nil
}

// describeSource says which code a run measures: the git revision, and
// whether the working tree had changes to the measured programs. It uses
// only commands that do not write to the repository.
func describeSource(ctx context.Context, root, rev string) string {
	if rev != "" {
		out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", rev).Output()
		if err != nil {
			return "git revision " + rev
		}
		return "git revision " + strings.TrimSpace(string(out))
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "working tree (not a git checkout)"
	}
	head := strings.TrimSpace(string(out))
	diff := exec.CommandContext(ctx, "git", "-C", root, "diff", "--quiet", "HEAD", "--",
		"eventproc", "proc", "event", "internal", ":!internal/bench", "go.mod", "go.sum")
	if diff.Run() != nil {
		return "working tree at " + head + " with uncommitted changes to the sink or processor"
	}
	return "working tree at " + head
}

// remove deletes the binaries.
func (b *binaries) remove() { os.RemoveAll(b.dir) }

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// child is a server running as a child process of the benchmark.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *outputWatch
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

// startChild starts bin with args. Its standard output and error are
// watched for the patterns in want (each with one capture group); startChild
// returns once every pattern has matched, with the captures by pattern
// index, or fails when the process exits or timeout passes first.
func startChild(name, bin string, args []string, want []*regexp.Regexp, timeout time.Duration) (*child, []string, error) {
	return startChildEnv(name, bin, args, nil, want, timeout)
}

// startChildEnv is startChild with extra environment variables ("K=V").
func startChildEnv(name, bin string, args, env []string, want []*regexp.Regexp, timeout time.Duration) (*child, []string, error) {
	w := newOutputWatch(want)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = w
	cmd.Stderr = w
	// GOMAXPROCS stays unset on purpose: servers use every core, as they would in production.
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, out: w, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.matched:
		return c, w.captures(), nil
	case <-c.done:
		return nil, nil, fmt.Errorf("%s exited at start-up (%v); its output:\n%s", name, c.err, w.tail())
	case <-t.C:
		c.stop()
		return nil, nil, fmt.Errorf("%s did not report its address within %v; its output:\n%s", name, timeout, w.tail())
	}
}

// pid returns the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the process still runs.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop asks the process to exit (SIGTERM), and kills it when it has not
// after a few seconds. It waits until the process is gone.
func (c *child) stop() {
	if c == nil || !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procStat is a sample of a process's resource use.
type procStat struct {
	cpu     time.Duration // user + system time so far
	rss     int64         // resident set now, bytes (VmRSS)
	peakRSS int64         // highest resident set so far, bytes (VmHWM)
}

// sample reads the process's CPU time and memory from /proc.
func (c *child) sample() (procStat, error) {
	return sampleProc(c.pid())
}

func sampleProc(pid int) (procStat, error) {
	var s procStat
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may contain spaces; fields after its
	// closing parenthesis are space separated: state is field 3, utime 14,
	// stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	s.cpu = time.Duration(utime+stime) * time.Second / clockTicks

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.peakRSS = kb << 10
		}
	}
	return s, nil
}

// machineBusy returns the CPU time all processors of the machine have
// spent not idle, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: unexpected format")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// idle (4th) and iowait (5th) are not busy; guest times are
		// already counted in user.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// outputWatch is the standard output and error of a child: it keeps the
// last lines for error messages and reports when every wanted pattern has
// appeared.
type outputWatch struct {
	mu      sync.Mutex
	partial []byte
	lines   []string // the last maxLines lines
	want    []*regexp.Regexp
	got     []string
	left    int
	matched chan struct{} // closed when every pattern has matched
}

const maxLines = 40

func newOutputWatch(want []*regexp.Regexp) *outputWatch {
	w := &outputWatch{want: want, got: make([]string, len(want)), left: len(want), matched: make(chan struct{})}
	if w.left == 0 {
		close(w.matched)
	}
	return w
}

// Write implements io.Writer; exec copies both output streams to it.
func (w *outputWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *outputWatch) line(l string) {
	w.lines = append(w.lines, l)
	if len(w.lines) > maxLines {
		w.lines = w.lines[len(w.lines)-maxLines:]
	}
	if w.left == 0 {
		return
	}
	for i, re := range w.want {
		if w.got[i] != "" {
			continue
		}
		if m := re.FindStringSubmatch(l); m != nil {
			w.got[i] = m[1]
			if w.left--; w.left == 0 {
				close(w.matched)
			}
		}
	}
}

func (w *outputWatch) captures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.got...)
}

// tail returns the last lines of output.
func (w *outputWatch) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, l := range w.lines {
		b.WriteString("    " + l + "\n")
	}
	if len(w.partial) > 0 {
		b.WriteString("    " + string(w.partial) + "\n")
	}
	return b.String()
}

// Patterns for the addresses the servers report.
var (
	// listeningRE matches proc's and the reference servers' stdout line.
	listeningRE = regexp.MustCompile(`^listening on (\S+)$`)
	// The sink logs "grpc listening on ADDR" and "http listening on ADDR"
	// (slog, text or JSON); take the address that follows.
	sinkGRPCRE = regexp.MustCompile(`grpc listening on ([^\s"]+)`)
	sinkHTTPRE = regexp.MustCompile(`http listening on ([^\s"]+)`)
	// sinkNATSRE matches the sink's log line of its embedded NATS port.
	sinkNATSRE = regexp.MustCompile(`nats listening on ([^\s"]+)`)
)
