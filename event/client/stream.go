package client

import (
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// stream is one SinkService.Stream and the calls in flight on it, with one
// writer goroutine (write) and one reader (read). Whoever removes a call
// from pending (reader, writer dropping it unsent, or failure) answers it
// and gives its slot back, so every call gets exactly one answer.
type stream struct {
	c      *Client
	ctx    context.Context // ends when the stream fails or the Client closes
	cancel context.CancelFunc
	// queue holds the calls waiting to be sent. It has room for every
	// slot, so putting a call in never waits.
	queue chan *call
	// credentials holds fresh tokens for the writer to send in-band.
	credentials chan string

	mu      sync.Mutex
	pending map[string]*call // by event id; nil once the stream failed
	err     error            // why it failed

	// The writer's, reused: the message being built and its calls.
	batch []*call
	msg   relayv1.StreamRequest
}

// open starts a stream; its writer opens the gRPC stream, so that no
// caller waits for that beyond its own context.
func (c *Client) open() *stream {
	ctx, cancel := context.WithCancel(c.ctx)
	s := &stream{
		c:           c,
		ctx:         ctx,
		cancel:      cancel,
		queue:       make(chan *call, c.opts.MaxInFlight),
		credentials: make(chan string),
		pending:     make(map[string]*call),
	}
	c.wg.Go(s.run)
	return s
}

// register adds cl to the pending calls. It fails when an event with the
// same id is in flight, or when the stream has failed (gone).
func (s *stream) register(cl *call) (err error, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		return s.err, true
	}
	if _, dup := s.pending[cl.id]; dup {
		return status.Errorf(codes.AlreadyExists, "eventproc client: an event with id %q is already in flight", cl.id), false
	}
	s.pending[cl.id] = cl
	return nil, false
}

// complete answers the call with id, if it is still pending.
func (s *stream) complete(id string, r result) {
	s.mu.Lock()
	cl := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if cl != nil {
		cl.answer <- r
		<-s.c.slots
	}
}

// fail ends the stream with err and answers every pending call with it;
// the first failure wins.
func (s *stream) fail(err error) {
	s.mu.Lock()
	calls := s.pending
	if calls != nil {
		s.pending, s.err = nil, err
	}
	s.mu.Unlock()
	if calls == nil {
		return
	}
	s.cancel()
	s.c.dropped(s)
	for _, cl := range calls {
		cl.answer <- result{err: err}
		<-s.c.slots
	}
}

// failure is the status a broken stream's calls fail with.
func (s *stream) failure(err error) error {
	if s.c.ctx.Err() != nil {
		return errClosed
	}
	if errors.Is(err, io.EOF) {
		return status.Error(codes.Unavailable, "eventproc client: the sink ended the stream")
	}
	return status.Convert(err).Err()
}

// run opens the gRPC stream, starts its reader and writes until it fails.
func (s *stream) run() {
	// Announce that the client reads answers in batches, and how large.
	ctx := metadata.AppendToOutgoingContext(s.ctx, protocol.BatchHeader, strconv.Itoa(protocol.MaxRecvBytes))
	opts := append(slices.Clip(s.c.opts.CallOptions), grpc.MaxCallRecvMsgSize(protocol.MaxRecvBytes))
	var expires time.Time
	if get := s.c.opts.Credential; get != nil {
		token, exp, err := get(s.ctx)
		if err != nil {
			s.fail(status.Errorf(codes.Unauthenticated, "eventproc client: getting a credential: %v", err))
			return
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		expires = exp
	}
	ss, err := eventv1.NewSinkServiceClient(s.c.conn).Stream(ctx, opts...)
	if err != nil {
		s.fail(s.failure(err))
		return
	}
	s.c.wg.Go(func() { s.read(ss) })
	if !expires.IsZero() {
		s.c.wg.Go(func() { s.refresh(expires) })
	}
	s.write(ss)
}

// refresh gets a fresh credential whenever the stream's has a quarter of
// its lifetime left, and hands it to the writer, until the stream ends. A
// failure is tried again a second later; if none succeeds, the sink ends
// the stream when its credential expires, and the next stream opens with
// a fresh one.
func (s *stream) refresh(expires time.Time) {
	wait := time.Until(expires) * 3 / 4
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		token, next, err := s.c.opts.Credential(s.ctx)
		if err != nil {
			if time.Until(expires) <= time.Second {
				return
			}
			wait = time.Second
			continue
		}
		select {
		case s.credentials <- token:
		case <-s.ctx.Done():
			return
		}
		if next.IsZero() {
			return
		}
		expires, wait = next, time.Until(next)*3/4
	}
}

