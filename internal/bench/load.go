package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The load client is closed-loop: each of C workers sends a request, waits
// for its answer, checks it, and sends the next. Every latency of the
// measured window is kept, so percentiles are exact. A request counts as a
// success only when its answer is the echo of what was sent.

// payload is what every request carries and every answer must echo.
const payload = "hello"

// restBody is the REST request body.
var restBody = []byte(`{"type":"TYPE_HELLO","payload":"hello"}`)

// helloEvent returns the event every gRPC request carries.
func helloEvent() *eventv1.Event {
	return &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue(payload)}
}

// caller performs one request and checks its answer. Each worker has a
// caller of its own, so a caller may keep state between calls.
type caller func(ctx context.Context) error

// loadResult is what one closed-loop run measured in its window.
type loadResult struct {
	n        int           // successful requests
	errors   int           // failed requests
	firstErr error         // an example failure
	elapsed  time.Duration // length of the measured window
	lat      []time.Duration
}

// rate returns successful requests per second.
func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// percentile returns the q-quantile (0 < q ≤ 1) of the latencies, by
// nearest rank.
func (r loadResult) percentile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.999999) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// loadPlan says how long to load and what to do at the edges of the
// measured window.
type loadPlan struct {
	workers int
	warmup  time.Duration
	measure time.Duration
	// atStart and atEnd run just before the window opens and just after it
	// closes (to sample the servers); either may be nil.
	atStart, atEnd func()
}

// Phases of a run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runLoad runs plan.workers workers, each calling its own caller from
// newCaller in a loop, for the warm-up and then the measured window, and
// returns what the window measured.
func runLoad(ctx context.Context, plan loadPlan, newCaller func(worker int) caller) loadResult {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var phase atomic.Int32
	type workerResult struct {
		lat      []time.Duration
		errors   int
		firstErr error
	}
	results := make([]workerResult, plan.workers)
	var wg sync.WaitGroup
	for w := range plan.workers {
		call := newCaller(w)
		wg.Go(func() {
			res := &results[w]
			res.lat = make([]time.Duration, 0, 4096)
			for phase.Load() != phaseStop && ctx.Err() == nil {
				start := time.Now()
				err := call(ctx)
				d := time.Since(start)
				if phase.Load() != phaseMeasure {
					if err != nil {
						sleepCtx(ctx, 10*time.Millisecond) // do not spin on a broken server
					}
					continue
				}
				if err != nil {
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
					sleepCtx(ctx, 10*time.Millisecond)
					continue
				}
				res.lat = append(res.lat, d)
			}
		})
	}
	sleepCtx(ctx, plan.warmup)
	if plan.atStart != nil {
		plan.atStart()
	}
	phase.Store(phaseMeasure)
	start := time.Now()
	sleepCtx(ctx, plan.measure)
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	if plan.atEnd != nil {
		plan.atEnd()
	}
	// Calls in flight finish normally; a hung one is cut off after a while.
	stop := time.AfterFunc(15*time.Second, cancel)
	wg.Wait()
	stop.Stop()

	var r loadResult
	r.elapsed = elapsed
	total := 0
	for _, w := range results {
		total += len(w.lat)
	}
	r.lat = make([]time.Duration, 0, total)
	for _, w := range results {
		r.lat = append(r.lat, w.lat...)
		r.errors += w.errors
		if r.firstErr == nil {
			r.firstErr = w.firstErr
		}
	}
	slices.Sort(r.lat)
	r.n = len(r.lat)
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// newHTTPClient returns a client keeping up to conns keep-alive
// connections to one host, without proxies or compression, over TLS
// (HTTP/1.1, as without TLS) when tlsConfig is set.
func newHTTPClient(conns int, tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     tlsConfig,
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0, // no limit
			MaxIdleConnsPerHost: conns + 16,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// postHello posts the hello event to url, with token as a bearer token
// unless empty, and returns the answer's status and body.
func postHello(ctx context.Context, client *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(restBody))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, body, nil
}

// restCaller posts the hello event to url and checks for a 200 whose body
// is an event echoing the payload.
func restCaller(client *http.Client, url, token string) caller {
	return func(ctx context.Context) error {
		code, body, err := postHello(ctx, client, url, token)
		switch {
		case err != nil:
			return err
		case code != http.StatusOK:
			return fmt.Errorf("HTTP %d: %.200s", code, body)
		}
		var ev eventv1.Event
		if err := protojson.Unmarshal(body, &ev); err != nil {
			return fmt.Errorf("answer is not an event: %v: %.200s", err, body)
		}
		return checkEcho(&ev)
	}
}

// restStoredCaller posts the hello event to a durable route at url and
// checks for a 202 whose body says where it was stored.
func restStoredCaller(client *http.Client, url string) caller {
	return func(ctx context.Context) error {
		code, body, err := postHello(ctx, client, url, "")
		switch {
		case err != nil:
			return err
		case code != http.StatusAccepted:
			return fmt.Errorf("HTTP %d: %.200s, want 202", code, body)
		case !bytes.Contains(body, []byte(`"sequence"`)):
			return fmt.Errorf("202 without a sequence: %.200s", body)
		}
		return nil
	}
}

// checkEcho checks that ev echoes the payload sent.
func checkEcho(ev *eventv1.Event) error {
	if got := ev.GetPayload().GetStringValue(); got != payload {
		return fmt.Errorf("answer payload %q, want %q", got, payload)
	}
	return nil
}

// dialGRPC returns a client connection to s's gRPC API with default
// settings, over TLS with s's token when s has them.
func dialGRPC(s *servers) (*grpc.ClientConn, error) {
	if s.tls == nil {
		return grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	return grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(s.tls)),
		grpc.WithPerRPCCredentials(bearer(s.token)))
}

