package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/eventproc/eventproc/event/auth"
	"github.com/eventproc/eventproc/event/httpapi"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/debugserver"
	"github.com/eventproc/eventproc/internal/natsembed"
)

// streamWorkers is the number of goroutines the gRPC server runs calls on.
const streamWorkers = 64

// readinessInterval is how often gRPC health follows the sink's readiness.
const readinessInterval = 250 * time.Millisecond

// server is the running program: the sink and its gRPC and HTTP servers.
type server struct {
	cfg    Config
	log    *slog.Logger
	sink   *sink.Sink
	auth   *auth.Authenticator
	grpc   *grpc.Server
	health *health.Server
	http   *http.Server
	api    *httpapi.Handler
	conns  *connMetrics
	tls    *sinkTLS
	// store is the NATS store of durable routes and shared pub/sub, nil
	// without either.
	store *natsembed.Store
	// streamsCtx ends long-lived streaming calls (health Watch, reflection,
	// Subscribe) at shutdown, so that they do not hold up GracefulStop.
	streamsCtx context.Context
	endStreams context.CancelFunc
}

// newServer builds the sink and both servers from cfg, starting nothing
// ([server.serve] does). Call close if serve is never called.
func newServer(cfg Config, log *slog.Logger) (*server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	tls, err := newSinkTLS(cfg.TLS, log, reg)
	if err != nil {
		return nil, err
	}
	acfg := cfg.Auth
	acfg.Logger, acfg.Metrics = log, reg
	authn, err := auth.New(acfg)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	// Authentication and rate limits cost nothing when both are off.
	guarded := authn.Enabled() || acfg.RateLimit > 0
	scfg := cfg.Sink
	scfg.Logger, scfg.Metrics, scfg.TransportCredentials = log, reg, tls.processorCredentials()
	if guarded {
		scfg.Authorize, scfg.Refresh = authn.Authorize, authn.Refresh
	}
	var store *natsembed.Store
	if cfg.needsStore() || cfg.sharedPubSub() {
		ocfg := cfg.Store
		ocfg.Name, ocfg.Logger = "eventproc", log
		if store, err = natsembed.Start(ocfg); err != nil {
			authn.Close()
			return nil, fmt.Errorf("durable store: %w", err)
		}
		if cfg.needsStore() {
			scfg.Durable.Conn = store.Conn()
		}
		if cfg.sharedPubSub() {
			scfg.SharedPubSub = store.Conn()
		}
		if a := store.ListenAddr(); a != nil {
			log.Info("nats listening on "+a.String(), "addr", a.String())
		}
		where := cfg.Store.URL
		if store.Embedded() {
			where = "embedded, " + cfg.Store.DataDir
		}
		log.Info("nats store", "nats", where, "durable", cfg.durable(), "idempotent", cfg.idempotent(), "shared_pubsub", cfg.sharedPubSub())
	}
	sk, err := sink.New(scfg)
	if err != nil {
		authn.Close()
		if store != nil {
			store.Close()
		}
		return nil, fmt.Errorf("invalid configuration: %s", withoutSentinel(err))
	}
	s := &server{cfg: cfg, log: log, sink: sk, auth: authn, health: health.NewServer(), conns: newConnMetrics(reg), tls: tls, store: store}
	s.streamsCtx, s.endStreams = context.WithCancel(context.Background())
	apiOpts := httpapi.Options{
		MaxBodyBytes:      cfg.MaxBodyBytes,
		BodyReadTimeout:   cfg.BodyReadTimeout,
		MetricsRegisterer: reg,
		Heartbeat:         cfg.SSEHeartbeat,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}),
		Stats:           reg,
		Logger:          log,
		CloudEventTypes: cfg.CloudEventTypes,
	}
	unary, streams := []grpc.UnaryServerInterceptor(nil), []grpc.StreamServerInterceptor{s.endOnShutdown}
	if guarded {
		apiOpts.Authenticate = authn.HTTP
		unary, streams = append(unary, authn.UnaryInterceptor), append(streams, authn.StreamInterceptor)
	}
	if authn.Enabled() {
		apiOpts.IssueTicket = authn.IssueTicket
	}
	s.api, err = httpapi.New(sk, apiOpts)
	if err != nil {
		s.close()
		return nil, err
	}
	// No WriteTimeout: it would cut off subscriptions, which stream for as
	// long as the client stays; they bound each write instead.
	s.http = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxHTTP2Streams},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	tls.configureHTTP(s.http)
	s.grpc = grpc.NewServer(
		tls.grpcOption(),
		// RESOURCE_EXHAUSTED beyond, as HTTP answers 413.
		grpc.MaxRecvMsgSize(int(cfg.MaxBodyBytes)),
		// Find half-dead client connections; let clients ping every 5s.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(streams...),
		// Long-lived goroutines, whose stacks need not grow anew per call;
		// when all are busy, grpc-go starts one as usual.
		grpc.NumStreamWorkers(streamWorkers),
		// gRPC's default is no limit on one connection's calls.
		grpc.MaxConcurrentStreams(uint32(cfg.MaxStreamsPerConn)),
		grpc.MaxHeaderListSize(maxHeaderBytes),
	)
	sk.Register(s.grpc)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// defaultMaxStreamsPerConn is ten times HTTP/2's customary 100.
