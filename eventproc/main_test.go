package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func TestMain(m *testing.M) {
	// grpc-gateway logs through grpclog (to stderr) what it also answers,
	// such as "Marshal error: … NaN" for TestReplyNotJSON's reply, which
	// the tests check in the answers; keep it out of the test output.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	}))
}

// built holds the binaries buildBinaries made, once per test run.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// buildBinaries builds eventproc and proc, as make build does into bin/,
// once for every test that runs them, and returns their directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "eventproc-bin"); built.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a cold build takes a while
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", built.dir+string(filepath.Separator),
			"github.com/eventproc/eventproc/eventproc", "github.com/eventproc/eventproc/proc").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// testTimeout bounds every test's context.
const testTimeout = 60 * time.Second

// testContext returns a context that ends with the test or after
// testTimeout.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// noEnv is a getenv for a clean environment.
func noEnv(string) string { return "" }

// logWriter collects a running sink's log and finds the addresses it
// listens on.
type logWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	addrs    map[string]string // "http"/"grpc" → address
	ready    chan struct{}     // closed when both addresses are known
	notified bool
}

var listeningRE = regexp.MustCompile(`(http|grpc|debug|nats) listening on ([^\s"]+)`)

func newLogWriter() *logWriter {
	return &logWriter{addrs: make(map[string]string), ready: make(chan struct{})}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, m := range listeningRE.FindAllStringSubmatch(string(p), -1) {
		w.addrs[m[1]] = m[2]
	}
	if !w.notified && w.addrs["http"] != "" && w.addrs["grpc"] != "" {
		w.notified = true
		close(w.ready)
	}
	return len(p), nil
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *logWriter) addr(which string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addrs[which]
}

// sinkProc is a sink started in-process with run.
type sinkProc struct {
	t        *testing.T
	url      string // http://host:port
	grpcAddr string
	log      *logWriter
	client   *http.Client
	conn     *grpc.ClientConn
	stop     context.CancelFunc
	done     chan error
}

// startSink runs the program with args (plus listen addresses on
// 127.0.0.1:0) until the test ends, and returns once it listens.
func startSink(t *testing.T, args ...string) *sinkProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	s := &sinkProc{t: t, log: newLogWriter(), stop: cancel, done: make(chan error, 1)}
	// No memory limit: the sinks of parallel tests share this process.
	all := append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-level", "debug",
		"--memory-budget", "off", "--shutdown-delay", "0"}, args...)
	if slices.Contains(args, "--durable") && !slices.Contains(args, "--data-dir") {
		t.Fatal("a sink with a durable route needs --data-dir t.TempDir() in tests: the default is in the working directory")
	}
	go func() { s.done <- run(ctx, all, noEnv, io.Discard, s.log) }()
	t.Cleanup(func() {
		s.shutdown()
		if t.Failed() {
			t.Logf("sink log:\n%s", s.log)
		}
	})
	select {
	case <-s.log.ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("run(%q) = %v before listening", all, err)
	case <-ctx.Done():
		t.Fatalf("sink did not log its addresses")
	}
	s.url = "http://" + s.log.addr("http")
	s.grpcAddr = s.log.addr("grpc")
	s.client = &http.Client{Transport: &http.Transport{}}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	return s
}

// shutdown stops the sink, as SIGTERM would, and checks run returns nil.
// It is idempotent.
func (s *sinkProc) shutdown() {
	s.t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	if s.conn != nil {
		s.conn.Close()
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run returned %v, want nil after shutdown", err)
		}
	case <-time.After(testTimeout):
		s.t.Errorf("run did not return after shutdown")
	}
}

// sinkClient returns a SinkService client on the sink's gRPC port.
func (s *sinkProc) sinkClient() eventv1.SinkServiceClient {
	return eventv1.NewSinkServiceClient(s.conn)
}

// do sends an HTTP request and returns the response with its body read.
func (s *sinkProc) do(ctx context.Context, req *http.Request) (*http.Response, []byte) {
	s.t.Helper()
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp, body
}

// post sends body to POST /v1/events.
func (s *sinkProc) post(ctx context.Context, body string, header ...string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.do(ctx, req)
}

// get sends GET path.
func (s *sinkProc) get(ctx context.Context, path string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.do(ctx, req)
}

