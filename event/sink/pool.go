package sink

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

// SinkIDHeader is the metadata key that names the sink on its Process
// streams (see protocol.SinkIDHeader).
const SinkIDHeader = protocol.SinkIDHeader

// pool keeps StreamsPerTarget Process streams open to one processor target
// and picks the least loaded of them for each request.
type pool struct {
	target string // the configured target, and the address for dns targets
	stats  *target
	cfg    *Config
	log    *slog.Logger
	sinkID string
	// onPublish receives events the processor publishes.
	onPublish func(*eventv1.Event)
	// onChange is called whenever a stream goes up or down.
	onChange func()

	conn  *grpc.ClientConn
	slots []atomic.Pointer[stream] // the live stream of each slot, nil while down
	next  atomic.Uint32            // rotates the start of the least-loaded scan

	// lookupHost is the host name gRPC resolves for this pool, if any.
	lookupHost string

	errMu   sync.Mutex
	lastErr string // the latest connection or stream error; "" while a stream is live
}

func newPool(name, dialTarget string, stats *target, cfg *Config, sinkID string, onPublish func(*eventv1.Event), onChange func()) (*pool, error) {
	creds := cfg.TransportCredentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			// gRPC raises anything under 10s to 10s (with a warning); the
			// probe below checks at the configured interval instead.
			Time:                max(cfg.Keepalive, 10*time.Second),
			Timeout:             cfg.KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  50 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   cfg.ReconnectMax,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		// A processor's answer may be as large as a request may be.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes)),
		// Spread streams over every address a target resolves to.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
	}
	conn, err := grpc.NewClient(dialTarget, append(opts, cfg.DialOptions...)...)
	if err != nil {
		return nil, err
	}
	return &pool{
		target:     name,
		stats:      stats,
		cfg:        cfg,
		log:        cfg.Logger.With("target", name),
		sinkID:     sinkID,
		onPublish:  onPublish,
		onChange:   onChange,
		conn:       conn,
		lookupHost: hostToLookUp(dialTarget),
		slots:      make([]atomic.Pointer[stream], cfg.StreamsPerTarget),
	}, nil
}

// run keeps every slot's stream open until ctx ends, then closes the
// connection.
func (p *pool) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range p.slots {
		wg.Go(func() { p.keepOpen(ctx, i) })
	}
	wg.Go(func() { p.probe(ctx) })
	wg.Go(func() { p.watchConn(ctx) })
	wg.Wait()
	p.conn.Close()
}

// errUnresponsive ends the streams of a processor that stopped answering.
var errUnresponsive = errors.New("processor stopped answering health checks")

// probe checks, every Keepalive while the pool has live streams, that the
// processor still answers, with a gRPC health check bounded by
// KeepaliveTimeout, and closes the pool's streams when it does not. This
// notices a processor that is frozen or cut off without closing its
// connection (SIGSTOP, a dead host, a partition) within seconds: gRPC's own
// keepalive pings cannot be sent more often than every 10 s, and TCP would
// take minutes. Any answer counts, even UNIMPLEMENTED from a processor
// without the health service. The streams are re-opened at once, but they
// become live only when the processor answers again, so meanwhile traffic
// goes to other replicas.
func (p *pool) probe(ctx context.Context) {
	hc := healthpb.NewHealthClient(p.conn)
	tick := time.NewTicker(p.cfg.Keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p.live() == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, p.cfg.KeepaliveTimeout)
		_, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) != codes.DeadlineExceeded {
			continue
		}
		p.log.Warn("processor did not answer a health check in time; closing its streams",
			"timeout", p.cfg.KeepaliveTimeout)
		for i := range p.slots {
			if s := p.slots[i].Load(); s != nil {
				s.abort(errUnresponsive)
			}
		}
	}
}

// keepOpen opens slot i's stream, serves it until it breaks, and opens it
// again, backing off exponentially (with jitter, capped at ReconnectMax)
// while attempts keep failing.
func (p *pool) keepOpen(ctx context.Context, i int) {
	client := eventv1.NewProcessorServiceClient(p.conn)
	md := metadata.Pairs(SinkIDHeader, p.sinkID, protocol.BatchHeader, strconv.Itoa(p.cfg.MaxMessageBytes))
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancelCause(metadata.NewOutgoingContext(ctx, md))
		opened := time.Now()
		err := p.serveOnce(sctx, cancel, client, i)
		cancel(nil)
		if ctx.Err() != nil {
			return
		}
		p.stats.reconnect.Add(1)
		p.setLastError(err)
		if time.Since(opened) > 10*time.Second {
			delay = 50 * time.Millisecond // it was healthy for a while: retry quickly
		}
		p.log.Warn("processor stream down; reopening", "slot", i, "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, p.cfg.ReconnectMax)
	}
}

// serveOnce opens one stream, waiting (without spinning) until the
// connection is up, and serves it until it breaks.
// Calling abort ends the stream.
func (p *pool) serveOnce(ctx context.Context, abort context.CancelCauseFunc, client eventv1.ProcessorServiceClient, i int) error {
	ps, err := client.Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	// The processor sends its headers when it accepts the stream; only then
	// is the stream live.
	md, err := ps.Header()
	if err != nil {
		return err
	}
	if md == nil {
		// gRPC's way of saying the stream ended without headers.
		return errors.New("stream ended before the processor accepted it")
	}
	s := newStream(p)
	s.abort = abort
	s.batchLimit = min(protocol.BatchLimit(md), p.cfg.MaxMessageBytes)
	p.slots[i].Store(s)
	p.setLastError(nil)
	p.onChange()
	p.log.Info("processor stream up", "slot", i)
	err = s.serve(ctx, ps)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // aborted: say why
	}
	p.slots[i].CompareAndSwap(s, nil) // stop picking it before failing its calls
	s.fail(err)
	p.onChange()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// pick returns the live stream with the fewest pending requests, or nil.
func (p *pool) pick() *stream {
	var best *stream
	var bestN int64
	n := len(p.slots)
	start := int(p.next.Add(1))
	for k := range n {
		s := p.slots[(start+k)%n].Load()
		if s == nil || s.draining.Load() {
			continue
		}
		if m := s.pending.Load(); best == nil || m < bestN {
			best, bestN = s, m
		}
	}
	return best
}

// pending reports the requests in flight on the pool's live streams.
func (p *pool) pending() int64 {
	var n int64
	for i := range p.slots {
		if s := p.slots[i].Load(); s != nil {
			n += s.pending.Load()
		}
	}
	return n
}

// live reports how many of the pool's streams are up and taking requests.
func (p *pool) live() int {
	n := 0
	for i := range p.slots {
		if s := p.slots[i].Load(); s != nil && !s.draining.Load() {
			n++
		}
	}
	return n
}

func (p *pool) dropReply(why string) {
	p.stats.dropped.Add(1)
	p.log.Debug("dropped processor answer", "why", why)
}