const defaultMaxStreamsPerConn = 1000

// close releases what newServer built, for when serve is never called.
func (s *server) close() {
	s.sink.Close()
	if s.store != nil {
		s.store.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	s.endStreams()
	s.auth.Close()
}

// serve runs the sink and serves gRPC on grpcLis and HTTP on httpLis until
// ctx ends or a server fails; then it shuts down gracefully (see shutdown)
// and returns the first error. It closes both listeners.
func (s *server) serve(ctx context.Context, grpcLis, httpLis, debugLis net.Listener) error {
	var dbg *http.Server
	if debugLis != nil {
		s.log.Info("debug listening on "+debugLis.Addr().String(), "addr", debugLis.Addr().String())
		dbg = debugserver.New()
	}
	s.log.Info("grpc listening on "+grpcLis.Addr().String(), "addr", grpcLis.Addr().String())
	s.log.Info("http listening on "+httpLis.Addr().String(), "addr", httpLis.Addr().String())
	s.warnIfOpen(grpcLis.Addr(), httpLis.Addr())
	for _, r := range s.cfg.Sink.Routes {
		s.log.Info("route", "type", r.Type.String(), "targets", r.Targets, "broadcast", r.Broadcast)
	}

	if s.cfg.MemoryBudget > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(s.cfg.MemoryBudget))
	}
	// The sink outlives the servers: requests in flight during the grace
	// period still need it.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSink()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.sink.Run(sinkCtx) })
	g.Go(func() error {
		if err := s.grpc.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.serveHTTP(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		s.followReadiness(gctx)
		return nil
	})
	g.Go(func() error {
		s.tls.run(gctx)
		return nil
	})
	if dbg != nil {
		g.Go(func() error {
			if err := dbg.Serve(debugLis); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("debug server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown()
		stopSink()
		if dbg != nil {
			dbg.Close()
		}
		return nil
	})
	err := g.Wait()
	s.endStreams()
	s.sink.Close()
	if s.store != nil {
		s.store.Close() // after the sink: its last acks are flushed
	}
	s.auth.Close()
	s.log.Info("stopped")
	return err
}

// warnIfOpen warns when the sink listens beyond loopback without
// authentication (anyone can send and read events) or without TLS
// (events and credentials travel in plain text).
func (s *server) warnIfOpen(addrs ...net.Addr) {
	var missing []string
	if !s.auth.Enabled() && s.cfg.TLS.ClientCAFile == "" {
		missing = append(missing, "authentication (anyone who reaches it can send and read every event)")
	}
	if s.cfg.TLS.CertFile == "" {
		missing = append(missing, "TLS (events and credentials travel in plain text)")
	}
	if len(missing) == 0 {
		return
	}
	for _, a := range addrs {
		if tcp, ok := a.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			s.log.Warn("listening on "+a.String()+" without "+strings.Join(missing, " and without ")+
				"; see the README's Security section (--auth-jwks-url, --auth-api-keys, --tls-cert)",
				"addr", a.String())
		}
	}
}

// shutdown stops both servers: readiness turns false (/readyz 503, gRPC
// health NOT_SERVING) while both go on serving for ShutdownDelay, then the
// listeners close, and requests in flight get ShutdownGrace before
// connections are closed.
func (s *server) shutdown() {
	s.health.Shutdown() // every service NOT_SERVING from now on, whatever followReadiness sets
	s.endStreams()
	s.api.Shutdown()
	if d := s.cfg.ShutdownDelay; d > 0 {
		s.log.Info("shutting down: not ready, still serving", "delay", d)
		time.Sleep(d) // a second signal ends the process at once (main)
	}
	s.log.Info("shutting down", "grace", s.cfg.ShutdownGrace)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.http.Shutdown(ctx); err != nil {
			s.log.Warn("http: grace period over; closing connections", "err", err)
			s.http.Close()
		}
	})
	wg.Go(func() {
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.log.Warn("grpc: grace period over; cancelling open calls")
			s.grpc.Stop()
			<-stopped
		}
	})
	wg.Wait()
}

