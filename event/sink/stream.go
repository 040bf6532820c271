package sink

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// Errors a stream gives a submission; streamError turns them into statuses.
var (
	// errNotSent: the stream ended before the request was written, so no
	// processor can have seen it and it is safe to try elsewhere.
	errNotSent = errors.New("stream closed before the request was sent")
	// errBusy: the stream has MaxPendingPerStream requests in flight.
	errBusy = errors.New("stream has too many pending requests")
)

// call is one attempt to have a processor answer a submission: its request
// on one stream. Whoever removes the call from the stream's pending map —
// the reader with the answer, a failing stream, or the submission giving
// up — hands the answer to the submission ([submission.complete]), once.
type call struct {
	sub *submission
	s   *stream // set by start
	req relayv1.ProcessRequest
	// timeout is req.Timeout's storage, saving an allocation per request.
	timeout durationpb.Duration
	sent    atomic.Bool // set by the writer just before it writes req
}

// result is a call's answer: the processor's, or an error.
type result struct {
	resp *relayv1.ProcessResponse
	err  error
}

// abandon ends c with err if it is still pending, telling the processor
// when the request was sent.
func (c *call) abandon(err error) {
	s, id := c.s, c.req.Id
	if !s.unregister(id) {
		return // answered meanwhile
	}
	if c.sent.Load() {
		s.cancel(id)
	}
	c.sub.complete(c, result{err: err})
}

// outgoing is what the writer goroutine sends: a request, or the
// cancellation of one (c == nil).
type outgoing struct {
	c        *call
	cancelID uint64
}

// processStream is the client side of ProcessorService.Process, sending
// and receiving envelopes.
type processStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// stream multiplexes requests over one open Process stream. A stream is
// used once: when the gRPC stream ends, every pending call is failed and the
// pool opens a new stream object.
//
// Exactly one goroutine writes to the gRPC stream (writeLoop) and one reads
// from it (readLoop). Callers register a call in the pending map, then hand
// it to the writer over sendq, which has room for every pending call.
type stream struct {
	p       *pool
	sendq   chan outgoing
	pending atomic.Int64 // mirrors len(calls), read without the lock to pick streams
	// draining is set when the processor said it is shutting down: the
	// stream takes no new requests, and ends when the processor closes it.
	draining atomic.Bool
	// abort ends the gRPC stream, giving the cause.
	abort context.CancelCauseFunc
	// batchLimit, when not zero, is the largest message the processor
	// reads: it reads batches, and the writer sends what waits together.
	batchLimit int

	mu     sync.Mutex
	calls  map[uint64]*call
	nextID uint64
	closed bool
}

func newStream(p *pool) *stream {
	return &stream{
		p:     p,
		sendq: make(chan outgoing, p.cfg.MaxPendingPerStream),
		calls: make(map[uint64]*call),
	}
}

// start registers c and queues it for the writer. On success the answer
// reaches c.sub.complete; on error (errNotSent, errBusy) c was never queued.
func (s *stream) start(c *call) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errNotSent
	}
	if len(s.calls) >= s.p.cfg.MaxPendingPerStream {
		s.mu.Unlock()
		return errBusy
	}
	s.nextID++
	id := s.nextID
	c.req.Id, c.s = id, s
	s.calls[id] = c
	s.pending.Store(int64(len(s.calls)))
	s.mu.Unlock()
	select {
	case s.sendq <- outgoing{c: c}:
		return nil
	default:
		// The queue also holds cancellations and abandoned calls, so it can
		// be full while the pending count is not; treat it as busy.
		if s.unregister(id) {
			return errBusy
		}
		return nil // whoever took the call answers it
	}
}

// unregister removes call id and reports whether it was still pending, in
// which case the caller owns its answer.
func (s *stream) unregister(id uint64) bool {
	return s.take(id) != nil
}

// take removes and returns call id, or nil when it is unknown or already
// answered.
func (s *stream) take(id uint64) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if c != nil {
		delete(s.calls, id)
		s.pending.Store(int64(len(s.calls)))
	}
	return c
}

// cancel tells the processor, best effort, that nobody waits for id any more.
func (s *stream) cancel(id uint64) {
	select {
	case s.sendq <- outgoing{cancelID: id}:
	default: // the queue is full; the processor's answer will be dropped
	}
}

// serve runs the writer and reader loops on ps until either fails or ctx
// ends. It always returns a non-nil error; the caller then calls fail.
func (s *stream) serve(ctx context.Context, ps processStream) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.writeLoop(gctx, ps) })
	g.Go(func() error { return s.readLoop(ps) })
	return g.Wait()
}

