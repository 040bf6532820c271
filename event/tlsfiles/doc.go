// Package tlsfiles serves and dials TLS with certificates read from PEM
// files that are reloaded when they change, so that a renewed certificate
// is used without a restart.
//
// A [Files] holds a certificate with its key, a CA bundle, or both, read
// from files by [New]. [Files.Run] reads the files again every
// Options.Interval and, when their bytes changed, loads them: a successful
// reload is logged and applies to the handshakes that follow; a bad one (a
// file missing or unparsable, or a key that does not match its
// certificate) is logged and the previous files stay in use. Because the
// files are re-read through their paths, this also follows the atomic swap
// of the "..data" symlink by which Kubernetes updates a mounted secret.
//
// The configurations it makes look the files up at every handshake, so a
// reload never touches connections already established:
//
//	files, err := tlsfiles.New(tlsfiles.Options{CertFile: "tls.crt", KeyFile: "tls.key", CAFile: "clients-ca.crt"})
//	go files.Run(ctx)                                   // reload until ctx ends
//	grpcCreds := credentials.NewTLS(files.ServerConfig("h2")) // client certificates required: CAFile is set
//	httpSrv.TLSConfig = files.ServerConfig("h2", "http/1.1")
//
// On the dialling side, [Files.ClientConfig] and [Files.ClientCredentials]
// (for gRPC) present the certificate, when there is one, and verify the
// server against the CA bundle (or the system's roots). [PeerIdentity]
// names the peer of a connection by its verified certificate.
//
// A Files is safe for concurrent use.
package tlsfiles
