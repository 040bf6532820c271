package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/eventproc/eventproc/event/sink"
)

// TestReadiness: /healthz is 200 from the start; /readyz and gRPC health
// say not ready while the processor is down, and ready once it serves.
func TestReadiness(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	// The processor's address exists but nobody serves it yet.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newTestProcessor(t, lis.Addr().String())
	t.Cleanup(func() { lis.Close() })
	// A grace period longer than the test: shutdown must not wait for the
	// health Watch below.
	s := startSink(t, "--route", "hello="+p.addr, "--streams-per-target", "3", "--shutdown-grace", "1h")

	resp, body := s.get(ctx, "/healthz")
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
	resp, body = s.get(ctx, "/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the processor serves = %d %s, want 503", resp.StatusCode, body)
	}
	var r struct {
		Ready  bool               `json:"ready"`
		Routes []sink.RouteStatus `json:"routes"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Ready || len(r.Routes) != 1 || r.Routes[0].Type != "TYPE_HELLO" {
		t.Errorf("/readyz body %s (%v), want not ready with the HELLO route", body, err)
	}
	health := healthpb.NewHealthClient(s.conn)
	for _, svc := range []string{"", "event.v1.SinkService"} {
		got, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health of %q before the processor serves = %v, %v; want NOT_SERVING", svc, got, err)
		}
	}
	// Watch on a connection of its own, which stays open during shutdown.
	watchConn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer watchConn.Close()
	// Its context outlives the test's deadline, so only the sink can end it.
	watchCtx, cancelWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWatch()
	watch, err := healthpb.NewHealthClient(watchConn).Watch(watchCtx, &healthpb.HealthCheckRequest{Service: "event.v1.SinkService"})
	if err != nil {
		t.Fatal(err)
	}

	p.serve(lis)
	s.waitRoute(ctx, "TYPE_HELLO", true)
	resp, body = s.get(ctx, "/readyz")
	if err := json.Unmarshal(body, &r); resp.StatusCode != http.StatusOK || err != nil || !r.Ready {
		t.Fatalf("/readyz once the processor serves = %d %s, want 200 ready", resp.StatusCode, body)
	}
	if ts := r.Routes[0].Targets; len(ts) != 1 || ts[0].Target != p.addr || ts[0].Streams != 3 {
		t.Errorf("/readyz targets = %+v, want %s with 3 streams", ts, p.addr)
	}
	for {
		got, err := watch.Recv()
		if err != nil {
			t.Fatalf("health Watch: %v", err)
		}
		if got.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	got, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health of \"\" once ready = %v, %v; want SERVING", got, err)
	}
	// Shutdown ends the Watch rather than waiting out the grace period:
	// run returns (shutdown checks it), and the Watch ends.
	s.shutdown()
	for {
		if _, err := watch.Recv(); err != nil {
			break
		}
	}
}

// TestProcessorRestart: the sink notices a processor going away, answers
// 503 meanwhile, and recovers by itself when it comes back.
func TestProcessorRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixture(t, ctx)
	send := func(want int) {
		t.Helper()
		resp, body := f.sink.post(ctx, `{"type":"TYPE_HELLO","payload":"again"}`)
		if resp.StatusCode != want {
			t.Fatalf("status %d %s, want %d", resp.StatusCode, body, want)
		}
	}
	send(http.StatusOK)
	f.proc.kill()
	f.sink.waitRoute(ctx, "TYPE_HELLO", false)
	send(http.StatusServiceUnavailable)
	f.proc.restart()
	f.sink.waitRoute(ctx, "TYPE_HELLO", true)
	send(http.StatusOK)
}

// TestReflection lists the services as grpcurl does.
func TestReflection(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t))
	stream, err := reflectionpb.NewServerReflectionClient(s.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"event.v1.SinkService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("services %q lack %s", names, want)
		}
	}
	resp = ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "event.v1.SinkService"}})
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("no file descriptor for event.v1.SinkService: %v", resp)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

// TestGracefulShutdown: on shutdown the sink stops accepting connections
// but lets the request in flight finish, then run returns nil.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixture(t, ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		resp, body := f.sink.post(ctx, eventJSON(t, hello("act", "block")))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("request in flight at shutdown: %d %s, want 200", resp.StatusCode, body)
		}
	})
	f.proc.waitStarted(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.sink.shutdown()
	}()
	// New connections are refused once shutdown has started.
	addr := strings.TrimPrefix(f.sink.url, "http://")
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the HTTP listener stayed open: %v", ctx.Err())
			}
			break
		}
		c.Close()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-stopped:
		t.Fatalf("shutdown finished while a request was in flight")
	default:
	}
	f.proc.unblock()
	<-stopped
}

// TestShutdownGraceOver: a request still in flight when the grace period
// ends is cut off and run returns all the same.
func TestShutdownGraceOver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixtureWith(t, ctx, "--shutdown-grace", "200ms")
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.sink.url+"/v1/events",
			strings.NewReader(eventJSON(t, hello("act", "block"))))
		resp, err := f.sink.client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("request cut off by shutdown: %d %s, want 503 or a closed connection", resp.StatusCode, body)
			}
		}
	})
	f.proc.waitStarted(ctx)
	f.sink.shutdown() // fails the test if run does not return nil
}

// TestShutdownWithoutProcessors: the sink starts and stops cleanly while
// its processors are unreachable.
func TestShutdownWithoutProcessors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t), "--route", "goodbye=dns:///nowhere.invalid:1")
	resp, body := s.get(ctx, "/healthz")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d %s, want 200", resp.StatusCode, body)
	}
	s.shutdown()
}

// TestUnreachableTargetIsLogged: a target that refuses connections and one
// whose name does not resolve are each logged once with the reason, and
// "not ready" is logged at start naming the routes and the reasons, which
// /readyz carries too.
func TestUnreachableTargetIsLogged(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dead := deadAddr(t)
	s := startSink(t, "--route", "hello="+dead, "--route", "goodbye=nosuchhost.invalid:9090", "--streams-per-target", "2")
	notReady := regexp.MustCompile(`msg="not ready: TYPE_HELLO, TYPE_GOODBYE without a live processor" .*reason=".*` +
		regexp.QuoteMeta(dead) + `: connection error: .*connection refused.*nosuchhost.invalid:9090: resolving nosuchhost.invalid: `)
	for !notReady.MatchString(s.log.String()) {
		select {
		case <-ctx.Done():
			t.Fatalf("no \"not ready\" line with both reasons in the log")
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, body := s.get(ctx, "/readyz")
	if !strings.Contains(string(body), `"last_error":"connection error: `) || !strings.Contains(string(body), `"last_error":"resolving nosuchhost.invalid: `) {
		t.Errorf("/readyz = %s, want each target's last_error", body)
	}
	s.shutdown()
	log := s.log.String()
	for _, target := range []string{dead, "nosuchhost.invalid:9090"} {
		if n := strings.Count(log, `msg="processor unusable" target=`+target+" "); n != 1 {
			t.Errorf("%d \"processor unusable\" lines for %s, want 1 (at start, not per retry)", n, target)
		}
	}
	if n := strings.Count(log, `msg="not ready:`); n != 1 {
		t.Errorf("%d \"not ready\" lines, want 1: the reasons did not change", n)
	}
}

// TestShutdownDelay: once shutdown starts, for --shutdown-delay, the sink
// answers /readyz with 503 and gRPC health NOT_SERVING, and still serves
// events; then it stops accepting connections.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixtureWith(t, ctx, "--shutdown-delay", "3s")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.sink.url+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown = %d, %v; want 200", code, err)
	}
	// A connection of its own: shutdown closes the fixture's.
	conn, err := grpc.NewClient(f.sink.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.sink.shutdown()
	}()
	for {
		code, err := get("/readyz")
		if err != nil {
			t.Fatalf("/readyz during the shutdown delay: %v, want an answer", err)
		}
		if code == http.StatusServiceUnavailable {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("/readyz never answered 503")
		case <-time.After(10 * time.Millisecond):
		}
	}
	got, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health during the delay = %v, %v; want NOT_SERVING", got, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.sink.url+"/v1/events", strings.NewReader(`{"type":"TYPE_HELLO"}`))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("event during the delay: %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	<-stopped
	if _, err := get("/readyz"); err == nil {
		t.Errorf("/readyz answered after shutdown; want the connection refused")
	}
}
