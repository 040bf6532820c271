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
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Errors a stream gives a caller; dispatch turns them into statuses.
var (
	// errNotSent: the stream ended before the request was written, so no
	// processor can have seen it and it is safe to try elsewhere.
	errNotSent = errors.New("stream closed before the request was sent")
	// errBusy: the stream has MaxPendingPerStream requests in flight.
	errBusy = errors.New("stream has too many pending requests")
)

// call is one request waiting for its answer on a stream. A synchronous
// caller ([stream.do]) waits on done; an asynchronous one ([stream.start])
// gets onDone called, by whoever removes the call from the stream: the
// reader with the answer, the deadline timer, a failing stream, or the
// caller giving up.
type call struct {
	ctx      context.Context
	deadline time.Time // when the caller stops waiting
	req      *eventv1.ProcessRequest
	sent     atomic.Bool // set by the writer just before it writes req
	done     chan result // synchronous: capacity 1, so the owner of the answer never blocks
	onDone   completer   // asynchronous
	// timer fires at the deadline of an asynchronous call; register sets
	// it under the stream's lock, so whoever takes the call sees it.
	timer *time.Timer
	// s is the stream the call is registered on.
	s *stream
	// timeout is req.Timeout's storage, saving an allocation per request.
	timeout durationpb.Duration
	// maxSize, when not zero, bounds req's encoded size once the writer
	// has set its id and timeout; the writer measures req only when
	// maxSize could be over the limit.
	maxSize int
}

// requestOverhead bounds what the writer adds to a request: the id
// (tag and a 64-bit varint) and the timeout (tag, length, and two tagged
// varints of up to 10 bytes each).
const requestOverhead = 11 + 2 + 2*11

// finish delivers the call's answer. Only the goroutine that removed the
// call from its stream may call it, once.
func (c *call) finish(r result) {
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.onDone != nil {
		c.onDone.complete(c, r)
		return
	}
	c.done <- r
}

// completer receives the answers of asynchronous calls.
type completer interface {
	complete(c *call, r result)
}

// result is a call's answer: the processor's frame, or an error.
type result struct {
	f   frame
	err error
}

// outgoing is what the writer goroutine sends: a request, or the
// cancellation of one (c == nil).
type outgoing struct {
	c        *call
	cancelID uint64
}

// processStream is the client side of ProcessorService.Process as the
// multiplexer needs it; the generated client stream implements it.
type processStream interface {
	Send(*eventv1.ProcessRequest) error
	// SendMsg sends an encodedRequest.
	SendMsg(m any) error
	// RecvMsg reads the next answer into a *frame (see relayCodec).
	RecvMsg(m any) error
}

