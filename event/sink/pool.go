package sink

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// SinkIDHeader is the metadata key with which the sink identifies itself
// when it opens a Process stream, so a processor holding several streams
// from one sink publishes each event on only one of them.
const SinkIDHeader = "eventproc-sink-id"

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

}

func newPool(name, dialTarget string, stats *target, cfg *Config, sinkID string, onPublish func(*eventv1.Event), onChange func()) (*pool, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                cfg.Keepalive,
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
		target:    name,
		stats:     stats,
		cfg:       cfg,
		log:       cfg.Logger.With("target", name),
		sinkID:    sinkID,
		onPublish: onPublish,
		onChange:  onChange,
		conn:      conn,
		slots:     make([]atomic.Pointer[stream], cfg.StreamsPerTarget),
	}, nil
}

// run keeps every slot's stream open until ctx ends, then closes the
// connection.
func (p *pool) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range p.slots {
		wg.Go(func() { p.keepOpen(ctx, i) })
	}
	wg.Wait()
	p.conn.Close()
}

// keepOpen opens slot i's stream, serves it until it breaks, and opens it
// again, backing off exponentially (with jitter, capped at ReconnectMax)
// while attempts keep failing.
func (p *pool) keepOpen(ctx context.Context, i int) {
	client := eventv1.NewProcessorServiceClient(p.conn)
	md := metadata.Pairs(SinkIDHeader, p.sinkID)
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, md))
		opened := time.Now()
		err := p.serveOnce(sctx, client, i)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.stats.reconnect.Add(1)
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
func (p *pool) serveOnce(ctx context.Context, client eventv1.ProcessorServiceClient, i int) error {
	ps, err := client.Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	// The processor sends its headers when it accepts the stream; only then
	// is the stream live.
	if _, err := ps.Header(); err != nil {
		return err
	}
	s := newStream(p)
	p.slots[i].Store(s)
	p.onChange()
	p.log.Debug("processor stream up", "slot", i)
	err = s.serve(ctx, ps)
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
