package tlsfiles_test

import (
	"context"
	"log"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/eventproc/eventproc/event/tlsfiles"
)

// A gRPC server and an HTTP server that require client certificates, with
// files mounted from a Kubernetes secret and reloaded while the program
// runs, and how their handlers learn who calls.
func Example_server() {
	ctx := context.Background()
	files, err := tlsfiles.New(tlsfiles.Options{
		CertFile: "/etc/tls/tls.crt", KeyFile: "/etc/tls/tls.key", CAFile: "/etc/tls/clients-ca.crt", Name: "server",
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = files.Run(ctx) }() // until ctx ends

	grpcServer := grpc.NewServer(grpc.Creds(credentials.NewTLS(files.ServerConfig("h2"))),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if p, ok := peer.FromContext(ctx); ok {
				if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
					log.Printf("gRPC call from %s", tlsfiles.PeerIdentity(&info.State))
				}
			}
			return h(ctx, req)
		}))
	defer grpcServer.Stop() // grpcServer.Serve(lis) meanwhile

	httpServer := &http.Server{
		Addr:      ":8443",
		TLSConfig: files.ServerConfig("h2", "http/1.1"),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.Printf("HTTP request from %s", tlsfiles.PeerIdentity(r.TLS))
		}),
	}
	log.Fatal(httpServer.ListenAndServeTLS("", "")) // the certificate comes from TLSConfig
}

// A gRPC client that presents a certificate and verifies the server
// against a CA bundle, both reloaded.
func Example_client() {
	ctx := context.Background()
	files, err := tlsfiles.New(tlsfiles.Options{
		CertFile: "/etc/tls/client.crt", KeyFile: "/etc/tls/client.key", CAFile: "/etc/tls/servers-ca.crt", Name: "client",
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = files.Run(ctx) }()
	// The server's certificate must be valid for processor.internal; give a
	// name to ClientCredentials when it holds another.
	conn, err := grpc.NewClient("processor.internal:9090", grpc.WithTransportCredentials(files.ClientCredentials("")))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
}