// stream multiplexes requests over one open Process stream. A stream is
// used once: when the gRPC stream ends, every pending call is failed and the
// pool opens a new stream object.
type stream struct {
	p       *pool
	sendq   chan outgoing
	pending atomic.Int64 // mirrors len(calls), read without the lock to pick streams
	// draining is set when the processor said it is shutting down: the
	// stream takes no new requests, and ends when the processor closes it.
	draining atomic.Bool
	// abort ends the gRPC stream, giving the cause.
	abort context.CancelCauseFunc
	// batchLimit, when not zero, is the largest batch the processor reads
	// (it reads batches): the writer then sends what waits in sendq
	// together (see writeBatch).
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

// do sends req and waits for its answer, ctx, or the deadline. ctx enforces
// the deadline itself unless timer is true, in which case do starts a
// timer. It returns errNotSent when the stream ended before req was
// written, errBusy when the stream is full, a context error when ctx ended
// or the deadline passed first.
func (s *stream) do(ctx context.Context, deadline time.Time, timer bool, req *eventv1.ProcessRequest) (result, error) {
	c := &call{ctx: ctx, deadline: deadline, req: req, done: make(chan result, 1)}
	id, err := s.register(c)
	if err != nil {
		return result{}, err
	}
	select {
	case s.sendq <- outgoing{c: c}:
	default:
		// The queue also holds abandoned calls, so it can be full while
		// the pending count is not; treat it as busy.
		if s.unregister(id) {
			return result{}, errBusy
		}
		r := <-c.done
		return r, r.err
	}
	var expired <-chan time.Time
	if timer {
		t := getTimer(time.Until(deadline))
		defer putTimer(t)
		expired = t.C
	}
	select {
	case r := <-c.done:
		return r, r.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = context.DeadlineExceeded
	}
	if !s.unregister(id) {
		// The reader or a failing stream took the call first and is
		// delivering its answer right now.
		r := <-c.done
		return r, r.err
	}
	if c.sent.Load() {
		s.cancel(id)
	}
	return result{}, err
}

// timers holds stopped timers for do: a call without a deadline of its own
// waits on one, and a new timer is three allocations.
var timers sync.Pool

// getTimer returns a timer that fires after d.
func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// putTimer stops t and keeps it for getTimer if it had not fired: then
// nothing can be pending on its channel, whatever the timer semantics
// (GODEBUG asynctimerchan) in force.
func putTimer(t *time.Timer) {
	if t.Stop() {
		timers.Put(t)
	}
}

// start sends c.req without waiting: c.onDone gets the answer, or
// context.DeadlineExceeded at c.deadline, or errNotSent or UNAVAILABLE when
// the stream breaks. When start returns an error (errNotSent, errBusy),
// onDone is not called.
func (s *stream) start(c *call) error {
	id, err := s.register(c)
	if err != nil {
		return err
	}
	select {
	case s.sendq <- outgoing{c: c}:
		return nil
	default:
		if s.unregister(id) {
			c.timer.Stop()
			return errBusy
		}
		return nil // whoever took the call answers it
	}
}

// abandon ends an asynchronous call that is still pending, with err: at
// its deadline, or when its caller went away.
func (c *call) abandon(err error) {
	s, id := c.s, c.req.Id
	if !s.unregister(id) {
		return
	}
	if c.sent.Load() {
		s.cancel(id)
	}
	c.finish(result{err: err})
}

// expired reports whether nobody waits for c any more.
func (c *call) expired() bool {
	return c.ctx.Err() != nil || !time.Now().Before(c.deadline)
}

func (s *stream) register(c *call) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errNotSent
	}
	if len(s.calls) >= s.p.cfg.MaxPendingPerStream {
		return 0, errBusy
	}
	s.nextID++
	id := s.nextID
	c.req.Id = id
	c.s = s
	s.calls[id] = c
	if c.onDone != nil {
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.abandon(context.DeadlineExceeded) })
	}
	s.pending.Store(int64(len(s.calls)))
	return id, nil
}

// unregister removes call id and reports whether it was still pending, in
// which case the caller owns its answer.
func (s *stream) unregister(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.calls[id]; !ok {
		return false
	}
	delete(s.calls, id)
	s.pending.Store(int64(len(s.calls)))
	return true
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
// requests wait and the processor reads batches, it sends them as one.
func (s *stream) writeLoop(ctx context.Context, ps processStream) error {
	var w batchWriter
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
			// message each. With nothing else to run this returns at once;
			// under load it made REST and unary requests cheaper by about a
			// tenth (7 allocations fewer each: docs/performance.md).
			runtime.Gosched()
		}
		if s.batchLimit == 0 || len(s.sendq) == 0 {
			if err := s.writeOne(ps, o); err != nil {
				return err
			}
			continue
		}
		w.add(o)
	more:
		for len(w.queued) < maxBatch {
			select {
			case o := <-s.sendq:
				w.add(o)
			default:
				break more
			}
		}
		if err := s.writeBatch(ps, &w); err != nil {
			return err
		}
	}
}

// maxBatch bounds the requests the writer sends in one message.
const maxBatch = 64

// writeOne sends one request or cancellation.
func (s *stream) writeOne(ps processStream, o outgoing) error {
	req, _ := s.prepare(o)
	if req == nil {
		return nil
	}
	if err := ps.Send(req); err != nil {
		return err
	}
	return s.cancelExpired(ps, o.c)
}

// prepare returns what to send for o, or nil when it is not to be sent: a
// call nobody waits for, or one over the size limit, which it answers. It
// also returns the request's encoded size when it measured it, else -1.
func (s *stream) prepare(o outgoing) (*eventv1.ProcessRequest, int) {
	c := o.c
	if c == nil {
		return &eventv1.ProcessRequest{Id: o.cancelID, Cancel: true}, -1
	}
	if c.expired() {
		return nil, -1 // never send work nobody waits for
	}
	d := time.Until(c.deadline)
	c.timeout.Seconds, c.timeout.Nanos = int64(d/time.Second), int32(d%time.Second)
	c.req.Timeout = &c.timeout
	n := -1
	if c.maxSize == 0 || c.maxSize+requestOverhead > s.p.cfg.MaxMessageBytes {
		if n = c.req.SizeVT(); n > s.p.cfg.MaxMessageBytes {
			if s.unregister(c.req.Id) {
				c.finish(result{err: status.Errorf(codes.ResourceExhausted,
					"event is %d bytes encoded, over the %d-byte limit for processors", n, s.p.cfg.MaxMessageBytes)})
			}
			return nil, -1
		}
	}
	c.sent.Store(true)
	return c.req, n
}

