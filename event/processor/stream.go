package processor

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// outQueueLen bounds the answers waiting for a stream's writer. A handler
// whose answer does not fit waits, holding its concurrency slot.
const outQueueLen = 256

// stream is the state of one Process call. The gRPC handler goroutine runs
// write; one goroutine runs receive, the only caller of Recv; each event
// runs on a worker (run), or in receive when the Inliner says so. An answer
// is sent by whoever has it when nothing is queued and no Send is under way
// (see answer), else handed to write over out, as Publish always does.
// Sends are serialised by sendMu, and none happens once write has returned.
type stream struct {
	srv    *Server
	grpc   grpc.BidiStreamingServer[eventv1.ProcessRequest, eventv1.ProcessResponse]
	ctx    context.Context // done when Process returns
	cancel context.CancelFunc
	sinkID string // value of SinkIDMetadataKey, "" when absent

	out      chan *eventv1.ProcessResponse
	finished chan struct{} // poked (non-blocking) whenever a handler is done
	// work hands requests to idle workers; see startWork.
	work chan *request

	mu      sync.Mutex
	pending map[uint64]*request // running handlers by request id

	// sendMu is held around every Send. sendErr is the error of a Send
	// outside write, which ends the stream; sendDone: write returned.
	sendMu   sync.Mutex
	sendErr  error
	sendDone bool
	// queued counts what was handed to write and is not sent yet: answer
	// sends directly only when it is zero, so nothing overtakes the queue.
	queued atomic.Int64

	// batchLimit, when not zero, is the largest message the sink reads,
	// batches included (from its request headers).
	batchLimit int
	// collected holds the requests receive ran inline while handling a
	// batch, and their answers, sent together (flushCollected).
	collected     []*request
	collectedResp []*eventv1.ProcessResponse
	collecting    bool
}

func newStream(s *Server, gs grpc.BidiStreamingServer[eventv1.ProcessRequest, eventv1.ProcessResponse]) *stream {
	ctx, cancel := context.WithCancel(gs.Context())
	st := &stream{
		srv:      s,
		grpc:     gs,
		ctx:      ctx,
		cancel:   cancel,
		out:      make(chan *eventv1.ProcessResponse, outQueueLen),
		finished: make(chan struct{}, 1),
		work:     make(chan *request),
		pending:  make(map[uint64]*request),
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(SinkIDMetadataKey); len(v) > 0 {
			st.sinkID = v[0]
		}
		st.batchLimit = protocol.BatchLimit(md)
	}
	return st
}

// serve runs the stream until it ends and returns its final status.
func (st *stream) serve() error {
	defer st.cancel() // cancels every handler still running
	st.srv.addStream(st)
	defer st.srv.removeStream(st)
	// The sink counts the stream live once it has the header.
	if err := st.grpc.SendHeader(metadata.Pairs(protocol.BatchHeader, strconv.Itoa(protocol.MaxRecvBytes))); err != nil {
		return err
	}
	st.srv.log.DebugContext(st.ctx, "processor: stream opened", "sink_id", st.sinkID)
	recvDone := make(chan error, 1)
	go func() { recvDone <- st.receive() }()
	err := st.write(recvDone)
	// gRPC forbids sending once the handler returned: wait for a Send
	// under way elsewhere, and allow no more.
	st.sendMu.Lock()
	st.sendDone = true
	st.sendMu.Unlock()
	st.srv.log.DebugContext(st.ctx, "processor: stream closed", "sink_id", st.sinkID, "err", err)
	return err
}

// write sends everything handed over on out until the stream ends.
func (st *stream) write(recvDone <-chan error) error {
	drainCh := st.srv.drainCh
	draining := false
	for {
		// Send waiting answers without the costlier full select, at most
		// MaxBatch in a row so the stream can still end under steady load.
		for range protocol.MaxBatch {
			select {
			case resp := <-st.out:
				if err := st.sendQueued(resp); err != nil {
					return err
				}
				continue
			default:
			}
			break
		}
		select {
		case resp := <-st.out:
			if err := st.sendQueued(resp); err != nil {
				return err
			}
		case err := <-recvDone:
			if errors.Is(err, io.EOF) {
				return nil // the sink closed its side; nobody waits for answers
			}
			return err
		case <-drainCh:
			drainCh, draining = nil, true
			if st.idle() {
				return st.flush()
			}
		case <-st.finished:
			if draining && st.idle() {
				return st.flush()
			}
		case <-st.srv.closing:
			return errShuttingDown.Err()
		case <-st.ctx.Done():
			st.sendMu.Lock()
			err := st.sendErr
			st.sendMu.Unlock()
			if err != nil {
				return err
			}
			return status.FromContextError(st.ctx.Err()).Err()
		}
	}
}

// send sends resp, taken from out, for write.
func (st *stream) send(resp *eventv1.ProcessResponse) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	defer st.queued.Add(-1)
	return st.grpc.Send(resp)
}

