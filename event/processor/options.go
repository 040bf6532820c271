package processor

import (
	"crypto/tls"
	"log/slog"
	"time"

	"google.golang.org/grpc"
)

// Defaults for the zero fields of [Options].
const (
	// DefaultMaxConcurrency is the default for Options.MaxConcurrency.
	DefaultMaxConcurrency = 1024
	// DefaultShutdownGrace is the default for Options.ShutdownGrace.
	DefaultShutdownGrace = 10 * time.Second
)

// Options configure a [Server]. The zero value is usable.
type Options struct {
	// MaxConcurrency bounds the handlers running at once across all streams
	// of the Server. Zero or less means DefaultMaxConcurrency.
	MaxConcurrency int
	// ShutdownGrace is how long Serve waits for in-flight handlers before it
	// stops hard. Zero or less means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Logger gets handler panics and lifecycle messages; nil: slog.Default().
	Logger *slog.Logger
	// TLS, when set, makes Serve serve TLS with it (gRPC's
	// credentials.NewTLS, which adds ALPN "h2"). To require client
	// certificates, set ClientAuth and ClientCAs in it; package
	// event/tlsfiles makes such a configuration from files it reloads:
	// files.ServerConfig("h2"). It does not apply to Register.
	TLS *tls.Config
	// ServerOptions are added to those of the grpc.Server Serve builds
	// (credentials, interceptors); they do not apply to Register.
	ServerOptions []grpc.ServerOption
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = DefaultMaxConcurrency
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