// followReadiness keeps gRPC health in step with the sink's readiness
// until ctx ends, and logs each change: "ready", and "not ready" naming
// the routes without a live processor and why (their targets' last
// errors), again whenever that changes. At start, not ready is logged once
// every such route has a reason, or after notReadyGrace, so that a normal
// start, whose streams open within milliseconds, logs nothing.
func (s *server) followReadiness(ctx context.Context) {
	t := time.NewTicker(readinessInterval)
	defer t.Stop()
	start := time.Now()
	was, logged := false, ""
	for {
		if now := s.sink.Ready(); now != was {
			was = now
			if now {
				s.setHealth(healthpb.HealthCheckResponse_SERVING)
				s.log.Info("ready: every route has a live processor")
				logged = ""
			} else {
				s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
			}
		}
		if !was {
			routes, reasons, explained := notReady(s.sink.Status())
			report := strings.Join(routes, ",") + "\x00" + strings.Join(reasons, "; ")
			if len(routes) > 0 && report != logged && (explained || time.Since(start) >= notReadyGrace) {
				logged = report
				s.log.Warn("not ready: "+strings.Join(routes, ", ")+" without a live processor",
					"routes", routes, "reason", strings.Join(reasons, "; "))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// notReadyGrace is how long after start the sink may be not ready without
// a known reason before it says so.
const notReadyGrace = 2 * time.Second

// notReady lists the routes without a live processor stream and, per
// target, why ("target: last error", or "target: no live stream yet"); it
// reports whether every such target has a last error.
func notReady(routes []sink.RouteStatus) (names, reasons []string, explained bool) {
	explained = true
	for _, r := range routes {
		if r.Ready {
			continue
		}
		names = append(names, r.Type)
		for _, t := range r.Targets {
			why := t.LastError
			if why == "" {
				why, explained = "no live stream yet", false
			}
			reasons = append(reasons, t.Target+": "+why)
		}
	}
	return names, slices.Compact(reasons), explained
}

func (s *server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(eventv1.SinkService_ServiceDesc.ServiceName, st)
}

// endOnShutdown ends streaming calls when shutdown starts, except
// SinkService.Stream, whose events get the grace period as unary calls do.
func (s *server) endOnShutdown(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod == eventv1.SinkService_Stream_FullMethodName {
		return handler(srv, ss)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.streamsCtx, cancel)
	defer stop()
	return handler(srv, &streamWithContext{ServerStream: ss, ctx: ctx})
}

// streamWithContext is a grpc.ServerStream with another context.
type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *streamWithContext) Context() context.Context { return s.ctx }