// writeLoop is the only goroutine that sends on the stream. When several
// requests wait and the processor reads batches, it sends them as one
// message (ProcessRequest.batch), as many as its limit allows.
func (s *stream) writeLoop(ctx context.Context, ps processStream) error {
	var batch relayv1.ProcessRequest
	var sent []*call // the calls in batch
	size := 0
	flush := func() error {
		if len(batch.Batch) == 0 {
			return nil
		}
		msg := &batch
		if len(batch.Batch) == 1 {
			msg = batch.Batch[0]
		}
		err := ps.SendMsg(msg) // encodes msg before it returns
		for _, c := range sent {
			if err == nil {
				err = s.cancelExpired(ps, c)
			}
		}
		clear(batch.Batch)
		clear(sent)
		batch.Batch, sent, size = batch.Batch[:0], sent[:0], 0
		return err
	}
	for {
		var o outgoing
		select {
		case <-ctx.Done():
			return ctx.Err()
		case o = <-s.sendq:
		}
		if s.batchLimit > 0 && len(s.sendq) == 0 {
			// Let the callers that are ready to run queue their requests
			// first, so that a burst leaves as one message rather than a
			// message each. With nothing else to run this returns at once.
			runtime.Gosched()
		}
		for n := 0; ; n++ {
			req, reqSize := s.prepare(o)
			if req != nil {
				entry := protocol.ProcessRequestBatch.EntrySize(reqSize)
				if len(batch.Batch) > 0 && (s.batchLimit == 0 || size+entry > s.batchLimit) {
					if err := flush(); err != nil {
						return err
					}
				}
				batch.Batch, size = append(batch.Batch, req), size+entry
				if o.c != nil {
					sent = append(sent, o.c)
				}
			}
			if n+1 >= protocol.MaxBatch || s.batchLimit == 0 {
				break
			}
			select {
			case o = <-s.sendq:
				continue
			default:
			}
			break
		}
		if err := flush(); err != nil {
			return err
		}
	}
}

// prepare returns the request to send for o and its encoded size, or nil
// when it is not to be sent: a call nobody waits for, or one over the size
// limit, which it answers.
func (s *stream) prepare(o outgoing) (*relayv1.ProcessRequest, int) {
	c := o.c
	if c == nil {
		req := &relayv1.ProcessRequest{Id: o.cancelID, Cancel: true}
		return req, req.SizeVT()
	}
	if c.sub.expired() {
		return nil, 0 // never send work nobody waits for
	}
	d := time.Until(c.sub.deadline)
	c.timeout.Seconds, c.timeout.Nanos = int64(d/time.Second), int32(d%time.Second)
	c.req.Timeout = &c.timeout
	n := c.req.SizeVT()
	if n > s.p.cfg.MaxMessageBytes {
		if s.unregister(c.req.Id) {
			c.sub.complete(c, result{err: status.Errorf(codes.ResourceExhausted,
				"event is %d bytes encoded, over the %d-byte limit for processors", n, s.p.cfg.MaxMessageBytes)})
		}
		return nil, 0
	}
	c.sent.Store(true)
	return &c.req, n
}

// cancelExpired cancels c's request, just sent, when its caller gave up
// meanwhile and may have missed that it was sent (a second cancel for the
// same id is harmless).
func (s *stream) cancelExpired(ps processStream, c *call) error {
	if !c.sub.expired() {
		return nil
	}
	return ps.SendMsg(&relayv1.ProcessRequest{Id: c.req.Id, Cancel: true})
}

// readLoop is the only goroutine that receives from the stream.
func (s *stream) readLoop(ps processStream) error {
	for {
		// A message of its own each time: its entries go to the callers.
		m := new(relayv1.ProcessResponse)
		if err := ps.RecvMsg(m); err != nil {
			return err
		}
		s.deliverAll(m)
	}
}

// deliverAll delivers the entries of m's batch, then m itself unless it is
// only a batch.
func (s *stream) deliverAll(m *relayv1.ProcessResponse) {
	for _, e := range m.Batch {
		s.deliverAll(e)
	}
	if len(m.Batch) == 0 || m.Id != 0 || m.Result != nil {
		s.deliver(m)
	}
}

// deliver hands a processor's answer to its call, or a published event to
// the subscribers.
func (s *stream) deliver(m *relayv1.ProcessResponse) {
	if m.Id == 0 {
		if ev := m.GetPublish(); ev != nil {
			s.p.onPublish(ev)
		} else {
			s.p.dropReply("answer without a request id")
		}
		return
	}
	if protocol.IsDraining(m.GetError()) && !s.draining.Swap(true) {
		s.p.log.Info("processor is draining; no new requests on this stream")
	}
	c := s.take(m.Id)
	if c == nil {
		s.p.dropReply("answer for an unknown or expired request id")
		return
	}
	c.sub.complete(c, result{resp: m})
}

// fail closes the stream to new calls and fails every pending one: calls not
// yet written get errNotSent (safe to retry elsewhere), the others
// UNAVAILABLE.
func (s *stream) fail(cause error) {
	s.mu.Lock()
	s.closed = true
	calls := s.calls
	s.calls = nil
	s.pending.Store(0)
	s.mu.Unlock()
	st := status.Newf(codes.Unavailable, "processor stream to %s broke: %v", s.p.target, cause).Err()
	for _, c := range calls {
		if c.sent.Load() {
			c.sub.complete(c, result{err: st})
		} else {
			c.sub.complete(c, result{err: errNotSent})
		}
	}
}
