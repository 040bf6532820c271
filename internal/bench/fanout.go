package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
//
// The events of the window are those whose Send succeeded while the window
// was open (load.n of them, give or take a call completing within
// nanoseconds of an edge). Each event the senders send is numbered, so
// deliveries are counted per event: deliveries of events sent before the
// window, or sent after it, or whose Send failed, count for nothing, and
// neither does an event's place in the window (it may be published, and
// delivered, before its Send returns).
type fanoutResult struct {
	subscribers int
	senders     int
	load        loadResult // the Send calls that drive publishing
	// delivered counts deliveries of the window's events received before
	// the window closed (its share of load.n × subscribers is below 1
	// only when subscribers lag); missed the events the sink reported
	// dropped (the sum of SubscribeResponse.missed) from the opening of
	// the window until the drain ended.
	delivered int64
	missed    int64
	// After the senders stopped, one more event was published; drain is
	// how long until every subscriber had received it, and so had
	// received, or been told it missed, every event of the window. By
	// then subscribers had received drained of the window's events ×
	// subscribers: 1 unless some were missed.
	drain       time.Duration
	drained     float64
	subErrors   int64 // subscriptions that ended with an error
	firstSubErr error
	// sinkCPU is the sink's CPU time per event delivered in the window
	// (any event); peakRSS its peak resident set.
	sinkCPU time.Duration
	peakRSS int64
	err     error
}

// deliveryRate returns deliveries per second of the window's events
// received within the window, across all subscribers. While subscribers
// lag it is below the sink's delivery rate by the lag.
func (r fanoutResult) deliveryRate() float64 {
	if r.load.elapsed <= 0 {
		return 0
	}
	return float64(r.delivered) / r.load.elapsed.Seconds()
}

// Metadata keys of the events the fan-out scenario sends: eventNumberKey
// numbers the senders' events from 1; endKey marks the event published
// after them.
const (
	eventNumberKey = "bench-event"
	endKey         = "bench-end"
)

// The window of the fan-out scenario: it opens just before runLoad's
// measured window and closes just after.
const (
	windowBefore int32 = iota
	windowOpen
	windowClosed
)

// eventCount is what the fan-out scenario records of one event the
// senders sent.
type eventCount struct {
	inWindow atomic.Bool  // its Send succeeded while the window was open
	early    atomic.Int32 // deliveries before the window closed
	all      atomic.Int32 // deliveries
}

// eventChunk is how many eventCounts eventLog allocates at a time.
const eventChunk = 1 << 14

// eventLog holds an eventCount for each event number, growing as needed.
type eventLog struct {
	mu     sync.Mutex // serialises growth
	chunks atomic.Pointer[[]*[eventChunk]eventCount]
}

