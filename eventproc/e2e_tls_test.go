//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestEndToEndTLS runs the real binaries with TLS on both of the sink's
// ports and mutual TLS between the sink and proc, and sends an event over
// HTTPS and one over gRPC with TLS.
func TestEndToEndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	dir := t.TempDir()
	buildCtx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(buildCtx, goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/eventproc/eventproc/eventproc", "github.com/eventproc/eventproc/proc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx := testContext(t)
	w := newTLSWorld(t)
	proc := startBinary(t, ctx, filepath.Join(dir, "proc"), `listening on (\S+)`, "--addr", "127.0.0.1:0",
		"--tls-cert", w.procCert, "--tls-key", w.procKey, "--tls-client-ca", w.sinkCAOfP)
	procAddr := proc.wait(ctx)["1"]
	sink := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello="+procAddr,
		"--tls-cert", w.sinkCert, "--tls-key", w.sinkKey, "--tls-client-ca", w.clientCAFile,
		"--processor-tls-ca", w.procCAFile, "--processor-tls-cert", w.sinkClientCert, "--processor-tls-key", w.sinkClientKey)
	addrs := sink.wait(ctx)

	clientTLS := &tls.Config{RootCAs: w.sinkCA.Pool(), Certificates: []tls.Certificate{w.client}}
	s := &sinkProc{t: t, url: "https://" + addrs["http"],
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}}
	defer s.client.CloseIdleConnections()
	s.waitRoute(ctx, "TYPE_HELLO", true)
	resp, body := s.post(ctx, `{"type":"TYPE_HELLO","payload":"over mTLS"}`)
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" || !strings.Contains(string(body), `"payload":"over mTLS"`) {
		t.Errorf("POST /v1/events: %d %s %s, want 200 over HTTP/2 and the event echoed", resp.StatusCode, resp.Proto, body)
	}
	s.client.CloseIdleConnections()

	conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := eventv1.NewSinkServiceClient(conn).Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{
		Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("grpc over mTLS")}})
	conn.Close()
	if err != nil || reply.GetEvent().GetPayload().GetStringValue() != "grpc over mTLS" {
		t.Errorf("Send over gRPC with TLS: %v, %v; want the event echoed", reply, err)
	}

	sink.terminate()
	proc.terminate()
	sink.checkExit(ctx)
	proc.checkExit(ctx)
}
