//go:build unix

package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fault is something wrong with a Stream that belongs to no one request:
// an answer nobody waits for, or the stream breaking.
type fault struct {
	at   time.Time
	what string
}

// streamLoadResult is what the Stream load saw.
type streamLoadResult struct {
	records []record
	faults  []fault
}

// streamLoad keeps closed-loop load on the sink's SinkService.Stream: a few
// client streams, each shared by several workers. A worker sends one event
// with an id of its own and a timeout (the deadline), waits for the
// StreamResponse carrying that id, and sends the next. One goroutine per
// stream receives and hands each answer to the worker waiting for its id;
// an answer for an id nobody waits for (unknown, answered already, or past
// the client-side timeout) is a fault, and so is the stream ending before
// the test closes it: the load never reopens a stream.
type streamLoad struct {
	addr          string // the sink's gRPC address
	timeout       *durationpb.Duration
	clientTimeout time.Duration
	runID         string
}

func newStreamLoad(grpcAddr string, deadline, clientTimeout time.Duration, runID string) *streamLoad {
	return &streamLoad{addr: grpcAddr, timeout: durationpb.New(deadline), clientTimeout: clientTimeout, runID: runID}
}

// run opens streams streams and runs workers workers over them (round
// robin) until stop is closed or ctx ends; then it closes the streams, waits
// for the sink to end them, and returns every request's record, ordered by
// start time, and the faults.
func (g *streamLoad) run(ctx context.Context, streams, workers int, stop <-chan struct{}) streamLoadResult {
	var res streamLoadResult
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		res.faults = append(res.faults, fault{time.Now(), fmt.Sprintf("connecting to %s: %v", g.addr, err)})
		return res
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := eventv1.NewSinkServiceClient(conn)

	css := make([]*clientStream, streams)
	var wg sync.WaitGroup
	for i := range css {
		// Every second stream batches both ways.
		batched := i%2 == 1
		sctx := ctx
		if batched {
			sctx = metadata.AppendToOutgoingContext(ctx, "eventproc-batch", "4194304")
		}
		ss, err := client.Stream(sctx)
		if err != nil {
			res.faults = append(res.faults, fault{time.Now(), fmt.Sprintf("stream %d: opening: %v", i+1, err)})
			continue
		}
		cs := &clientStream{g: g, n: i + 1, ss: ss, waiting: make(map[string]chan<- answer), received: make(chan struct{})}
		if batched {
			cs.sendq = make(chan queued, workers)
			cs.senderDone = make(chan struct{})
			go cs.sendBatches()
		}
		css[i] = cs
		go cs.receive()
		var workersWG sync.WaitGroup
		for w := i; w < workers; w += streams {
			workersWG.Go(func() { cs.work(w, stop) })
		}
		wg.Go(func() {
			workersWG.Wait()
			cs.close()
		})
	}
	wg.Wait()
	cancel() // ends a stream the sink did not end (a fault already)
	for _, cs := range css {
		if cs == nil {
			continue
		}
		<-cs.received
		for _, rs := range cs.perWorker {
			res.records = append(res.records, rs...)
		}
		res.faults = append(res.faults, cs.faults...)
	}
	slices.SortFunc(res.records, func(a, b record) int { return a.start.Compare(b.start) })
	slices.SortFunc(res.faults, func(a, b fault) int { return a.at.Compare(b.at) })
	return res
}

// clientStream is one SinkService.Stream and the workers sharing it.
type clientStream struct {
	g        *streamLoad
	n        int // 1-based
	ss       eventv1.SinkService_StreamClient
	sendMu   sync.Mutex    // grpc-go allows one sender at a time
	received chan struct{} // closed when receive has returned
	// sendq, on a stream that batches, holds the workers' requests for
	// sendBatches, which closes senderDone when sendq is closed and drained.
	sendq      chan queued
	senderDone chan struct{}

	mu        sync.Mutex
	waiting   map[string]chan<- answer // by event id: the worker waiting for its answer
	closing   bool                     // the test closed the stream: it may end now
	broken    error                    // why the stream ended, once it has
	perWorker map[int][]record
	faults    []fault
}

// queued is a request for sendBatches, and where it reports the outcome of
// sending it.
type queued struct {
	req  *eventv1.StreamRequest
	sent chan<- error
}