// clientCaller sends the hello event with the Go client and checks the
// reply.
func clientCaller(c *client.Client) caller {
	ev := helloEvent()
	return func(ctx context.Context) error {
		resp, err := c.Send(ctx, ev)
		if err != nil {
			return err
		}
		if resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
			return fmt.Errorf("outcome %v, want OUTCOME_REPLIED", resp.GetOutcome())
		}
		return checkEcho(resp.GetEvent())
	}
}

// unaryCaller calls SinkService.Send with the hello event and checks the
// reply.
func unaryCaller(client eventv1.SinkServiceClient) caller {
	req := &eventv1.SendRequest{Event: helloEvent()}
	return func(ctx context.Context) error {
		resp, err := client.Send(ctx, req)
		if err != nil {
			return err
		}
		if resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
			return fmt.Errorf("outcome %v, want OUTCOME_REPLIED", resp.GetOutcome())
		}
		return checkEcho(resp.GetEvent())
	}
}

// streamMux multiplexes concurrent callers over one bidirectional stream:
// callers register in a pending map under a fresh id and hand the id to
// the one writer goroutine; the one reader goroutine hands each answer to
// the caller registered under its id.
type streamMux struct {
	sendq  chan *muxCall
	nextID atomic.Uint64
	done   chan struct{} // closed when the stream has failed
	err    error         // why, set before done is closed

	mu      sync.Mutex
	pending map[uint64]*muxCall
}

// muxCall is one worker's request slot, reused for each of its calls.
type muxCall struct {
	id     uint64
	answer chan error // capacity 1
}

// muxStream is the stream as the mux uses it: send writes the request with
// id; recv returns the id of the next answer and the call's outcome
// (callErr), or err when the stream itself failed.
type muxStream struct {
	send func(id uint64) error
	recv func() (id uint64, callErr, err error)
}

// newStreamMux starts the writer and reader goroutines on s. They stop when
// the stream fails or ctx ends.
func newStreamMux(ctx context.Context, s muxStream, queue int) *streamMux {
	m := &streamMux{
		sendq:   make(chan *muxCall, queue),
		done:    make(chan struct{}),
		pending: make(map[uint64]*muxCall),
	}
	var once sync.Once
	fail := func(err error) {
		once.Do(func() {
			m.err = err
			close(m.done)
			m.mu.Lock()
			calls := m.pending
			m.pending = nil
			m.mu.Unlock()
			for _, c := range calls {
				c.answer <- err
			}
		})
	}
	go func() { // writer
		for {
			select {
			case c := <-m.sendq:
				if err := s.send(c.id); err != nil {
					fail(fmt.Errorf("stream send: %w", err))
					return
				}
			case <-m.done:
				return
			case <-ctx.Done():
				fail(ctx.Err())
				return
			}
		}
	}()
	go func() { // reader
		for {
			id, callErr, err := s.recv()
			if err != nil {
				fail(fmt.Errorf("stream recv: %w", err))
				return
			}
			m.mu.Lock()
			c := m.pending[id]
			delete(m.pending, id)
			m.mu.Unlock()
			if c == nil {
				fail(fmt.Errorf("answer for unknown id %d", id))
				return
			}
			c.answer <- callErr
		}
	}()
	return m
}

