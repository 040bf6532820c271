package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const testTimeout = 20 * time.Second

type procStream = grpc.BidiStreamingClient[eventv1.ProcessRequest, eventv1.ProcessResponse]

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// output collects what run writes and reports the address of the
// "listening on" line.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
	sent bool
}

var listeningLine = regexp.MustCompile(`(?m)^listening on (\S+)\n`)

func newOutput() *output { return &output{addr: make(chan string, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if m := listeningLine.FindSubmatch(o.buf.Bytes()); m != nil && !o.sent {
		o.sent = true
		o.addr <- string(m[1])
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// proc is run started in-process.
type proc struct {
	addr   string // from the listening line
	stop   context.CancelFunc
	done   chan error
	client eventv1.ProcessorServiceClient
	stderr *output
}

// startProc runs proc with args (and env) on 127.0.0.1:0 until the test
// ends, and dials it.
func startProc(t *testing.T, ctx context.Context, env map[string]string, args ...string) *proc {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	p := &proc{stop: stop, done: make(chan error, 1), stderr: newOutput()}
	stdout := newOutput()
	args = append([]string{"--addr", "127.0.0.1:0"}, args...)
	go func() { p.done <- run(runCtx, args, mapEnv(env), stdout, p.stderr) }()
	t.Cleanup(func() {
		if err := p.wait(); err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	})
	var addr string
	select {
	case addr = <-stdout.addr:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("run ended early: %v\n%s", err, p.stderr)
	case <-ctx.Done():
		t.Fatalf("no listening line: %v", ctx.Err())
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.addr = addr
	p.client = eventv1.NewProcessorServiceClient(conn)
	return p
}

// wait stops run and returns its result; it may be called more than once.
func (p *proc) wait() error {
	p.stop()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(testTimeout):
		return context.DeadlineExceeded
	}
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// open opens a Process stream as sink "test" and waits for its header.
func (p *proc) open(t *testing.T, ctx context.Context) procStream {
	t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, processor.SinkIDMetadataKey, "test")
	st, err := p.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatalf("Header: %v", err)
	}
	return st
}

// ask sends ev as request id and returns the answer, skipping publishes.
func ask(t *testing.T, st procStream, id uint64, ev *eventv1.Event, timeout time.Duration) *eventv1.ProcessResponse {
	t.Helper()
	req := &eventv1.ProcessRequest{Id: id, Event: ev}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	if err := st.Send(req); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if resp.GetPublish() != nil {
			continue
		}
		if resp.GetId() != id {
			t.Fatalf("got answer %v, want one for %d", resp, id)
		}
		return resp
	}
}

func event(id string, md map[string]string) *eventv1.Event {
	return &eventv1.Event{
		Id:       id,
		Type:     eventv1.Type_TYPE_HELLO,
		Payload:  structpb.NewStringValue("hi"),
		Data:     []byte{1, 2, 3},
		Metadata: md,
		Time:     timestamppb.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)),
	}
}

// want describes an expected answer.
type want struct {
	reply    bool
	consumed bool
	code     codes.Code
}

// check checks resp against w. A reply must be ev with metadata
// processed_by added (any name: TestName checks the names).
func check(t *testing.T, resp *eventv1.ProcessResponse, ev *eventv1.Event, w want) {
	t.Helper()
	switch {
	case w.reply:
		reply := proto.CloneOf(resp.GetReply())
		if reply.GetMetadata()["processed_by"] == "" {
			t.Errorf("got %v, want a reply with metadata processed_by", resp)
		}
		delete(reply.GetMetadata(), "processed_by")
		if !proto.Equal(reply, ev) {
			t.Errorf("got %v, want reply %v", resp, ev)
		}
	case w.consumed:
		if !resp.GetConsumed() {
			t.Errorf("got %v, want consumed", resp)
		}
	default:
		if got := codes.Code(resp.GetError().GetCode()); resp.GetError() == nil || got != w.code {
			t.Errorf("got %v, want error %v", resp, w.code)
		}
	}
}