// sendQueued sends resp, taken from out, batched with what else waits there.
func (st *stream) sendQueued(resp *eventv1.ProcessResponse) error {
	if st.batchLimit == 0 || len(st.out) == 0 {
		return st.send(resp)
	}
	batch := []*eventv1.ProcessResponse{resp}
more:
	for len(batch) < protocol.MaxBatch {
		select {
		case resp := <-st.out:
			batch = append(batch, resp)
		default:
			break more
		}
	}
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	defer st.queued.Add(-int64(len(batch)))
	return st.sendBatch(batch)
}

// sendBatch sends answers in as few messages as the sink allows; sendMu held.
func (st *stream) sendBatch(answers []*eventv1.ProcessResponse) error {
	for len(answers) > 0 {
		n, size := 0, 0
		for n < len(answers) {
			entry := protocol.ProcessResponseBatch.EntrySize(answers[n].SizeVT())
			if n > 0 && size+entry > st.batchLimit {
				break
			}
			n, size = n+1, size+entry
		}
		msg := answers[0]
		if n > 1 {
			msg = &eventv1.ProcessResponse{Batch: answers[:n:n]}
		}
		if err := st.grpc.Send(msg); err != nil {
			return err
		}
		answers = answers[n:]
	}
	return nil
}

// enqueue hands resp to write, waiting for room in out until ctx ends.
func (st *stream) enqueue(ctx context.Context, resp *eventv1.ProcessResponse) error {
	st.queued.Add(1)
	select {
	case st.out <- resp: // room in the queue: the usual case
		return nil
	default:
	}
	select {
	case st.out <- resp:
		return nil
	case <-ctx.Done():
		st.queued.Add(-1)
		return ctx.Err()
	}
}