// sendBatches sends the requests that wait together in sendq as one
// StreamRequest.batch, as a high-rate client would.
func (cs *clientStream) sendBatches() {
	defer close(cs.senderDone)
	var batch []queued
	for q := range cs.sendq {
		batch = append(batch[:0], q)
	more:
		for len(batch) < 64 {
			select {
			case q, ok := <-cs.sendq:
				if !ok {
					break more
				}
				batch = append(batch, q)
			default:
				break more
			}
		}
		msg := new(eventv1.StreamRequest)
		for _, q := range batch {
			msg.Batch = append(msg.Batch, q.req)
		}
		cs.sendMu.Lock()
		err := cs.ss.Send(msg)
		cs.sendMu.Unlock()
		for _, q := range batch {
			q.sent <- err
		}
	}
}

// sendOne sends req, in a batch with others on a stream that batches.
func (cs *clientStream) sendOne(req *eventv1.StreamRequest) error {
	if cs.sendq == nil {
		cs.sendMu.Lock()
		defer cs.sendMu.Unlock()
		return cs.ss.Send(req)
	}
	sent := make(chan error, 1)
	cs.sendq <- queued{req, sent}
	return <-sent
}

// answer is a StreamResponse and when it arrived, or the stream's error.
type answer struct {
	resp *eventv1.StreamResponse
	at   time.Time
	err  error
}

func (cs *clientStream) faultf(at time.Time, format string, args ...any) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.faults = append(cs.faults, fault{at, fmt.Sprintf("stream %d: ", cs.n) + fmt.Sprintf(format, args...)})
}

// work is one closed-loop worker: it sends until stop is closed or the
// stream has ended.
func (cs *clientStream) work(worker int, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		r, ok := cs.send(worker, seq)
		if !ok {
			return
		}
		cs.mu.Lock()
		if cs.perWorker == nil {
			cs.perWorker = make(map[int][]record)
		}
		cs.perWorker[worker] = append(cs.perWorker[worker], r)
		cs.mu.Unlock()
	}
}

// send sends one event and waits for its answer. It returns false, and no
// record, when the stream had already ended.
func (cs *clientStream) send(worker, seq int) (record, bool) {
	g := cs.g
	r := record{via: viaStream, stream: cs.n, worker: worker, payload: fmt.Sprintf("%s-s%dw%02d-%07d", g.runID, cs.n, worker, seq)}
	r.id = "chaos-" + r.payload
	req := &eventv1.StreamRequest{
		Event:   &eventv1.Event{Id: r.id, Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue(r.payload)},
		Timeout: g.timeout,
	}
	ch := make(chan answer, 1)
	cs.mu.Lock()
	if cs.broken != nil {
		cs.mu.Unlock()
		return r, false
	}
	cs.waiting[r.id] = ch
	cs.mu.Unlock()

	r.start = time.Now()
	err := cs.sendOne(req)
	if err != nil && !errors.Is(err, io.EOF) {
		// io.EOF: the stream ended; receive reports why, and answers us.
		cs.forget(r.id)
		r.end = time.Now()
		r.err = fmt.Sprintf("sending on stream %d: %v", cs.n, err)
		return r, true
	}
	timer := time.NewTimer(g.clientTimeout)
	defer timer.Stop()
	var a answer
	select {
	case a = <-ch:
	case <-timer.C:
		if cs.forget(r.id) {
			r.end = time.Now()
			r.err = fmt.Sprintf("no answer on stream %d within %s", cs.n, g.clientTimeout)
			return r, true
		}
		a = <-ch // receive took it just now
	}
	r.end = a.at
	if a.err != nil {
		r.err = fmt.Sprintf("stream %d ended before the answer: %v", cs.n, a.err)
		return r, true
	}
	if id := a.resp.GetId(); id != r.id { // receive matched it by id: cannot happen
		r.err = fmt.Sprintf("handed the answer for id %q", id)
		return r, true
	}
	switch res := a.resp.GetResult().(type) {
	case *eventv1.StreamResponse_Error:
		code := codes.Code(res.Error.GetCode())
		r.status = runtime.HTTPStatusFromCode(code)
		r.body = fmt.Sprintf("(%s) %s", code, res.Error.GetMessage())
	case *eventv1.StreamResponse_Response:
		switch o := res.Response.GetOutcome(); o {
		case eventv1.Outcome_OUTCOME_REPLIED:
			r.status = http.StatusOK
		case eventv1.Outcome_OUTCOME_CONSUMED:
			r.status = http.StatusNoContent
		case eventv1.Outcome_OUTCOME_ACCEPTED:
			r.status = http.StatusAccepted
		default:
			r.err = fmt.Sprintf("answer with outcome %v", o)
			return r, true
		}
		ev := res.Response.GetEvent()
		if r.status != http.StatusOK || ev == nil {
			r.body = snippet([]byte(res.Response.String()))
			if r.status == http.StatusOK {
				r.status = http.StatusInternalServerError // a reply without its event: counted as other
			}
			return r, true
		}
		r.replyID = ev.GetId()
		r.processedBy = ev.GetMetadata()["processed_by"]
		if s, ok := ev.GetPayload().GetKind().(*structpb.Value_StringValue); ok {
			r.echoed = s.StringValue
		} else {
			r.echoed = "(not a string) " + snippet([]byte(ev.GetPayload().String()))
		}
	default:
		r.err = "answer with neither a response nor an error"
	}
	return r, true
}