// routeReady reports whether /readyz says the route of type typ has a live
// processor stream.
func (s *sinkProc) routeReady(ctx context.Context, typ string) bool {
	s.t.Helper()
	_, body := s.get(ctx, "/readyz")
	var r struct {
		Routes []struct {
			Type  string `json:"type"`
			Ready bool   `json:"ready"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatalf("/readyz body %q: %v", body, err)
	}
	for _, rt := range r.Routes {
		if rt.Type == typ {
			return rt.Ready
		}
	}
	s.t.Fatalf("/readyz body %q has no route %s", body, typ)
	return false
}

// waitRoute polls /readyz until the route of type typ is live (or not).
func (s *sinkProc) waitRoute(ctx context.Context, typ string, live bool) {
	s.t.Helper()
	for ctx.Err() == nil {
		if s.routeReady(ctx, typ) == live {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.t.Fatalf("route %s never became live=%v: %v", typ, live, ctx.Err())
}

// testProcessor is a processor built on the SDK whose answer each event
// chooses with its metadata "act":
//
//	(none)   reply with the event itself
//	consume  consume it
//	error    fail with the gRPC code named by metadata "code"
//	block    wait until unblock (or the handler's context ends), then reply
//	slow     wait until unblock, ignoring the context, then reply (late)
//	trace    reply with the trace context as metadata
//	nan      reply with the number NaN as payload, which JSON cannot express
//
// block and slow report the event id on started.
type testProcessor struct {
	t       testing.TB
	addr    string
	started chan string
	// record, when set before serving, sees every event handled.
	record func(*eventv1.Event)

	mu      sync.Mutex
	srv     *grpc.Server
	served  chan struct{}
	release chan struct{}
	once    *sync.Once
}

// startProcessor serves a testProcessor on 127.0.0.1:0 until the test ends.
func startProcessor(t testing.TB) *testProcessor {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newTestProcessor(t, lis.Addr().String())
	p.serve(lis)
	return p
}

// newTestProcessor returns a processor for addr that is not serving yet.
func newTestProcessor(t testing.TB, addr string) *testProcessor {
	p := &testProcessor{t: t, addr: addr, started: make(chan string, 64), release: make(chan struct{}), once: new(sync.Once)}
	t.Cleanup(p.kill)
	return p
}

// serve serves the processor on lis.
func (p *testProcessor) serve(lis net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Sinks ping every 10s, even without streams; allow it, as
	// processor.Server.Serve does.
	srv := grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	processor.NewServer(processor.HandlerFunc(p.handle), processor.Options{Logger: discardLogger()}).Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	p.srv, p.served = srv, served
}

// restart serves the processor again on its address after kill.
func (p *testProcessor) restart() {
	p.t.Helper()
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.release, p.once = make(chan struct{}), new(sync.Once)
	p.mu.Unlock()
	p.serve(lis)
}

// kill stops the processor abruptly, as if the process died: its
// connections close and its handlers' contexts end.
func (p *testProcessor) kill() {
	p.mu.Lock()
	srv, served := p.srv, p.served
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-served
	}
	p.unblock() // let slow handlers, which ignore their context, return
}

// unblock releases every blocked and slow handler.
func (p *testProcessor) unblock() {
	p.mu.Lock()
	release, once := p.release, p.once
	p.mu.Unlock()
	once.Do(func() { close(release) })
}

func (p *testProcessor) handle(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
	if p.record != nil {
		p.record(ev)
	}
	md := ev.GetMetadata()
	p.mu.Lock()
	release := p.release
	p.mu.Unlock()
	switch md["act"] {
	case "consume":
		return nil, nil
	case "error":
		var c codes.Code
		if err := c.UnmarshalJSON([]byte(`"` + md["code"] + `"`)); err != nil {
			return nil, status.Errorf(codes.Internal, "test processor: bad code %q", md["code"])
		}
		return nil, status.Errorf(c, "test processor: failing with %s as asked", md["code"])
	case "block":
		p.started <- ev.GetId()
		select {
		case <-release:
			return ev, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "trace":
		// Reply with the trace context the sink passed on.
		ev.Metadata = processor.TraceContext(ctx)
		return ev, nil
	case "fresh":
		// A new event, without id or time.
		return &eventv1.Event{Type: ev.GetType(), Payload: structpb.NewStringValue("fresh " + ev.GetId())}, nil
	case "nan":
		ev.Payload = structpb.NewNumberValue(math.NaN())
		return ev, nil
	case "slow":
		p.started <- ev.GetId()
		<-release
		return ev, nil
	}
	return ev, nil
}

// waitStarted waits until a block or slow handler has started.
func (p *testProcessor) waitStarted(ctx context.Context) string {
	p.t.Helper()
	select {
	case id := <-p.started:
		return id
	case <-ctx.Done():
		p.t.Fatalf("no blocking handler started: %v", ctx.Err())
		return ""
	}
}

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