// write sends the queued calls, those that wait together in one message.
func (s *stream) write(ss grpc.ClientStream) {
	var next *call // taken from the queue, for the next message
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-s.queue:
			case token := <-s.credentials:
				if err := ss.SendMsg(&relayv1.StreamRequest{Credential: token}); err != nil {
					if !errors.Is(err, io.EOF) {
						s.fail(s.failure(err))
					}
					return
				}
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if s.c.opts.MaxBatch > 1 && len(s.queue) == 0 {
			// Let ready callers queue their events first, to share this
			// message: a message costs more than the events in it.
			runtime.Gosched()
		}
		var msg *relayv1.StreamRequest
		msg, next = s.message(first)
		if msg == nil {
			continue
		}
		err := ss.SendMsg(msg) // encodes msg before it returns
		clear(s.msg.Batch)
		s.msg.Batch = s.msg.Batch[:0]
		if err != nil {
			// io.EOF: the stream ended; the reader learns why.
			if !errors.Is(err, io.EOF) {
				s.fail(s.failure(err))
			}
			return
		}
	}
}

// message puts first and the calls queued behind it, within MaxBatch and
// MaxMessageBytes, in one StreamRequest (nil if all were dropped). It drops
// calls whose caller gave up, and returns the call taken that did not fit.
func (s *stream) message(first *call) (msg *relayv1.StreamRequest, next *call) {
	opts := s.c.opts
	size := 0
	add := func(cl *call) bool {
		if err := cl.ctx.Err(); err != nil {
			s.complete(cl.id, result{err: contextError(err)})
			return true
		}
		entry := protocol.StreamRequestBatch.EntrySize(cl.size)
		if len(s.batch) > 0 && size+entry > opts.MaxMessageBytes {
			return false
		}
		s.batch = append(s.batch, cl)
		size += entry
		return true
	}
	add(first)
gather:
	for len(s.batch) < opts.MaxBatch {
		select {
		case cl := <-s.queue:
			if !add(cl) {
				next = cl
				break gather
			}
		default:
			break gather
		}
	}
	defer func() {
		clear(s.batch)
		s.batch = s.batch[:0]
	}()
	switch len(s.batch) {
	case 0:
		return nil, next
	case 1:
		return s.batch[0].entry, next
	}
	for _, cl := range s.batch {
		s.msg.Batch = append(s.msg.Batch, cl.entry)
	}
	return &s.msg, next
}

// read hands every answer to its call until the stream fails.
func (s *stream) read(ss grpc.ClientStream) {
	for {
		resp := new(eventv1.StreamResponse)
		if err := ss.RecvMsg(resp); err != nil {
			s.fail(s.failure(err))
			return
		}
		if len(resp.Batch) == 0 {
			s.answer(resp)
			continue
		}
		for _, r := range resp.Batch {
			s.answer(r)
		}
	}
}

// answer completes the call r answers, if it is still pending. An answer
// without an id answers a credential sent in-band: if it was refused, the
// stream ends when its credential expires, and the next one opens with a
// fresh one.
func (s *stream) answer(r *eventv1.StreamResponse) {
	if r.GetId() == "" {
		return
	}
	var res result
	switch x := r.GetResult().(type) {
	case *eventv1.StreamResponse_Response:
		res.resp = x.Response
	case *eventv1.StreamResponse_Error:
		if res.err = status.ErrorProto(x.Error); res.err == nil {
			res.err = status.Errorf(codes.Internal, "eventproc client: the sink answered event %q with an error of code OK", r.GetId())
		}
	default:
		res.err = status.Errorf(codes.Internal, "eventproc client: the sink answered event %q without a result", r.GetId())
	}
	s.complete(r.GetId(), res)
}