// forget stops waiting for id and reports whether it was still waited for
// (false: receive has taken it and is handing its answer over).
func (cs *clientStream) forget(id string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.waiting[id]
	delete(cs.waiting, id)
	return ok
}

// receive is the only goroutine that receives on the stream: it hands each
// answer to the worker waiting for its id until the stream ends.
func (cs *clientStream) receive() {
	defer close(cs.received)
	for {
		msg, err := cs.ss.Recv()
		now := time.Now()
		if err != nil {
			cs.end(err, now)
			return
		}
		answers := []*eventv1.StreamResponse{msg}
		if len(msg.Batch) > 0 {
			if cs.sendq == nil {
				cs.faultf(now, "a batch of %d answers on a stream that did not ask for batches", len(msg.Batch))
			}
			answers = msg.Batch
		}
		for _, resp := range answers {
			cs.mu.Lock()
			ch, ok := cs.waiting[resp.GetId()]
			delete(cs.waiting, resp.GetId())
			cs.mu.Unlock()
			if !ok {
				cs.faultf(now, "answer for event id %q, which is not in flight (unknown, answered already, or past the %s client-side timeout): %s",
					resp.GetId(), cs.g.clientTimeout, snippet([]byte(resp.String())))
				continue
			}
			ch <- answer{resp: resp, at: now}
		}
	}
}

// end records how the stream ended and fails the workers still waiting.
func (cs *clientStream) end(err error, at time.Time) {
	cs.mu.Lock()
	closing := cs.closing
	cs.broken = err
	waiting := cs.waiting
	cs.waiting = make(map[string]chan<- answer)
	cs.mu.Unlock()
	switch {
	case closing && errors.Is(err, io.EOF):
		// The sink ended it as it should once we closed our side.
	case closing:
		cs.faultf(at, "ended with %v after the test closed it, want OK", err)
	case errors.Is(err, io.EOF):
		cs.faultf(at, "the sink ended the stream (OK) while events were being sent (%d in flight)", len(waiting))
	default:
		cs.faultf(at, "broke with %v (status %s) while events were being sent (%d in flight)", err, status.Code(err), len(waiting))
	}
	for _, ch := range waiting {
		ch <- answer{at: at, err: err}
	}
}

// close closes the client side of the stream once its workers are done, and
// waits, up to the client-side timeout, for the sink to end the stream.
func (cs *clientStream) close() {
	if cs.sendq != nil {
		close(cs.sendq)
		<-cs.senderDone
	}
	cs.mu.Lock()
	cs.closing = true
	cs.mu.Unlock()
	cs.sendMu.Lock()
	err := cs.ss.CloseSend()
	cs.sendMu.Unlock()
	if err != nil {
		cs.faultf(time.Now(), "CloseSend: %v", err)
	}
	timer := time.NewTimer(cs.g.clientTimeout)
	defer timer.Stop()
	select {
	case <-cs.received:
	case <-timer.C:
		cs.faultf(time.Now(), "the sink did not end the stream within %s of CloseSend", cs.g.clientTimeout)
		// run then cancels the stream's context, which ends Recv.
	}
}
