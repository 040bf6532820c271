package processor_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// watchHealth starts a health Watch on h's connection and returns the
// statuses it reports.
func watchHealth(t *testing.T, ctx context.Context, h *harness) healthpb.Health_WatchClient {
	t.Helper()
	w, err := healthpb.NewHealthClient(h.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", resp, err)
	}
	return w
}

func TestGracefulShutdownWithOpenStream(t *testing.T) {
	ctx := testCtx(t)
	g := newGates("inflight")
	h := start(t, g, processor.Options{})
	st := h.open(t, ctx, "a")
	idle := h.open(t, ctx, "b") // holds a stream open with nothing in flight
	health := watchHealth(t, ctx, h)
	send(t, st, request(1, "inflight", 0))
	wait(t, ctx, g.started, "handler start")

	h.stop()
	// Once health says NOT_SERVING the Server is draining.
	if resp, err := health.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health = %v, %v; want NOT_SERVING", resp, err)
	}
	// The idle stream ends at once, cleanly.
	if resp, err := idle.Recv(); err != io.EOF {
		t.Errorf("idle stream: Recv = %v, %v; want EOF", resp, err)
	}
	// A new request on the draining stream is turned away, marked so the
	// sink knows it was not handled and sends it elsewhere.
	send(t, st, request(2, "inflight", 0))
	turned := recv(t, st)
	if turned.GetId() != 2 || errorCode(turned) != codes.Unavailable || !hasDrainingReason(turned) {
		t.Errorf("request during drain answered %v; want UNAVAILABLE with reason PROCESSOR_DRAINING", turned)
	}
	// The in-flight handler finishes, and its answer is delivered.
	g.open("inflight")
	if resp := recv(t, st); resp.GetId() != 1 || resp.GetReply().GetId() != "inflight" {
		t.Errorf("got %v, want reply to 1", resp)
	}
	if resp, err := st.Recv(); err != io.EOF {
		t.Errorf("after the last answer: Recv = %v, %v; want EOF", resp, err)
	}
	// Serve returns although no client closed anything; the health watch
	// was ended for it.
	if err := h.shutdown(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if _, err := health.Recv(); err == nil {
		t.Error("health watch still open after Serve returned")
	}
}

func TestShutdownAfterGraceForcesStop(t *testing.T) {
	ctx := testCtx(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	h := start(t, processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		started <- struct{}{}
		<-release // ignores ctx: a handler that never finishes by itself
		return ev, nil
	}), processor.Options{ShutdownGrace: 50 * time.Millisecond})
	defer close(release)
	st := h.open(t, ctx, "a")
	send(t, st, request(1, "stuck", 0))
	wait(t, ctx, started, "handler start")

	if err := h.shutdown(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	resp, err := st.Recv()
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("stream after forced stop: Recv = %v, %v; want UNAVAILABLE", resp, err)
	}
}

func TestStreamRefusedWhileDraining(t *testing.T) {
	ctx := testCtx(t)
	g := newGates("inflight")
	h := start(t, g, processor.Options{})
	st := h.open(t, ctx, "a")
	health := watchHealth(t, ctx, h)
	send(t, st, request(1, "inflight", 0))
	wait(t, ctx, g.started, "handler start")
	h.stop()
	if resp, err := health.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health = %v, %v; want NOT_SERVING", resp, err)
	}
	// Requests arriving while draining are refused, for the sink to retry
	// elsewhere; the one in flight still completes.
	send(t, st, request(2, "late", 0))
	if resp := recv(t, st); resp.GetId() != 2 || errorCode(resp) != codes.Unavailable {
		t.Errorf("late request: got %v, want UNAVAILABLE for 2", resp)
	}
	g.open("inflight")
	if resp := recv(t, st); resp.GetId() != 1 || resp.GetReply() == nil {
		t.Errorf("got %v, want reply to 1", resp)
	}
	if err := h.shutdown(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

func TestServeErrors(t *testing.T) {
	ctx := testCtx(t)
	srv := processor.NewServer(processor.HandlerFunc(echo), processor.Options{Logger: quietLogger()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = lis.Close()
	if err := srv.Serve(ctx, lis); err == nil {
		t.Error("Serve on a closed listener = nil, want an error")
	}
	lis2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ctx, lis2); err == nil || errors.Is(err, net.ErrClosed) {
		t.Errorf("second Serve = %v, want an error saying so", err)
	}
}

// hasDrainingReason reports whether resp's error carries the ErrorInfo
// detail of a draining processor.
func hasDrainingReason(resp *eventv1.ProcessResponse) bool {
	for _, d := range status.FromProto(resp.GetError()).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok &&
			info.GetReason() == eventv1.ErrorReason_ERROR_REASON_PROCESSOR_DRAINING.String() &&
			info.GetDomain() == processor.ErrorDomain {
			return true
		}
	}
	return false
}
