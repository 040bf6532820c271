package sink

import (
	"google.golang.org/grpc"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Register adds the sink's SinkService to a gRPC server. Build that server
// with [ServerOptions].
func (s *Sink) Register(r grpc.ServiceRegistrar) {
	eventv1.RegisterSinkServiceServer(r, s)
}

// ServerOptions returns the options a gRPC server serving the sink needs.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{RelayCodecOption()}
}
