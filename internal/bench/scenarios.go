package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// startTimeout bounds how long a server may take to start and get ready.
const startTimeout = 20 * time.Second

// env is what every scenario needs: the built binaries and where to log.
type env struct {
	bins *binaries
	log  io.Writer
	// The secure scenarios' files, made once.
	secureOnce sync.Once
	secure     *secureFiles
	secureErr  error
}

// servers are the processes one measurement started.
type servers struct {
	// server is the process whose cost is measured: a reference server,
	// or the sink.
	server *child
	// proc is the echo processor behind the sink; nil for references.
	// procAddr is its address, procArgs its arguments but --addr.
	proc     *child
	procAddr string
	procArgs []string
	// procAway is set while the processor is stopped on purpose.
	procAway bool
	// Addresses of the server's APIs ("" when it has no such API).
	httpAddr, grpcAddr string
	// tls, when set, is how clients reach the server over TLS, and token
	// the JWT they authenticate with.
	tls   *tls.Config
	token string
}

// stop stops the server first, then the processor.
func (s *servers) stop() {
	s.server.stop()
	s.proc.stop()
}

// died reports a process that exited while it should have been serving.
func (s *servers) died() error {
	for _, c := range []*child{s.server, s.proc} {
		if c != nil && !c.alive() && (c != s.proc || !s.procAway) {
			return fmt.Errorf("%s exited during the run (%v); its output:\n%s", c.name, c.err, c.out.tail())
		}
	}
	return nil
}

// startRef starts the reference server of subcommand cmd.
func (e *env) startRef(cmd string) (*servers, error) {
	c, got, err := startChild(cmd, e.bins.bench, []string{cmd, "--addr", "127.0.0.1:0"},
		[]*regexp.Regexp{listeningRE}, startTimeout)
	if err != nil {
		return nil, err
	}
	s := &servers{server: c}
	if cmd == cmdHTTPEcho {
		s.httpAddr = got[0]
	} else {
		s.grpcAddr = got[0]
	}
	return s, nil
}

// startSink starts an echo processor (with procArgs) and the sink routing
// TYPE_HELLO to it, and waits until the sink reports ready.
func (e *env) startSink(procArgs ...string) (*servers, error) {
	return e.startSinkWith(nil, procArgs...)
}

// startDurableSink is startSink with TYPE_HELLO's route durable and its
// embedded store in a fresh directory, as a single sink runs by default
// (no NATS port: the benchmark counts deliveries from /metrics).
func (e *env) startDurableSink() (*servers, error) {
	dir, err := os.MkdirTemp(e.bins.dir, "data")
	if err != nil {
		return nil, err
	}
	// Room for a burst line's window of events (the store's cap is 1 GiB).
	return e.startSinkWith([]string{"--durable", "hello", "--data-dir", dir, "--durable-max-bytes", "900MiB"})
}

// startSinkWith is startSink with extra sink arguments.
func (e *env) startSinkWith(sinkArgs []string, procArgs ...string) (*servers, error) {
	args := append([]string{"--addr", "127.0.0.1:0", "--shutdown-grace", "1s"}, procArgs...)
	p, got, err := startChild("proc", e.bins.proc, args, []*regexp.Regexp{listeningRE}, startTimeout)
	if err != nil {
		return nil, err
	}
	procAddr := got[0]
	want := []*regexp.Regexp{sinkHTTPRE, sinkGRPCRE}
	sk, got, err := startChild("eventproc", e.bins.eventproc, append([]string{
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--route", "hello=" + procAddr, "--shutdown-grace", "1s",
	}, sinkArgs...), want, startTimeout)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &servers{server: sk, proc: p, procAddr: procAddr, procArgs: procArgs, httpAddr: got[0], grpcAddr: got[1]}
	if err := waitReady(s, startTimeout); err != nil {
		s.stop()
		return nil, fmt.Errorf("eventproc: %w; its output:\n%s", err, sk.out.tail())
	}
	return s, nil
}

// waitReady polls the sink's /readyz until it answers 200.
func waitReady(s *servers, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: s.tls}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v: %v", timeout, last)
}

