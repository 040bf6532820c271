package main

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/testcerts"
)

// TestTLS runs proc with TLS and client certificates required (set by
// environment variables): a sink with a certificate of the CA is served,
// one without a certificate or with another CA's is refused.
func TestTLS(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	procCA, sinkCA, otherCA := testcerts.NewCA(t, "processors"), testcerts.NewCA(t, "sinks"), testcerts.NewCA(t, "other")
	cert, key := procCA.Localhost(t, "proc").Files(t, dir, "proc")
	p := startProc(t, ctx, map[string]string{
		"PROC_TLS_CERT": cert, "PROC_TLS_KEY": key,
		"PROC_TLS_CLIENT_CA": testcerts.WriteFile(t, dir, "sinks.crt", sinkCA.PEM),
	})
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		want  codes.Code
	}{
		{"sink certificate", []tls.Certificate{sinkCA.Issue(t, testcerts.Options{CommonName: "sink", ClientOnly: true}).TLS(t)}, codes.OK},
		{"no certificate", nil, codes.Unavailable},
		{"certificate of another CA", []tls.Certificate{otherCA.Issue(t, testcerts.Options{CommonName: "sink"}).TLS(t)}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
				RootCAs: procCA.Pool(), ServerName: "localhost", Certificates: tc.certs,
			})))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st, err := eventv1.NewProcessorServiceClient(conn).Process(metadata.AppendToOutgoingContext(ctx, processor.SinkIDMetadataKey, "test"))
			if err == nil {
				_, err = st.Header()
			}
			if status.Code(err) != tc.want {
				t.Fatalf("Process: %v, want %v", err, tc.want)
			}
			if tc.want == codes.OK {
				if resp := ask(t, st, 1, event("e1", nil), 0); resp.GetReply().GetId() != "e1" {
					t.Fatalf("answer %v, want the event echoed", resp)
				}
			}
		})
	}
}
