//go:build unix

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaries are the programs under test, built once per test run.
type binaries struct {
	sink string // eventproc
	proc string
}

// buildBinaries builds eventproc and proc into a temporary directory, with
// the race detector when race is set.
func buildBinaries(t *testing.T, ctx context.Context, race bool) binaries {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/eventproc/eventproc/eventproc", "github.com/eventproc/eventproc/proc")
	if out, err := exec.CommandContext(ctx, goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return binaries{sink: filepath.Join(dir, "eventproc"), proc: filepath.Join(dir, "proc")}
}

// child is a program started by the test. It is killed when the test ends,
// and its output goes to the test log when the test failed.
type child struct {
	label string // A, A#2, B, sink: names this run in logs
	cmd   *exec.Cmd
	out   *output

	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, set before exited is closed
}

// startChild starts path with args. Lines of its output matching listen
// (on stdout or stderr) report where it listens; see output.
func startChild(t *testing.T, ctx context.Context, label, path string, listen *regexp.Regexp, args ...string) *child {
	t.Helper()
	c := &child{label: label, out: newOutput(listen), exited: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, path, args...)
	c.cmd.Stdout = c.out.stream("out")
	c.cmd.Stderr = c.out.stream("err")
	c.cmd.WaitDelay = 5 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", label, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.kill() // SIGKILL also ends a stopped process
		if t.Failed() || *flagLogs {
			t.Logf("--- output of %s (%s), exit %v:\n%s", c.label, strings.Join(c.cmd.Args, " "), c.err, c.out)
		}
	})
	return c
}

// waitListening waits until the child printed every address it listens on
// and returns them with the time the last was printed. It returns an error
// when the child exits first or ctx ends.
func (c *child) waitListening(ctx context.Context) (map[string]string, time.Time, error) {
	select {
	case <-c.out.ready:
		addrs, at := c.out.listening()
		return addrs, at, nil
	case <-c.exited:
		return nil, time.Time{}, fmt.Errorf("%s exited before it listened: %v", c.label, c.err)
	case <-ctx.Done():
		return nil, time.Time{}, fmt.Errorf("%s did not say where it listens: %w", c.label, ctx.Err())
	}
}

// signal sends sig to the child.
func (c *child) signal(sig syscall.Signal) error {
	if err := c.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s to %s: %w", sig, c.label, err)
	}
	return nil
}

// kill kills the child, if still running, and waits for it to exit.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// running reports whether the child has not exited.
func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// output keeps a child's output, each line stamped with the time it was
// seen, and watches it for the lines saying where the child listens: a
// pattern with one group yields address "addr"; one with two groups yields
// the second group's text under the first group's (e.g. "http", "grpc").
type output struct {
	listen *regexp.Regexp
	want   int // addresses expected: 1, or 2 for two groups
	start  time.Time

	mu     sync.Mutex
	buf    bytes.Buffer
	lines  []line                   // every complete line
	parts  map[string]*bytes.Buffer // a stream's unfinished line
	addrs  map[string]string
	at     time.Time // when the last address was seen
	ready  chan struct{}
	closed bool
}

func newOutput(listen *regexp.Regexp) *output {
	want := 1
	if listen.NumSubexp() == 2 {
		want = 2
	}
	return &output{
		listen: listen, want: want, start: time.Now(),
		parts: make(map[string]*bytes.Buffer), addrs: make(map[string]string), ready: make(chan struct{}),
	}
}

// stream returns the writer for one of the child's output streams.
func (o *output) stream(name string) io.Writer {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.parts[name] = new(bytes.Buffer)
	return writerFunc(func(p []byte) (int, error) {
		o.write(name, p)
		return len(p), nil
	})
}

func (o *output) write(name string, p []byte) {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	part := o.parts[name]
	part.Write(p)
	for {
		i := bytes.IndexByte(part.Bytes(), '\n')
		if i < 0 {
			return
		}
		text := strings.TrimSuffix(string(part.Next(i+1)), "\n")
		fmt.Fprintf(&o.buf, "%8.3fs %s| %s\n", now.Sub(o.start).Seconds(), name, text)
		o.lines = append(o.lines, line{at: now, text: text})
		o.match(text, now)
	}
}

func (o *output) match(line string, now time.Time) {
	m := o.listen.FindStringSubmatch(line)
	if m == nil || o.closed {
		return
	}
	if len(m) == 2 {
		o.addrs["addr"] = m[1]
	} else {
		o.addrs[m[1]] = m[2]
	}
	if len(o.addrs) >= o.want {
		o.at = now
		o.closed = true
		close(o.ready)
	}
}

func (o *output) listening() (map[string]string, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	addrs := make(map[string]string, len(o.addrs))
	for k, v := range o.addrs {
		addrs[k] = v
	}
	return addrs, o.at
}

// line is a line of output and when it was seen.
type line struct {
	at   time.Time
	text string
}

// firstLine returns the first line seen at or after t that contains every
// one of parts.
func (o *output) firstLine(t time.Time, parts ...string) (line, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
next:
	for _, l := range o.lines {
		if l.at.Before(t) {
			continue
		}
		for _, p := range parts {
			if !strings.Contains(l.text, p) {
				continue next
			}
		}
		return l, true
	}
	return line{}, false
}

// contains reports whether the output so far contains s.
func (o *output) contains(s string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Contains(o.buf.Bytes(), []byte(s))
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.buf.String()
	for name, part := range o.parts {
		if part.Len() > 0 {
			s += fmt.Sprintf("         %s| %s (no newline)\n", name, part)
		}
	}
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// procListening is proc's line on stdout once it accepts connections.
var procListening = regexp.MustCompile(`^listening on (\S+)$`)

// sinkListening matches the sink's log lines naming its two addresses.
var sinkListening = regexp.MustCompile(`(http|grpc) listening on ([^\s"]+)`)

// replica is one proc process, or its successors after restarts on the
// same address.
type replica struct {
	name  string // --name, stamped in replies as processed_by
	addr  string // 127.0.0.1:PORT, kept across restarts
	runs  int
	child *child
}

// startReplica starts proc named name on addr (port 0 the first time). A
// restart on a port that is briefly taken (another socket's ephemeral
// port, a lingering connection) is retried for a few seconds. It returns
// the time proc printed its listening line.
func startReplica(t *testing.T, ctx context.Context, bins binaries, r *replica) time.Time {
	t.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	give := time.Now().Add(5 * time.Second)
	for {
		r.runs++
		label := r.name
		if r.runs > 1 {
			label = fmt.Sprintf("%s#%d", r.name, r.runs)
		}
		c := startChild(t, ctx, label, bins.proc, procListening, "--addr", addr, "--name", r.name)
		addrs, at, err := c.waitListening(ctx)
		if err == nil {
			r.child = c
			r.addr = addrs["addr"]
			return at
		}
		<-c.exited
		if !c.out.contains("address already in use") || time.Now().After(give) || ctx.Err() != nil {
			t.Fatalf("start %s on %s: %v\n%s", label, addr, err, c.out)
		}
		t.Logf("%s: %s is in use; retrying", label, addr)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// errNotRunning is returned for a signal to a child that already exited.
var errNotRunning = errors.New("not running")

// signalReplica sends sig to r's current process.
func signalReplica(r *replica, sig syscall.Signal) error {
	if !r.child.running() {
		return fmt.Errorf("%s to %s: %w (%v)", sig, r.child.label, errNotRunning, r.child.err)
	}
	return r.child.signal(sig)
}
