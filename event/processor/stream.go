package processor

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// outQueueLen bounds the answers waiting for a stream's writer. A handler
// whose answer does not fit waits (holding its concurrency slot), which
// slows down the reading of new requests in turn.
const outQueueLen = 256

// stream is the state of one Process call.
//
// Its goroutines: the gRPC handler goroutine runs write; one goroutine runs
// receive, the only caller of Recv; every event runs in a goroutine of the
// stream's workers (run), or in receive itself when the Inliner says so.
// An answer is sent by the goroutine that has it when nothing is queued
// and no other Send is under way (see answer), else handed to write over
// out; Publish always hands its messages to write. Sends are serialised by
// sendMu, and none happens once write has returned.
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
	// made outside write, which ends the stream; sendDone is set once write
	// returned: no Send may follow.
	sendMu   sync.Mutex
	sendErr  error
	sendDone bool
	// queued counts what was handed to write and is not sent yet (in out,
	// or taken and waiting for sendMu): answer sends directly only when it
	// is zero, so nothing overtakes a message queued before it.
	queued atomic.Int64
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
	}
	return st
}

// serve runs the stream until it ends and returns its final status.
func (st *stream) serve() error {
	defer st.cancel() // cancels every handler still running
	st.srv.addStream(st)
	defer st.srv.removeStream(st)
	// The sink counts a stream as live once it has the header.
	if err := st.grpc.SendHeader(metadata.MD{}); err != nil {
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
		// While answers are waiting, send them without the full select
		// (its cost grows with its cases), but no more than maxBatch in a
		// row, so that the stream still ends in time under a steady flow.
		for range maxBatch {
			select {
			case resp := <-st.out:
				if err := st.send(resp); err != nil {
					return err
				}
				continue
			default:
			}
			break
		}
		select {
		case resp := <-st.out:
			if err := st.send(resp); err != nil {
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

// enqueue hands resp to write, waiting for room in out; it fails when ctx
// ends first.
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

// errStreamOver is answer's error once the stream's handler has returned.
var errStreamOver = errors.New("processor: stream is over")

// maxBatch bounds the answers write sends between two looks at the
// stream's other events.
const maxBatch = 32

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
		// Each request is received into a request of its own, which the
		// handler's context, the pending entry and the answer share.
		if err := st.grpc.RecvMsg(&r.msg); err != nil {
			return err
		}
		if r.msg.GetCancel() {
			st.cancelRequest(r.msg.GetId())
			continue // r is still free
		}
		started, err := st.dispatch(r, time.Now())
		if err != nil {
			return err
		}
		if started {
			r = nil
		}
	}
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

// dispatch starts the handler for the request received into r at now, or
// answers it at once when it cannot run, and reports whether it started
// it (else r may be reused). It blocks while MaxConcurrency handlers run.
// It returns an error only when the stream is over.
func (st *stream) dispatch(r *request, now time.Time) (bool, error) {
	req := &r.msg
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

	if st.srv.inliner != nil && inline(st.srv.inliner, ev) {
		st.run(r)
	} else {
		st.startWork(r)
	}
	return true, nil
}

// inline asks in whether to run the handler for ev inline; a panic means
// no (the handler then runs on a worker, where a panic is contained).
func inline(in Inliner, ev *eventv1.Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return in.Inline(ev)
}

// startWork runs r on an idle worker goroutine of the stream, or on a new
// one when none is idle. Workers stay until the stream's receiving ends
// (closeWork), so that handlers run on goroutines whose stacks have
// already grown (as internal/workpool does; a typed channel rather than a
// func per event saves an allocation).
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

// run handles r, hands the answer to the writer, then frees the request's
// slot.
func (st *stream) run(r *request) {
	resp := st.srv.handle(r)
	_ = st.answer(resp) // fails only when the stream is over: nobody to tell
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

// answer sends resp, or hands it to the writer; it fails when the stream
// is over.
//
// When nothing waits for the writer and no other goroutine is sending, it sends
// resp itself: a hand-off to the writer costs a goroutine wake-up per
// answer, which was a tenth of proc's CPU per event. Blocking in Send on
// the sink's flow control is then the same back-pressure on this stream as
// a full out. A failed Send ends the stream (write returns its error).
func (st *stream) answer(resp *eventv1.ProcessResponse) error {
	if st.queued.Load() == 0 && st.sendMu.TryLock() {
		if st.sendDone {
			st.sendMu.Unlock()
			return errStreamOver
		}
		err := st.grpc.Send(resp)
		if err != nil && st.sendErr == nil {
			st.sendErr = err
		}
		st.sendMu.Unlock()
		if err != nil {
			st.cancel()
		}
		return err
	}
	return st.enqueue(st.ctx, resp)
}
