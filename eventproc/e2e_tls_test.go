//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/authtest"
)

// TestEndToEndTLS runs the real binaries with TLS on both of the sink's
// ports and mutual TLS between the sink and proc, and sends an event over
// HTTPS and one over gRPC with TLS.
// (It also turns JWT authentication on: TLS, mTLS and tokens together.)
func TestEndToEndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	t.Parallel()
	dir := buildBinaries(t)

	ctx := testContext(t)
	w := newTLSWorld(t)
	is := authtest.NewIssuer(t, "https://issuer.test", "eventproc")
	jwks := filepath.Join(dir, "jwks.json")
	is.WriteFile(jwks)
	token := is.Token("k1", authtest.Claims{Subject: "e2e", Scope: "send:hello"})
	proc := startBinary(t, ctx, filepath.Join(dir, "proc"), `listening on (\S+)`, "--addr", "127.0.0.1:0",
		"--tls-cert", w.procCert, "--tls-key", w.procKey, "--tls-client-ca", w.sinkCAOfP)
	procAddr := proc.wait(ctx)["1"]
	sink := startBinary(t, ctx, filepath.Join(dir, "eventproc"), `(http|grpc) listening on ([^\s"]+)`,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--route", "hello="+procAddr,
		"--tls-cert", w.sinkCert, "--tls-key", w.sinkKey, "--tls-client-ca", w.clientCAFile,
		"--processor-tls-ca", w.procCAFile, "--processor-tls-cert", w.sinkClientCert, "--processor-tls-key", w.sinkClientKey,
		"--auth-jwks-file", jwks, "--auth-issuer", is.Name, "--auth-audience", is.Audience)
	addrs := sink.wait(ctx)

	clientTLS := &tls.Config{RootCAs: w.sinkCA.Pool(), Certificates: []tls.Certificate{w.client}}
	s := &sinkProc{t: t, url: "https://" + addrs["http"],
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}}
	defer s.client.CloseIdleConnections()
	s.waitRoute(ctx, "TYPE_HELLO", true)
	if resp, body := s.post(ctx, `{"type":"TYPE_HELLO"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /v1/events without a token: %d %s, want 401", resp.StatusCode, body)
	}
	resp, body := s.post(ctx, `{"type":"TYPE_HELLO","payload":"over mTLS"}`, "Authorization", "Bearer "+token)
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" || !strings.Contains(string(body), `"payload":"over mTLS"`) {
		t.Errorf("POST /v1/events: %d %s %s, want 200 over HTTP/2 and the event echoed", resp.StatusCode, resp.Proto, body)
	}
	s.client.CloseIdleConnections()

	conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eventv1.NewSinkServiceClient(conn).Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO}}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Send without a token: %v, want UNAUTHENTICATED", err)
	}
	reply, err := eventv1.NewSinkServiceClient(metadataConn{conn, token}).Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{
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

// metadataConn sends a bearer token with every call.
type metadataConn struct {
	*grpc.ClientConn
	token string
}

func (c metadataConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.ClientConn.Invoke(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token), method, args, reply, opts...)
}