// caller returns a caller for one worker.
func (m *streamMux) caller() caller {
	c := &muxCall{answer: make(chan error, 1)}
	return func(ctx context.Context) error {
		c.id = m.nextID.Add(1)
		m.mu.Lock()
		if m.pending == nil {
			m.mu.Unlock()
			return m.err
		}
		m.pending[c.id] = c
		m.mu.Unlock()
		select {
		case m.sendq <- c:
		case <-m.done:
			return <-c.answer
		}
		select {
		case err := <-c.answer:
			return err
		case <-ctx.Done():
			// The stream is shut down with ctx; its failure answers c.
			return <-c.answer
		}
	}
}

// refStreamMux opens ProcessorService.Process on conn for the stream
// reference and multiplexes callers over it.
func refStreamMux(ctx context.Context, conn *grpc.ClientConn, queue int) (*streamMux, error) {
	ps, err := eventv1.NewProcessorServiceClient(conn).Process(ctx)
	if err != nil {
		return nil, err
	}
	req := &eventv1.ProcessRequest{Event: helloEvent()} // only the writer touches it
	return newStreamMux(ctx, muxStream{
		send: func(id uint64) error {
			req.Id = id
			return ps.Send(req)
		},
		recv: func() (uint64, error, error) {
			resp, err := ps.Recv()
			if err != nil {
				return 0, nil, err
			}
			return resp.GetId(), checkEcho(resp.GetReply()), nil
		},
	}, queue), nil
}

// sinkStreamMux opens SinkService.Stream on conn and multiplexes callers
// over it, correlating answers by event id.
func sinkStreamMux(ctx context.Context, conn *grpc.ClientConn, queue int) (*streamMux, error) {
	return sinkStreamMuxWant(ctx, conn, queue, eventv1.Outcome_OUTCOME_REPLIED)
}

// sinkStreamMuxWant is sinkStreamMux expecting the outcome want: a reply
// echoing the payload, or OUTCOME_STORED with a stream sequence.
func sinkStreamMuxWant(ctx context.Context, conn *grpc.ClientConn, queue int, want eventv1.Outcome) (*streamMux, error) {
	ss, err := eventv1.NewSinkServiceClient(conn).Stream(ctx)
	if err != nil {
		return nil, err
	}
	// Only the writer touches these.
	ev := helloEvent()
	req := &eventv1.StreamRequest{Event: ev}
	var idBuf []byte
	s := muxStream{
		send: func(id uint64) error {
			idBuf = strconv.AppendUint(idBuf[:0], id, 10)
			ev.Id = string(idBuf)
			return ss.Send(req)
		},
		recv: func() (uint64, error, error) {
			resp, err := ss.Recv()
			if err != nil {
				return 0, nil, err
			}
			id, perr := strconv.ParseUint(resp.GetId(), 10, 64)
			if perr != nil {
				return 0, nil, fmt.Errorf("answer with id %q, not one of ours", resp.GetId())
			}
			switch r := resp.GetResult().(type) {
			case *eventv1.StreamResponse_Error:
				return id, status.FromProto(r.Error).Err(), nil
			case *eventv1.StreamResponse_Response:
				if o := r.Response.GetOutcome(); o != want {
					return id, fmt.Errorf("outcome %v, want %v", o, want), nil
				}
				if want == eventv1.Outcome_OUTCOME_STORED {
					if r.Response.GetSequence() == 0 {
						return id, errors.New("stored without a sequence"), nil
					}
					return id, nil, nil
				}
				return id, checkEcho(r.Response.GetEvent()), nil
			default:
				return id, errors.New("answer without a result"), nil
			}
		},
	}
	return newStreamMux(ctx, s, queue), nil
}