// at returns the count of event n ≥ 1, allocating it if need be.
func (l *eventLog) at(n int64) *eventCount {
	i, j := int((n-1)/eventChunk), int((n-1)%eventChunk)
	if cs := l.chunks.Load(); cs != nil && i < len(*cs) {
		return &(*cs)[i][j]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var cs []*[eventChunk]eventCount
	if p := l.chunks.Load(); p != nil {
		cs = *p
	}
	for len(cs) <= i {
		cs = append(cs[:len(cs):len(cs)], new([eventChunk]eventCount))
	}
	l.chunks.Store(&cs)
	return &cs[i][j]
}

// sums returns, over events 1 to n whose Send succeeded in the window, how
// many there are and their deliveries before the window closed and in all.
func (l *eventLog) sums(n int64) (events, early, all int64) {
	for k := int64(1); k <= n; k++ {
		if c := l.at(k); c.inWindow.Load() {
			events++
			early += int64(c.early.Load())
			all += int64(c.all.Load())
		}
	}
	return events, early, all
}

// fanout measures events per second delivered to subs gRPC subscribers
// while senders workers send events through the sink's unary path to a
// processor that publishes a copy of every event it receives.
//
// It also checks the sink's promise that a subscriber loses no event
// without being told: all events are of one type, so between two events a
// subscriber receives, the gap in sequence numbers must be what missed
// says. A run where it is not fails.
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
	var (
		events                   eventLog
		window                   atomic.Int32
		missed, ready, subErrors atomic.Int64
		deliveries               atomic.Int64 // all events received, for the sink's CPU per delivery
		ended                    atomic.Int64 // subscribers that received the end event
		badGaps, unreported      atomic.Int64 // responses whose missed disagrees with the gap, and by how much
		firstErr                 error
		errOnce                  sync.Once
		wg                       sync.WaitGroup
	)
	defer wg.Wait() // after cancel, so every subscriber has stopped
	defer cancel()
	var client eventv1.SinkServiceClient
	for i := range subs {
		if i%subscribersPerConn == 0 {
			conn, err := dialGRPC(s)
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
			var prev uint64 // sequence number of the previous event
			for {
				resp, err := stream.Recv()
				if err != nil {
					if sctx.Err() == nil {
						subErrors.Add(1)
						errOnce.Do(func() { firstErr = err })
					}
					return
				}
				seq, m := resp.GetSequence(), resp.GetMissed()
				if prev == 0 {
					ready.Add(1)
				} else if seq <= prev || seq-prev-1 != m {
					badGaps.Add(1)
					unreported.Add(int64(seq) - int64(prev) - 1 - int64(m))
				}
				prev = seq
				deliveries.Add(1)
				missed.Add(int64(m))
				md := resp.GetEvent().GetMetadata()
				if n, err := strconv.ParseInt(md[eventNumberKey], 10, 64); err == nil && n > 0 {
					c := events.at(n)
					if window.Load() != windowClosed {
						c.early.Add(1)
					}
					c.all.Add(1)
				}
				if md[endKey] != "" {
					ended.Add(1)
				}
			}
		})
	}

	// Subscribe has no acknowledgement: send events until every
	// subscriber has received one, so all are registered before warm-up.
	sendConn, err := dialGRPC(s)
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
	var d0, d1, m0 int64
	var sampleErr error
	var lastEvent atomic.Int64 // number of the last event sent
	r.load = runLoad(ctx, loadPlan{
		workers: senders, warmup: warmup, measure: d,
		atStart: func() {
			st0, sampleErr = s.server.sample()
			d0, m0 = deliveries.Load(), missed.Load()
			window.Store(windowOpen)
		},
		atEnd: func() {
			window.Store(windowClosed)
			d1 = deliveries.Load()
			var err error
			st1, err = s.server.sample()
			sampleErr = errors.Join(sampleErr, err)
		},
	}, func(int) caller {
		return func(ctx context.Context) error {
			n := lastEvent.Add(1)
			c := events.at(n)
			ev := helloEvent()
			ev.Metadata = map[string]string{eventNumberKey: strconv.FormatInt(n, 10)}
			resp, err := sender.Send(ctx, &eventv1.SendRequest{Event: ev})
			if err == nil && resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
				err = fmt.Errorf("outcome %v, want OUTCOME_REPLIED", resp.GetOutcome())
			}
			if err == nil {
				err = checkEcho(resp.GetEvent())
			}
			if err == nil && window.Load() == windowOpen {
				c.inWindow.Store(true)
			}
			return err
		}
	})

	// Every Send has returned, so every event of the window was published
	// (proc publishes before it answers). Publish one more: a subscriber
	// that has it has received, or been told it missed, all before it; and
	// being the newest, it is not dropped from a full buffer.
	end := helloEvent()
	end.Metadata = map[string]string{endKey: "1"}
	if _, err := sender.Send(ctx, &eventv1.SendRequest{Event: end}); err != nil {
		r.err = fmt.Errorf("sending the end event: %w", err)
		return r
	}
	r.drain = waitEnded(ctx, func() bool { return ended.Load()+subErrors.Load() >= int64(subs) })
	if got := ended.Load() + subErrors.Load(); got < int64(subs) {
		r.err = fmt.Errorf("only %d of %d subscribers received the event published after the load within %v", got, subs, drainTimeout)
		return r
	}
	n, early, all := events.sums(lastEvent.Load())
	if want := n * int64(subs); want > 0 {
		r.drained = float64(all) / float64(want)
	}
	if err := s.died(); err != nil {
		r.err = err
		return r
	}
	if sampleErr != nil {
		r.err = fmt.Errorf("sampling /proc: %w", sampleErr)
		return r
	}
	if b := badGaps.Load(); b > 0 {
		r.err = fmt.Errorf("%d responses had a missed count other than the gap in sequence numbers before them: "+
			"%d events lost without being reported as missed", b, unreported.Load())
		return r
	}
	r.delivered, r.missed = early, missed.Load()-m0
	r.subErrors, r.firstSubErr = subErrors.Load(), firstErr
	if n := d1 - d0; n > 0 {
		r.sinkCPU = (st1.cpu - st0.cpu) / time.Duration(n)
	}
	r.peakRSS = st1.peakRSS
	return r
}

// drainTimeout bounds the wait for subscribers to catch up after load.
const drainTimeout = 15 * time.Second

// waitEnded waits until done reports true or drainTimeout passes, and
// returns how long it waited.
func waitEnded(ctx context.Context, done func() bool) time.Duration {
	start := time.Now()
	for !done() && time.Since(start) < drainTimeout && ctx.Err() == nil {
		sleepCtx(ctx, 10*time.Millisecond)
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
	client := newHTTPClient(conns, nil)
	defer client.CloseIdleConnections()
	url := "http://" + s.httpAddr + "/v1/events"
	r.load = runLoad(ctx, loadPlan{workers: conns, warmup: warmup, measure: d},
		func(int) caller { return restCaller(client, url, "") })
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