// cancelExpired cancels c's request, just sent, when its caller gave up
// meanwhile and may have missed that it was sent (a second cancel for the
// same id is harmless).
func (s *stream) cancelExpired(ps processStream, c *call) error {
	if c == nil || !c.expired() {
		return nil
	}
	return ps.Send(&eventv1.ProcessRequest{Id: c.req.Id, Cancel: true})
}

// batchWriter holds what the writer sends as one batch.
type batchWriter struct {
	queued []outgoing
	// The batch message being built: its requests, their encoded sizes,
	// its size, and its calls.
	reqs  []*eventv1.ProcessRequest
	sizes []int
	size  int
	sent  []*call
}

func (w *batchWriter) add(o outgoing) { w.queued = append(w.queued, o) }

// fieldProcessBatch is ProcessRequest.batch.
const fieldProcessBatch protowire.Number = 6

// writeBatch sends w's queued requests as ProcessRequest.batch entries of
// as few messages as the processor's limit allows, then empties w.
func (s *stream) writeBatch(ps processStream, w *batchWriter) error {
	defer func() {
		clear(w.queued)
		w.queued = w.queued[:0]
	}()
	for _, o := range w.queued {
		req, n := s.prepare(o)
		if req == nil {
			continue
		}
		if n < 0 {
			n = req.SizeVT()
		}
		entry := protowire.SizeTag(fieldProcessBatch) + protowire.SizeBytes(n)
		if len(w.reqs) > 0 && w.size+entry > s.batchLimit {
			if err := s.flushBatch(ps, w); err != nil {
				return err
			}
		}
		w.reqs, w.sizes, w.size = append(w.reqs, req), append(w.sizes, n), w.size+entry
		if o.c != nil {
			w.sent = append(w.sent, o.c)
		}
	}
	return s.flushBatch(ps, w)
}

// flushBatch sends the batch built in w, if any.
func (s *stream) flushBatch(ps processStream, w *batchWriter) error {
	if len(w.reqs) == 0 {
		return nil
	}
	// The batch is encoded here, entry by entry, by the generated code,
	// and sent as it is (relayCodec). Every event in it has passed
	// checkEncodable or wire.Check, so the encoding cannot fail. gRPC may
	// keep the message after Send (for a stats handler), so each batch
	// gets a buffer of its own.
	buf := make([]byte, 0, w.size)
	var err error
	for i, req := range w.reqs {
		buf = protowire.AppendTag(buf, fieldProcessBatch, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(w.sizes[i]))
		at := len(buf)
		buf = buf[:at+w.sizes[i]]
		if _, err = req.MarshalToSizedBufferVT(buf[at:]); err != nil {
			break
		}
	}
	clear(w.reqs)
	w.reqs, w.sizes, w.size = w.reqs[:0], w.sizes[:0], 0
	if err == nil {
		err = ps.SendMsg(encodedRequest(buf))
	}
	for i, c := range w.sent {
		if err == nil {
			err = s.cancelExpired(ps, c)
		}
		w.sent[i] = nil
	}
	w.sent = w.sent[:0]
	return err
}

// readLoop is the only goroutine that receives from the stream.
func (s *stream) readLoop(ps processStream) error {
	var f frame
	for {
		if err := ps.RecvMsg(&f); err != nil {
			return err
		}
		s.deliverAll(&f)
	}
}

// deliverAll delivers the entries of f's batch, then f itself unless it is
// only a batch.
func (s *stream) deliverAll(f *frame) {
	for i := range f.batch {
		s.deliverAll(&f.batch[i])
	}
	if len(f.batch) == 0 || f.id != 0 || f.kind != frameNone {
		s.deliver(f)
	}
}

// deliver hands a processor's answer to its call, or a published event to
// the subscribers.
func (s *stream) deliver(f *frame) {
	if f.id == 0 {
		if f.kind == framePublish {
			s.p.onPublish(f.publish)
		} else {
			s.p.dropReply("answer without a request id")
		}
		return
	}
	if f.kind == frameError && isDraining(f.status) && !s.draining.Swap(true) {
		s.p.log.Info("processor is draining; no new requests on this stream")
	}
	c := s.take(f.id)
	if c == nil {
		s.p.dropReply("answer for an unknown or expired request id")
		return
	}
	r := result{f: *f}
	r.f.batch = nil // not the caller's
	c.finish(r)
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
			c.finish(result{err: st})
		} else {
			c.finish(result{err: errNotSent})
		}
	}
}