func TestEcho(t *testing.T) {
	ctx := testCtx(t)
	p := startProc(t, ctx, nil)
	st := p.open(t, ctx)
	tests := []struct {
		name    string
		md      map[string]string
		timeout time.Duration
		want    want
	}{
		{"echo", nil, 0, want{reply: true}},
		{"echo with metadata", map[string]string{"tenant": "t1"}, 0, want{reply: true}},
		{"consume", map[string]string{"consume": "true"}, 0, want{consumed: true}},
		{"consume false", map[string]string{"consume": "false"}, 0, want{reply: true}},
		{"bad consume", map[string]string{"consume": "maybe"}, 0, want{code: codes.InvalidArgument}},
		{"error NOT_FOUND", map[string]string{"error": "NOT_FOUND"}, 0, want{code: codes.NotFound}},
		{"error INVALID_ARGUMENT", map[string]string{"error": "INVALID_ARGUMENT"}, 0, want{code: codes.InvalidArgument}},
		{"error lower case", map[string]string{"error": "unavailable"}, 0, want{code: codes.Unavailable}},
		{"error OK", map[string]string{"error": "OK"}, 0, want{reply: true}},
		{"unknown error name", map[string]string{"error": "OOPS"}, 0, want{code: codes.InvalidArgument}},
		{"delay within deadline", map[string]string{"delay": "20ms"}, 5 * time.Second, want{reply: true}},
		{"delay past deadline", map[string]string{"delay": "1m"}, 50 * time.Millisecond, want{code: codes.DeadlineExceeded}},
		{"bad delay", map[string]string{"delay": "soon"}, 0, want{code: codes.InvalidArgument}},
		{"delay then error", map[string]string{"delay": "1ms", "error": "ABORTED"}, 0, want{code: codes.Aborted}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event(tt.name, tt.md)
			check(t, ask(t, st, uint64(i+1), ev, tt.timeout), ev, tt.want)
		})
	}
	closeSend(t, st)
}

func closeSend(t *testing.T, st procStream) {
	t.Helper()
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: Recv = %v, %v; want EOF", resp, err)
	}
}

func TestConsumeFlagAndEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		md   map[string]string
		want want
	}{
		{"flag", nil, []string{"--consume"}, nil, want{consumed: true}},
		{"flag, metadata asks for a reply", nil, []string{"--consume"}, map[string]string{"consume": "false"}, want{reply: true}},
		{"env", map[string]string{"PROC_CONSUME": "true"}, nil, nil, want{consumed: true}},
		{"flag wins over env", map[string]string{"PROC_CONSUME": "true"}, []string{"--consume=false"}, nil, want{reply: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			p := startProc(t, ctx, tt.env, tt.args...)
			st := p.open(t, ctx)
			ev := event("e", tt.md)
			check(t, ask(t, st, 1, ev, 0), ev, tt.want)
			closeSend(t, st)
		})
	}
}

func TestName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" means HOSTNAME:PORT
	}{
		{"flag", nil, []string{"--name", "A"}, "A"},
		{"env", map[string]string{"PROC_NAME": "replica-b"}, nil, "replica-b"},
		{"flag wins over env", map[string]string{"PROC_NAME": "env"}, []string{"--name=flag"}, "flag"},
		{"default", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			p := startProc(t, ctx, tt.env, tt.args...)
			name := tt.want
			if name == "" {
				_, port, err := net.SplitHostPort(p.addr)
				if err != nil {
					t.Fatal(err)
				}
				name = net.JoinHostPort(host, port)
			}
			st := p.open(t, ctx)
			for i, md := range []map[string]string{nil, {"tenant": "t1"}, {"processed_by": "forged"}} {
				resp := ask(t, st, uint64(i+1), event("e", md), 0)
				if got := resp.GetReply().GetMetadata()["processed_by"]; got != name {
					t.Errorf("metadata %v: reply processed_by = %q, want %q", md, got, name)
				}
				if md["tenant"] != "" && resp.GetReply().GetMetadata()["tenant"] != md["tenant"] {
					t.Errorf("metadata %v: reply %v lost the tenant", md, resp)
				}
			}
			// Consumed events and failures have no metadata to stamp.
			check(t, ask(t, st, 10, event("e", map[string]string{"consume": "true"}), 0), nil, want{consumed: true})
			check(t, ask(t, st, 11, event("e", map[string]string{"error": "ABORTED"}), 0), nil, want{code: codes.Aborted})
			closeSend(t, st)
		})
	}
}