// scenario is one way of sending the hello event and getting it back.
type scenario struct {
	name  string
	about string
	// ref names the reference scenario a sink scenario is compared with;
	// empty for references.
	ref string
	// Targets for a sink scenario relative to its reference: least
	// throughput ratio, and greatest p99 ratio (0: none).
	minThroughput, maxP99 float64
	// noTargets marks a sink scenario shown next to its reference for
	// comparison only, with the reason: the targets are not for it
	// (stream-batch-sink batches, which the ping-pong reference does not).
	noTargets string
	// noCPUTarget exempts a sink scenario from the sink CPU target (the
	// secure ones pay for TLS, the durable ones for the embedded store).
	noCPUTarget bool
	// durable marks a durable intake line: answers are 202 / OUTCOME_STORED,
	// and the events delivered to the processor during the window are
	// counted too. minDelivery is the target of their rate relative to
	// the reference's throughput.
	durable     bool
	minDelivery float64
	// burst marks a durable line measured in two steps, as an outage of
	// the processor plays out: intake alone, the processor stopped for the
	// window (events are stored, none delivered), then delivery alone, the
	// processor started again and the stored events drained. Without it
	// both run together, sharing the machine (steady state).
	burst bool
	start func(e *env) (*servers, error)
	// client connects to s and returns a caller factory for c workers and
	// a function that releases the connections.
	client func(ctx context.Context, s *servers, c int) (func(int) caller, func(), error)
}

// request-response scenarios, references first. Pairs run back to back at
// each concurrency, so that a sink path and its reference see the same
// machine state.
func scenarios() []scenario {
	return []scenario{
		{
			name: "http-echo", about: "net/http server, protojson decode + encode (REST reference)",
			start:  func(e *env) (*servers, error) { return e.startRef(cmdHTTPEcho) },
			client: restClient,
		},
		{
			name: "rest-sink", about: "POST /v1/events → sink → echo processor",
			ref: "http-echo", minThroughput: 0.6, maxP99: 1.5,
			start:  func(e *env) (*servers, error) { return e.startSink() },
			client: restClient,
		},
		{
			name: "grpc-echo", about: "unary gRPC echo, SinkService.Send (gRPC reference)",
			start:  func(e *env) (*servers, error) { return e.startRef(cmdGRPCEcho) },
			client: unaryClient,
		},
		{
			name: "grpc-sink", about: "unary SinkService.Send → sink → echo processor",
			ref: "grpc-echo", minThroughput: 0.6, maxP99: 1.5,
			start:  func(e *env) (*servers, error) { return e.startSink() },
			client: unaryClient,
		},
		{
			name: "stream-echo", about: "ping-pong over one bidi stream, id-correlated (stream reference)",
			start: func(e *env) (*servers, error) { return e.startRef(cmdStreamEcho) },
			client: func(ctx context.Context, s *servers, c int) (func(int) caller, func(), error) {
				return streamClient(ctx, s, c, refStreamMux)
			},
		},
		{
			name: "stream-sink", about: "one SinkService.Stream → sink → echo processor",
			ref: "stream-echo", minThroughput: 0.45,
			start: func(e *env) (*servers, error) { return e.startSink() },
			client: func(ctx context.Context, s *servers, c int) (func(int) caller, func(), error) {
				return streamClient(ctx, s, c, sinkStreamMux)
			},
		},
		{
			name: "stream-batch-sink", about: "event/client: one SinkService.Stream, batches both ways → sink → echo processor",
			ref: "stream-echo", noTargets: "batches",
			start:  func(e *env) (*servers, error) { return e.startSink() },
			client: goClient,
		},
		{
			name: "rest-durable", about: "POST /v1/events → durable route: stored (embedded JetStream), answered 202, the processor away; then the stored events delivered to it",
			ref: "rest-sink", minThroughput: 0.8, minDelivery: 0.5, noCPUTarget: true, durable: true, burst: true,
			start:  func(e *env) (*servers, error) { return e.startDurableSink() },
			client: restDurableClient,
		},
		{
			name: "stream-durable", about: "one SinkService.Stream → durable route: stored, answered OUTCOME_STORED, the processor away; then the stored events delivered to it",
			ref: "stream-sink", minThroughput: 0.8, minDelivery: 0.5, noCPUTarget: true, durable: true, burst: true,
			start:  func(e *env) (*servers, error) { return e.startDurableSink() },
			client: streamDurableClient,
		},
		{
			name: "rest-durable-steady", about: "as rest-durable, the processor up: intake and delivery together on the same cores",
			ref: "rest-sink", noCPUTarget: true, durable: true, noTargets: "steady state: delivery = intake, both share the machine",
			start:  func(e *env) (*servers, error) { return e.startDurableSink() },
			client: restDurableClient,
		},
		{
			name: "stream-durable-steady", about: "as stream-durable, the processor up: intake and delivery together on the same cores",
			ref: "stream-sink", noCPUTarget: true, durable: true, noTargets: "steady state: delivery = intake, both share the machine",
			start:  func(e *env) (*servers, error) { return e.startDurableSink() },
			client: streamDurableClient,
		},
		{
			name: "rest-sink-secure", about: "as rest-sink, over TLS (HTTP/1.1) with a JWT per request, and mutual TLS from the sink to the processor",
			ref: "rest-sink", noTargets: "compared with plain REST",
			start:  func(e *env) (*servers, error) { return e.startSecureSink() },
			client: restClient,
		},
		{
			name: "stream-sink-secure", about: "as stream-sink, over TLS with a JWT (verified once per stream), and mutual TLS from the sink to the processor",
			ref: "stream-sink", minThroughput: 0.8, noCPUTarget: true,
			start: func(e *env) (*servers, error) { return e.startSecureSink() },
			client: func(ctx context.Context, s *servers, c int) (func(int) caller, func(), error) {
				return streamClient(ctx, s, c, sinkStreamMux)
			},
		},
	}
}

