//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestEndToEnd builds the real eventproc and proc binaries, runs them
// against each other, sends an event over HTTP, and stops both with
// SIGTERM.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	dir := buildBinaries(t)

	ctx := testContext(t)
	// A bad flag: exit status 1 and a message naming it.
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "eventproc"), "--route", "foo=x:1").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), `eventproc: --route "foo=x:1": unknown event type "foo"`) {
		t.Errorf("eventproc --route foo=x:1: %v, %q; want exit status 1 and a message naming --route", err, out)
	}

	proc := startBinary(t, ctx, filepath.Join(dir, "proc"), `listening on (\S+)`, "--addr", "127.0.0.1:0")
	procAddr := proc.wait(ctx)["1"]
	sink := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello="+procAddr)
	addrs := sink.wait(ctx)
	httpAddr := addrs["http"]

	s := &sinkProc{t: t, url: "http://" + httpAddr, client: &http.Client{Transport: &http.Transport{}}}
	defer s.client.CloseIdleConnections()
	s.waitRoute(ctx, "TYPE_HELLO", true)
	resp, body := s.post(ctx, `{"type":"TYPE_HELLO","payload":{"greeting":"hello, world"},"metadata":{"from":"e2e"}}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/events: %d %s, want 200", resp.StatusCode, body)
	}
	var ev eventv1.Event
	if err := protojson.Unmarshal(body, &ev); err != nil {
		t.Fatalf("reply %s: %v", body, err)
	}
	if ev.GetId() == "" || ev.GetType() != eventv1.Type_TYPE_HELLO || ev.GetMetadata()["from"] != "e2e" ||
		ev.GetPayload().GetStructValue().GetFields()["greeting"].GetStringValue() != "hello, world" {
		t.Errorf("reply %s, want the event echoed with an id", body)
	}
	s.client.CloseIdleConnections()
	streamBatch(ctx, t, addrs["grpc"])
	goClient(ctx, t, addrs["grpc"])

	sink.terminate()
	proc.terminate()
	sink.checkExit(ctx)
	proc.checkExit(ctx)
	if !strings.Contains(sink.out.String(), "stopped") {
		t.Errorf("sink did not log that it stopped:\n%s", sink.out)
	}
}

// streamBatch sends a batch of events on SinkService.Stream at addr,
// asking for answers in batches, and checks that each is echoed once.
func streamBatch(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ss, err := eventv1.NewSinkServiceClient(conn).Stream(metadata.AppendToOutgoingContext(ctx, "eventproc-batch", "4194304"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	req := new(eventv1.StreamRequest)
	for i := range n {
		req.Batch = append(req.Batch, &eventv1.StreamRequest{Event: &eventv1.Event{
			Id: fmt.Sprint("b-", i), Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewNumberValue(float64(i)),
		}})
	}
	if err := ss.Send(req); err != nil {
		t.Fatal(err)
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for {
		msg, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Stream after %d answers: %v", len(seen), err)
		}
		answers := []*eventv1.StreamResponse{msg}
		if len(msg.Batch) > 0 {
			answers = msg.Batch
		}
		for _, a := range answers {
			ev := a.GetResponse().GetEvent()
			if seen[a.GetId()] || ev.GetId() != a.GetId() || fmt.Sprint("b-", ev.GetPayload().GetNumberValue()) != a.GetId() {
				t.Fatalf("answer %v: want each event echoed once", a)
			}
			seen[a.GetId()] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d events answered", len(seen), n)
	}
}

// goClient sends events with event/client from many goroutines at once,
// and a type without a route, and checks each answer.
func goClient(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.New(conn, client.Options{})
	defer c.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				payload := fmt.Sprint(g, "/", i)
				resp, err := c.Send(ctx, &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue(payload)})
				if err != nil {
					t.Errorf("client.Send: %v", err)
					return
				}
				if got := resp.GetEvent().GetPayload().GetStringValue(); got != payload || resp.GetEvent().GetId() == "" {
					t.Errorf("client.Send %q: answer %v, want the event echoed with an id", payload, resp)
					return
				}
			}
		})
	}
	wg.Wait()
	_, err = c.Send(ctx, &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE})
	_, unaryErr := eventv1.NewSinkServiceClient(conn).Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE}})
	if err == nil || status.Code(err) != status.Code(unaryErr) {
		t.Errorf("client.Send of a type without a route: %v, want unary Send's %v", err, unaryErr)
	}
}

// binary is a program started by a test.
type binary struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *matchWriter
	done chan error
	// exited is closed once the process was waited for.
	exited chan struct{}
}

// startBinary starts path with args and watches its output (stdout and
// stderr) for re. The process is killed if still running when ctx ends.
func startBinary(t *testing.T, ctx context.Context, path, re string, args ...string) *binary {
	t.Helper()
	b := &binary{t: t, name: filepath.Base(path), out: newMatchWriter(re), done: make(chan error, 1), exited: make(chan struct{})}
	b.cmd = exec.CommandContext(ctx, path, args...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	b.cmd.WaitDelay = 10 * time.Second
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.done <- b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default: // still running (reading ProcessState would race with Wait)
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", b.name, b.out)
		}
	})
	return b
}

// wait returns the submatches of re, by group number or by the first
// group's text, once the output has them all.
func (b *binary) wait(ctx context.Context) map[string]string {
	b.t.Helper()
	select {
	case <-b.out.ready:
		return b.out.matches()
	case err := <-b.done:
		b.done <- err
		b.t.Fatalf("%s exited before it listened: %v\n%s", b.name, err, b.out)
	case <-ctx.Done():
		b.t.Fatalf("%s did not say where it listens:\n%s", b.name, b.out)
	}
	return nil
}

func (b *binary) terminate() {
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.t.Errorf("SIGTERM %s: %v", b.name, err)
	}
}

// checkExit waits for the process and checks it exited with status 0.
func (b *binary) checkExit(ctx context.Context) {
	b.t.Helper()
	select {
	case err := <-b.done:
		if err != nil || b.cmd.ProcessState.ExitCode() != 0 {
			b.t.Errorf("%s exited with %v, want status 0", b.name, err)
		}
	case <-ctx.Done():
		b.t.Errorf("%s did not exit after SIGTERM", b.name)
	}
}

// matchWriter keeps a program's output and finds a pattern in it.
type matchWriter struct {
	re    *regexp.Regexp
	mu    sync.Mutex
	buf   strings.Builder
	found map[string]string
	ready chan struct{}
}

func newMatchWriter(re string) *matchWriter {
	return &matchWriter{re: regexp.MustCompile(re), found: make(map[string]string), ready: make(chan struct{})}
}

func (w *matchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := len(w.found)
	w.buf.Write(p)
	for _, m := range w.re.FindAllStringSubmatch(w.buf.String(), -1) {
		switch len(m) {
		case 2: // one group: its value
			w.found["1"] = m[1]
		case 3: // two groups: the first names the second
			w.found[m[1]] = m[2]
		}
	}
	want := w.re.NumSubexp() // one match for a single group, two names otherwise
	if had < want && len(w.found) >= want {
		close(w.ready)
	}
	return len(p), nil
}

func (w *matchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *matchWriter) matches() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.found))
	for k, v := range w.found {
		out[k] = v
	}
	return out
}