func TestPublishFlag(t *testing.T) {
	ctx := testCtx(t)
	p := startProc(t, ctx, map[string]string{"PROC_PUBLISH": "1"}, "--log-format", "json", "--log-level", "debug")
	st := p.open(t, ctx)
	ev := event("e", nil)
	if err := st.Send(&eventv1.ProcessRequest{Id: 1, Event: ev}); err != nil {
		t.Fatal(err)
	}
	var published, replied bool
	for !published || !replied {
		resp, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		switch {
		case resp.GetPublish() != nil:
			published = true
			if !proto.Equal(resp.GetPublish(), ev) || resp.GetId() != 0 {
				t.Errorf("publish = %v, want id 0 and %v", resp, ev)
			}
		default:
			replied = true
			check(t, resp, ev, want{reply: true})
		}
	}
	closeSend(t, st)
	if !strings.Contains(p.stderr.String(), `"msg":"proc: serving"`) {
		t.Errorf("stderr has no JSON serving line:\n%s", p.stderr)
	}
}

func TestStopWithOpenStream(t *testing.T) {
	ctx := testCtx(t)
	p := startProc(t, ctx, nil, "--shutdown-grace", "5s")
	st := p.open(t, ctx)
	ev := event("e", nil)
	check(t, ask(t, st, 1, ev, 0), ev, want{reply: true})
	// The stream stays open: stopping must not wait for the client.
	if err := p.wait(); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	if resp, err := st.Recv(); err != io.EOF {
		t.Errorf("after stop: Recv = %v, %v; want EOF", resp, err)
	}
}

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // part of the error
	}{
		{"unknown flag", nil, []string{"--bogus"}, "-bogus"},
		{"bad number", nil, []string{"--max-concurrency", "many"}, "-max-concurrency"},
		{"zero concurrency", nil, []string{"--max-concurrency", "0"}, "--max-concurrency"},
		{"bad format", nil, []string{"--log-format", "xml"}, "--log-format"},
		{"bad level", nil, []string{"--log-level", "loud"}, "-log-level"},
		{"bad grace", nil, []string{"--shutdown-grace", "0s"}, "--shutdown-grace"},
		{"bad env", map[string]string{"PROC_MAX_CONCURRENCY": "lots"}, nil, "PROC_MAX_CONCURRENCY"},
		{"bad env bool", map[string]string{"PROC_CONSUME": "perhaps"}, nil, "PROC_CONSUME"},
		{"extra argument", nil, []string{"serve"}, `"serve"`},
		{"bad address", nil, []string{"--addr", "127.0.0.1:http-nope"}, "--addr"},
		{"cert without key", nil, []string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{"key without cert", map[string]string{"PROC_TLS_KEY": "k.pem"}, nil, "--tls-cert and --tls-key go together"},
		{"client CA without cert", nil, []string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert"},
		{"missing cert file", nil, []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, "--tls-cert/--tls-key/--tls-client-ca: tlsfiles: open /nonexistent/c.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			var stdout, stderr bytes.Buffer
			err := run(ctx, tt.args, mapEnv(tt.env), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	ctx := testCtx(t)
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"-h"}, mapEnv(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run -h = %v, want nil", err)
	}
	for _, want := range []string{"Usage: proc", "-addr", "-name", "PROC_NAME", "processed_by", "-max-concurrency", "PROC_ADDR", "wins over", "error=CODE", "listening on", "-tls-cert", "-tls-client-ca", "PROC_TLS_CLIENT_CA"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stdout.String())
		}
	}
}

// --debug-addr serves Go's profiler on a listener of its own, and stops
// with proc; without it proc opens no such listener.
func TestDebugAddr(t *testing.T) {
	ctx := testCtx(t)
	debugLine := regexp.MustCompile(`debug listening on ([^\s"]+)`)
	if p := startProc(t, ctx, nil); debugLine.MatchString(p.stderr.String()) {
		t.Fatalf("debug listener without --debug-addr:\n%s", p.stderr)
	}
	p := startProc(t, ctx, nil, "--debug-addr", "127.0.0.1:0")
	m := debugLine.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no debug listening line:\n%s", p.stderr)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m[1]+"/debug/pprof/goroutine?debug=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("/debug/pprof/goroutine: %d %.80q", resp.StatusCode, body)
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("debug server still answers after proc stopped")
	}
}

func TestDebugAddrInvalid(t *testing.T) {
	err := run(testCtx(t), []string{"--addr", "127.0.0.1:0", "--debug-addr", "nope:bad:addr"}, mapEnv(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--debug-addr") {
		t.Fatalf("run = %v, want an error naming --debug-addr", err)
	}
}