// restDurableClient posts hello events to a durable route: a request
// counts when answered 202 with a sequence.
func restDurableClient(_ context.Context, s *servers, c int) (func(int) caller, func(), error) {
	client := newHTTPClient(c, s.tls)
	url := s.url("/v1/events")
	return func(int) caller { return restStoredCaller(client, url) }, client.CloseIdleConnections, nil
}

// streamDurableClient sends hello events to a durable route over one
// Stream: an event counts when answered OUTCOME_STORED with a sequence.
func streamDurableClient(ctx context.Context, s *servers, c int) (func(int) caller, func(), error) {
	return streamClient(ctx, s, c, func(ctx context.Context, conn *grpc.ClientConn, queue int) (*streamMux, error) {
		return sinkStreamMuxWant(ctx, conn, queue, eventv1.Outcome_OUTCOME_STORED)
	})
}

// url is the address of path on the server's HTTP API.
func (s *servers) url(path string) string {
	if s.tls != nil {
		return "https://" + s.httpAddr + path
	}
	return "http://" + s.httpAddr + path
}

// goClient sends with the Go client package, as an application would.
func goClient(_ context.Context, s *servers, _ int) (func(int) caller, func(), error) {
	conn, err := dialGRPC(s)
	if err != nil {
		return nil, nil, err
	}
	c := client.New(conn, client.Options{})
	return func(int) caller { return clientCaller(c) }, func() { c.Close(); conn.Close() }, nil
}

func restClient(_ context.Context, s *servers, c int) (func(int) caller, func(), error) {
	client := newHTTPClient(c, s.tls)
	url := s.url("/v1/events")
	return func(int) caller { return restCaller(client, url, s.token) }, client.CloseIdleConnections, nil
}

func unaryClient(_ context.Context, s *servers, _ int) (func(int) caller, func(), error) {
	conn, err := dialGRPC(s)
	if err != nil {
		return nil, nil, err
	}
	client := eventv1.NewSinkServiceClient(conn)
	return func(int) caller { return unaryCaller(client) }, func() { conn.Close() }, nil
}

func streamClient(ctx context.Context, s *servers, c int,
	open func(context.Context, *grpc.ClientConn, int) (*streamMux, error)) (func(int) caller, func(), error) {
	conn, err := dialGRPC(s)
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	m, err := open(sctx, conn, c)
	if err != nil {
		cancel()
		conn.Close()
		return nil, nil, err
	}
	return func(int) caller { return m.caller() }, func() { cancel(); conn.Close() }, nil
}

// measurement is the outcome of one scenario at one concurrency.
type measurement struct {
	scenario *scenario
	workers  int
	round    int // 1 for the first measurement of this scenario at this concurrency
	load     loadResult
	// CPU time per successful request of the measured server and of the
	// processor (zero without one), over the measured window.
	serverCPU, procCPU time.Duration
	// The measured server's peak resident set (since it started) and its
	// resident set right after the window.
	peakRSS, rss int64
	// otherLoad is the CPU used by processes other than the benchmark's
	// own during the window, in cores: noise from the rest of the machine.
	otherLoad float64
	// For a durable line: events delivered to the processor (and acked)
	// during the window, and events stored and not yet delivered at its
	// end.
	delivered, backlog uint64
	// For a burst line: the events stored while the processor was away,
	// delivered once it was back, in drain.
	drain time.Duration
	err   error // the run could not be done at all
}