// answerBatch is answer for several answers, sent as batches (sendBatch).
func (st *stream) answerBatch(answers []*eventv1.ProcessResponse) error {
	if sent, err := st.sendDirect(func() error { return st.sendBatch(answers) }); sent {
		return err
	}
	for _, a := range answers {
		if err := st.enqueue(st.ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// sendDirect runs send when nothing waits for the writer and no other Send
// is under way, and reports whether it did. A failed Send ends the stream.
func (st *stream) sendDirect(send func() error) (bool, error) {
	if st.queued.Load() != 0 || !st.sendMu.TryLock() {
		return false, nil
	}
	if st.sendDone {
		st.sendMu.Unlock()
		return true, errStreamOver
	}
	err := send()
	if err != nil && st.sendErr == nil {
		st.sendErr = err
	}
	st.sendMu.Unlock()
	if err != nil {
		st.cancel()
	}
	return true, err
}

// errStreamOver is answer's error once the stream's handler has returned.
var errStreamOver = errors.New("processor: stream is over")

// idle reports whether no handler runs on the stream.
func (st *stream) idle() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.pending) == 0
}

// flush sends the answers already queued, when draining is over.
func (st *stream) flush() error {
	for {
		select {
		case resp := <-st.out:
			if err := st.send(resp); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// receive reads requests until the stream ends and returns Recv's error
// (io.EOF when the sink closed its side).
func (st *stream) receive() error {
	defer st.closeWork() // receive is the only caller of startWork
	var r *request
	for {
		if r == nil {
			r = new(request)
		}
		if err := st.grpc.RecvMsg(&r.msg); err != nil {
			return err
		}
		if batch := r.msg.GetBatch(); len(batch) > 0 {
			if err := st.receiveBatch(batch); err != nil {
				return err
			}
			if r.msg.GetId() == 0 {
				continue // only a batch, as it should be: r is still free
			}
		}
		if r.msg.GetCancel() {
			st.cancelRequest(r.msg.GetId())
			continue // r is still free
		}
		started, err := st.dispatch(r, &r.msg, time.Now())
		if err != nil {
			return err
		}
		if started {
			r = nil
		}
	}
}

// receiveBatch handles the requests of a ProcessRequest.batch; answers of
// handlers run inline go back together (flushCollected).
func (st *stream) receiveBatch(batch []*eventv1.ProcessRequest) error {
	now := time.Now()
	st.collecting = st.batchLimit > 0
	defer func() { st.collecting = false }()
	for _, req := range batch {
		if req.GetCancel() {
			st.cancelRequest(req.GetId())
			continue
		}
		if _, err := st.dispatch(new(request), req, now); err != nil {
			st.flushCollected()
			return err
		}
	}
	st.flushCollected()
	return nil
}

// flushCollected sends the answers collected from a batch, then lets their
// requests go: until then a draining writer waits for them.
func (st *stream) flushCollected() {
	switch len(st.collectedResp) {
	case 0:
		return
	case 1:
		_ = st.answer(st.collectedResp[0])
	default:
		_ = st.answerBatch(st.collectedResp)
		st.collectedResp = nil // the batch may still hold it
	}
	for i, r := range st.collected {
		st.finish(r)
		st.collected[i] = nil
	}
	st.collected = st.collected[:0]
	clear(st.collectedResp)
	st.collectedResp = st.collectedResp[:0]
}

// cancelRequest cancels the handler of request id, if it still runs.
func (st *stream) cancelRequest(id uint64) {
	st.mu.Lock()
	r := st.pending[id]
	st.mu.Unlock()
	if r != nil {
		r.end()
	}
}

// dispatch starts req's handler, with r as its state, or answers req at
// once; it reports whether r is taken (else r may be reused). It blocks
// while MaxConcurrency handlers run, and fails only when the stream is over.
func (st *stream) dispatch(r *request, req *eventv1.ProcessRequest, now time.Time) (bool, error) {
	id := req.GetId()
	if id == 0 {
		st.srv.log.WarnContext(st.ctx, "processor: dropped request with id 0", "sink_id", st.sinkID)
		return false, nil
	}
	ev := req.GetEvent()
	if ev == nil {
		return false, st.answer(errorResponse(id, status.New(codes.InvalidArgument, "processor: request has neither event nor cancel")))
	}
	var deadline time.Time
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return false, st.answer(errorResponse(id, status.Newf(codes.InvalidArgument, "processor: bad timeout: %v", err)))
		}
		deadline = now.Add(t.AsDuration())
		if !deadline.After(now) {
			return false, st.answer(errorResponse(id, status.New(codes.DeadlineExceeded, "processor: request expired before it was handled")))
		}
	}

	select {
	case st.srv.sem <- struct{}{}: // a free slot, without waiting: the usual case
	default:
		st.flushCollected() // they hold slots too
		select {
		case st.srv.sem <- struct{}{}:
		case <-st.srv.drainCh:
			return false, st.answer(errorResponse(id, errShuttingDown))
		case <-st.ctx.Done():
			return false, st.ctx.Err()
		}
		if !deadline.IsZero() && time.Until(deadline) <= 0 {
			<-st.srv.sem
			return false, st.answer(errorResponse(id, status.New(codes.DeadlineExceeded, "processor: request expired before it was handled")))
		}
	}

	r.id, r.ev, r.deadline = id, ev, deadline
	r.parent = withTraceContext(st.ctx, req.GetTraceContext())
	st.mu.Lock()
	if st.srv.draining.Load() { // checked under mu: see write's idle check
		st.mu.Unlock()
		<-st.srv.sem
		return false, st.answer(errorResponse(id, errShuttingDown))
	}
	if _, dup := st.pending[id]; dup {
		st.mu.Unlock()
		<-st.srv.sem
		st.srv.log.WarnContext(st.ctx, "processor: dropped request reusing a running id", "request_id", id, "sink_id", st.sinkID)
		return false, nil
	}
	st.pending[id] = r
	st.mu.Unlock()

	switch {
	case st.srv.inliner == nil || !inline(st.srv.inliner, ev):
		st.startWork(r)
	case st.collecting:
		st.collected = append(st.collected, r)
		st.collectedResp = append(st.collectedResp, st.srv.handle(r))
		if len(st.collected) == protocol.MaxBatch {
			st.flushCollected()
		}
	default:
		st.run(r)
	}
	return true, nil
}

// inline asks in whether to run ev's handler inline; a panic means no.
func inline(in Inliner, ev *eventv1.Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return in.Inline(ev)
}

// startWork runs r on an idle worker of the stream, or on a new one.
// Workers stay until closeWork, so handlers run on already grown stacks.
func (st *stream) startWork(r *request) {
	select {
	case st.work <- r:
	default:
		go st.worker(r)
	}
}

// worker runs r, then the requests handed to it until closeWork.
func (st *stream) worker(r *request) {
	for ok := true; ok; r, ok = <-st.work {
		st.run(r)
	}
}

// closeWork lets the workers exit once their current request is done.
func (st *stream) closeWork() { close(st.work) }

// run handles r, sends or hands over the answer, then frees r's slot.
func (st *stream) run(r *request) {
	resp := st.srv.handle(r)
	_ = st.answer(resp) // fails only when the stream is over: nobody to tell
	st.finish(r)
}

// finish lets r go once its answer was handed over: it no longer runs.
func (st *stream) finish(r *request) {
	st.mu.Lock()
	delete(st.pending, r.id)
	st.mu.Unlock()
	r.end()
	<-st.srv.sem
	// Only a draining writer waits for handlers to finish; draining is set
	// before drainCh is closed, and write checks idle after that, under
	// mu: a handler that sees draining unset here was already counted out.
	if st.srv.draining.Load() {
		select {
		case st.finished <- struct{}{}:
		default:
		}
	}
}

// answer sends resp itself when nothing waits for the writer and no Send
// is under way (docs/design.md, The processor SDK), else hands it to the
// writer. It fails when the stream is over; a failed Send ends the stream.
func (st *stream) answer(resp *eventv1.ProcessResponse) error {
	if sent, err := st.sendDirect(func() error { return st.grpc.Send(resp) }); sent {
		return err
	}
	return st.enqueue(st.ctx, resp)
}
