package processor

import (
	"context"
	"errors"
	"net"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// KeepaliveOptions returns the keepalive settings of the server Serve
// builds: ping idle connections every 5s, drop those silent for 2s, and let
// sinks ping as often as every second, also without streams. Pass them to
// grpc.NewServer when using [Server.Register] on a server of your own:
// gRPC's default policy closes the connection of a sink that pings more
// often than every 5 minutes ("too_many_pings").
func KeepaliveOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 2 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}
}

// Serve serves the processor on lis with a gRPC server of its own, which
// also offers the standard gRPC health service (SERVING for "" and for
// event.v1.ProcessorService). It blocks until ctx is done, then shuts down
// gracefully as the package documentation describes, and returns nil; or
// it returns the error that made serving fail. lis is closed on return.
// Serve may be called once per Server.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		_ = lis.Close()
		return errors.New("processor: Serve called twice")
	}
	// Cancelled when the Process streams are done, to end the other
	// long-lived calls (health Watch) that would hold up GracefulStop.
	callsCtx, endCalls := context.WithCancel(context.Background())
	defer endCalls()
	opts := append(KeepaliveOptions(), grpc.ChainStreamInterceptor(endWith(callsCtx)))
	if s.opts.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.TLS)))
	}
	opts = append(opts, s.opts.ServerOptions...)
	gs := grpc.NewServer(opts...)
	s.Register(gs)
	hs := health.NewServer()
	hs.SetServingStatus(eventv1.ProcessorService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)

	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("processor: shutting down", "grace", s.opts.ShutdownGrace)
	case serveErr = <-served:
		served <- serveErr // read again below
	}

	s.drain()
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	grace := time.NewTimer(s.opts.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-s.drained:
		endCalls()
		select {
		case <-stopped:
		case <-grace.C:
			s.log.Warn("processor: grace period over, stopping hard")
			gs.Stop()
		}
	case <-grace.C:
		s.log.Warn("processor: grace period over, cutting streams and stopping hard")
		s.closeStreams()
		endCalls()
		gs.Stop()
	}
	<-stopped
	if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// endWith returns a stream interceptor that ends a streaming call, other
// than Process, when ctx is done, by cancelling the context it sees.
func endWith(ctx context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == eventv1.ProcessorService_Process_FullMethodName {
			return handler(srv, ss) // Process ends itself on shutdown
		}
		callCtx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		return handler(srv, &streamWithContext{ServerStream: ss, ctx: callCtx})
	}
}

// streamWithContext is a grpc.ServerStream with another context.
type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the replaced context.
func (s *streamWithContext) Context() context.Context { return s.ctx }