// deliveryRate is a durable line's events delivered per second: in the
// window, or for a burst line while it drained.
func (m measurement) deliveryRate() float64 {
	d := m.load.elapsed
	if m.scenario.burst {
		d = m.drain
	}
	if d <= 0 {
		return 0
	}
	return float64(m.delivered) / d.Seconds()
}

// maxDrain bounds how long a burst line waits for its stored events to be
// delivered.
const maxDrain = 5 * time.Minute

// drain starts s's processor again and waits until the sink delivered
// every event it stored, returning how many it delivered and how long
// that took.
func (e *env) drain(ctx context.Context, s *servers, store *storeWatch) (uint64, time.Duration, error) {
	before, err := store.sample()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	p, _, err := startChild("proc", e.bins.proc, append([]string{"--addr", s.procAddr}, s.procArgs...),
		[]*regexp.Regexp{listeningRE}, startTimeout)
	if err != nil {
		return 0, 0, fmt.Errorf("starting the processor again: %w", err)
	}
	s.proc, s.procAway = p, false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := store.sample()
		if err != nil {
			return 0, 0, err
		}
		if st.delivered >= before.stored {
			return st.delivered - before.delivered, time.Since(start), nil
		}
		if time.Since(start) > maxDrain {
			return 0, 0, fmt.Errorf("%d of %d stored events delivered after %v", st.delivered, before.stored, maxDrain)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// measure starts sc's servers fresh, loads them with workers workers and
// samples them around the measured window.
func (e *env) measure(ctx context.Context, sc *scenario, workers int, warmup, d time.Duration) measurement {
	m := measurement{scenario: sc, workers: workers}
	s, err := sc.start(e)
	if err != nil {
		m.err = err
		return m
	}
	defer s.stop()
	newCaller, release, err := sc.client(ctx, s, workers)
	if err != nil {
		m.err = err
		return m
	}
	var store *storeWatch
	if sc.durable {
		store = watchStore(s.url(""))
	}
	if sc.burst {
		s.proc.stop() // away for the window: events are stored, not delivered
		s.procAway = true
	}
	var srv0, srv1, proc0, proc1, self0, self1 procStat
	var st0, st1 storeState
	var busy0, busy1 time.Duration
	var sampleErr error
	sample := func(srv, proc, self *procStat, st *storeState, busy *time.Duration) {
		var err1, err2, err3, err4, err5 error
		*srv, err1 = s.server.sample()
		if s.proc != nil && !sc.burst {
			*proc, err2 = s.proc.sample()
		}
		*self, err3 = sampleProc(os.Getpid())
		*busy, err4 = machineBusy()
		if store != nil {
			*st, err5 = store.sample()
		}
		sampleErr = errors.Join(sampleErr, err1, err2, err3, err4, err5)
	}
	m.load = runLoad(ctx, loadPlan{
		workers: workers, warmup: warmup, measure: d,
		atStart: func() { sample(&srv0, &proc0, &self0, &st0, &busy0) },
		atEnd:   func() { sample(&srv1, &proc1, &self1, &st1, &busy1) },
	}, newCaller)
	release()
	m.delivered, m.backlog = st1.delivered-st0.delivered, st1.waiting()
	if sc.burst && sampleErr == nil && s.died() == nil {
		// Deliveries during the window are none; what counts is the drain
		// of everything stored, from the warm-up on.
		m.delivered, m.drain, err = e.drain(ctx, s, store)
		if err != nil {
			m.err = fmt.Errorf("draining the stored events: %w", err)
			return m
		}
		m.backlog = 0
	}
	if err := s.died(); err != nil {
		m.err = err
		return m
	}
	if sampleErr != nil {
		m.err = fmt.Errorf("sampling: %w", sampleErr)
		return m
	}
	if n := m.load.n; n > 0 {
		m.serverCPU = (srv1.cpu - srv0.cpu) / time.Duration(n)
		if s.proc != nil {
			m.procCPU = (proc1.cpu - proc0.cpu) / time.Duration(n)
		}
	}
	m.peakRSS, m.rss = srv1.peakRSS, srv1.rss
	ours := (srv1.cpu - srv0.cpu) + (proc1.cpu - proc0.cpu) + (self1.cpu - self0.cpu)
	m.otherLoad = max(0, (busy1-busy0-ours).Seconds()/m.load.elapsed.Seconds())
	return m
}
