package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// subscribersPerConn is how many Subscribe streams share one client
// connection in the fan-out scenario.
const subscribersPerConn = 128

// fanoutResult is the pub/sub fan-out measured with one subscriber count.
type fanoutResult struct {
	subscribers int
	senders     int
	load        loadResult // the Send calls that drive publishing
	delivered   int64      // events received by all subscribers in the window
	missed      int64      // events the sink reported dropped (SubscribeResponse.missed)
	// After the senders stopped, the deliveries caught up in drain; by
	// then subscribers had received drained of the sent × subscribers
	// events published from the start of the window on (1 when none was
	// lost; events published during warm-up but delivered in the window
	// can push it slightly above 1).
	drain       time.Duration
	drained     float64
	subErrors   int64 // subscriptions that ended with an error
	firstSubErr error
	// sinkCPU is the sink's CPU time per delivered event; peakRSS its peak
	// resident set.
	sinkCPU time.Duration
	peakRSS int64
	err     error
}

// deliveryRate returns events delivered per second across all subscribers.
func (r fanoutResult) deliveryRate() float64 {
	if r.load.elapsed <= 0 {
		return 0
	}
	return float64(r.delivered) / r.load.elapsed.Seconds()
}

// fanout measures events per second delivered to subs gRPC subscribers
// while senders workers send events through the sink's unary path to a
// processor that publishes a copy of every event it receives.
func (e *env) fanout(ctx context.Context, subs, senders int, warmup, d time.Duration) fanoutResult {
	r := fanoutResult{subscribers: subs, senders: senders}
	s, err := e.startSink("--publish")
	if err != nil {
		r.err = err
		return r
	}
	defer s.stop()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var delivered, missed, ready, subErrors atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, so every subscriber has stopped
	defer cancel()
	var client eventv1.SinkServiceClient
	for i := range subs {
		if i%subscribersPerConn == 0 {
			conn, err := dialGRPC(s.grpcAddr)
			if err != nil {
				r.err = err
				return r
			}
			conns = append(conns, conn)
			client = eventv1.NewSinkServiceClient(conn)
		}
		stream, err := client.Subscribe(sctx, &eventv1.SubscribeRequest{Types: []eventv1.Type{eventv1.Type_TYPE_HELLO}})
		if err != nil {
			r.err = fmt.Errorf("subscriber %d: %w", i, err)
			return r
		}
		wg.Go(func() {
			first := true
			for {
				resp, err := stream.Recv()
				if err != nil {
					if sctx.Err() == nil {
						subErrors.Add(1)
						errOnce.Do(func() { firstErr = err })
					}
					return
				}
				if first {
					first = false
					ready.Add(1)
				}
				delivered.Add(1)
				if m := resp.GetMissed(); m > 0 {
					missed.Add(int64(m))
				}
			}
		})
	}

	// Subscribe has no acknowledgement: send events until every
	// subscriber has received one, so all are registered before warm-up.
	sendConn, err := dialGRPC(s.grpcAddr)
	if err != nil {
		r.err = err
		return r
	}
	conns = append(conns, sendConn)
	sender := eventv1.NewSinkServiceClient(sendConn)
	deadline := time.Now().Add(startTimeout)
	for ready.Load() < int64(subs) {
		if time.Now().After(deadline) {
			r.err = fmt.Errorf("only %d of %d subscribers received an event within %v", ready.Load(), subs, startTimeout)
			return r
		}
		if err := unaryCaller(sender)(ctx); err != nil {
			r.err = fmt.Errorf("sending while subscribing: %w", err)
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}

	var st0, st1 procStat
	var d0, d1, m0, m1, s0 int64
	var sent atomic.Int64
	var sampleErr error
	r.load = runLoad(ctx, loadPlan{
		workers: senders, warmup: warmup, measure: d,
		atStart: func() {
			st0, sampleErr = s.server.sample()
			d0, m0, s0 = delivered.Load(), missed.Load(), sent.Load()
		},
		atEnd: func() {
			var err error
			st1, err = s.server.sample()
			sampleErr = errors.Join(sampleErr, err)
			d1, m1 = delivered.Load(), missed.Load()
		},
	}, func(int) caller {
		call := unaryCaller(sender)
		return func(ctx context.Context) error {
			err := call(ctx)
			if err == nil {
				sent.Add(1)
			}
			return err
		}
	})
	r.drain = waitDrained(ctx, &delivered, d0+(sent.Load()-s0)*int64(subs))
	if want := (sent.Load() - s0) * int64(subs); want > 0 {
		r.drained = float64(delivered.Load()-d0) / float64(want)
	}
	if err := s.died(); err != nil {
		r.err = err
		return r
	}
	if sampleErr != nil {
		r.err = fmt.Errorf("sampling /proc: %w", sampleErr)
		return r
	}
	r.delivered, r.missed = d1-d0, m1-m0
	r.subErrors, r.firstSubErr = subErrors.Load(), firstErr
	if r.delivered > 0 {
		r.sinkCPU = (st1.cpu - st0.cpu) / time.Duration(r.delivered)
	}
	r.peakRSS = st1.peakRSS
	return r
}

// drainTimeout bounds the wait for subscribers to catch up after load.
const drainTimeout = 15 * time.Second

// waitDrained waits until delivered reaches want, or stops growing for two
// seconds, or drainTimeout passes, and returns how long it waited.
func waitDrained(ctx context.Context, delivered *atomic.Int64, want int64) time.Duration {
	start := time.Now()
	last, lastChange := delivered.Load(), start
	for delivered.Load() < want && time.Since(start) < drainTimeout && ctx.Err() == nil {
		sleepCtx(ctx, 50*time.Millisecond)
		if n := delivered.Load(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > 2*time.Second {
			break
		}
	}
	return time.Since(start)
}

// connsResult is the sink's memory with many concurrent HTTP clients.
type connsResult struct {
	conns int
	load  loadResult
	// The sink's peak resident set, its resident set right after the load,
	// after a few idle seconds with the connections still open, and a few
	// seconds after the clients closed them.
	peakRSS, rssAfter, rssIdle, rssClosed int64
	err                                   error
}

// idleWait is how long the sink idles before its resident set is sampled
// after load.
const idleWait = 3 * time.Second

// manyConns runs conns closed-loop keep-alive HTTP clients against the
// sink's REST path for d and samples its memory.
func (e *env) manyConns(ctx context.Context, conns int, warmup, d time.Duration) connsResult {
	r := connsResult{conns: conns}
	s, err := e.startSink()
	if err != nil {
		r.err = err
		return r
	}
	defer s.stop()
	client := newHTTPClient(conns)
	defer client.CloseIdleConnections()
	url := "http://" + s.httpAddr + "/v1/events"
	r.load = runLoad(ctx, loadPlan{workers: conns, warmup: warmup, measure: d},
		func(int) caller { return restCaller(client, url) })
	if err := s.died(); err != nil {
		r.err = err
		return r
	}
	st, err := s.server.sample()
	if err != nil {
		r.err = err
		return r
	}
	r.rssAfter = st.rss
	sleepCtx(ctx, idleWait)
	if st, err = s.server.sample(); err != nil {
		r.err = err
		return r
	}
	r.rssIdle = st.rss
	client.CloseIdleConnections()
	sleepCtx(ctx, idleWait)
	if st, err = s.server.sample(); err != nil {
		r.err = err
		return r
	}
	r.rssClosed, r.peakRSS = st.rss, st.peakRSS
	return r
}
