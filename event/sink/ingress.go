package sink

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// maxInFlightPerClientStream bounds the events one SinkService.Stream client
// may have in flight. Past it the sink stops reading the client's stream, so
// gRPC flow control pushes back on the client instead of memory growing.
const maxInFlightPerClientStream = 1024

// Stream implements [eventv1.SinkServiceServer]: it dispatches every event
// the client sends concurrently and answers each one, in completion order,
// with a StreamResponse carrying the event's id. A failed event is answered
// with its status; the stream itself ends only when the client closes it or
// goes away. Reply events are relayed as the processor encoded them (see
// [Sink.Send]).
//
// No goroutine waits for an event: the handler's goroutine reads events and
// hands each to a processor stream with a completion callback, which the
// processor stream's reader (or the event's deadline timer, or a failing
// stream) runs with the answer; the callback queues the StreamResponse for
// the one goroutine that writes to the client. Per event that is two
// goroutine hand-offs in the sink — to the processor stream's writer and to
// the client stream's writer — where a goroutine per event costs four.
func (s *Sink) Stream(ss eventv1.SinkService_StreamServer) error {
	ctx := ss.Context()
	in := &ingress{
		s:    s,
		ctx:  ctx,
		tc:   traceContext(ctx),
		out:  make(chan answered, maxInFlightPerClientStream),
		free: make(chan int32, maxInFlightPerClientStream),
	}
	in.tcSize = proto.Size(&eventv1.ProcessRequest{TraceContext: in.tc})
	// When the client goes away, answer what is still in flight at once
	// (with its context error), and tell the processors.
	stop := context.AfterFunc(ctx, in.abort)
	defer stop()

	if v := metadata.ValueFromIncomingContext(ctx, batchHeader); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
			in.batchLimit = n
		}
	}

	// Writer: the only goroutine that sends on ss. It ends once every
	// admitted event was answered and out is drained.
	writerDone := make(chan error, 1)
	go func() { writerDone <- in.write(ss) }()

	err := in.read(ss)
	in.inflight.Wait()
	close(in.out)
	if werr := <-writerDone; err == nil {
		err = werr
	}
	if err != nil && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

// ingress is the state of one SinkService.Stream.
type ingress struct {
	s   *Sink
	ctx context.Context
	tc  map[string]string // the stream's trace context, for every event
	// tcSize is tc's encoded size in a ProcessRequest.
	tcSize int
	// out holds answers for the writer. It has room for every slot, so a
	// completion callback never blocks on it. With free, about 20 KiB per
	// client stream.
	out chan answered
	// free holds slots the writer released; slots never used are
	// next..maxInFlightPerClientStream-1.
	free     chan int32
	next     int32
	inflight sync.WaitGroup // events admitted and not yet taken by the writer

	mu     sync.Mutex
	closed bool    // the client went away: start no more calls
	calls  []*call // by slot: the call in flight on a processor stream, if any

	// batchLimit, when not zero, is the largest message the client reads
	// (the batchHeader it sent): answers waiting together go out in
	// StreamResponse.batch messages no larger than that.
	batchLimit int
	// The writer's, reused: the answers taken from out, and the batch
	// message.
	taken        []answered
	batch        eventv1.StreamResponse
	checkedBatch vtcodec.Checked
}

// write sends the answers queued in out, one message each or, when the
// client reads batches, as many as wait at once (up to maxBatch) in one
// message. It releases each answer's slot, and returns once out is closed
// and drained, with the first error sending: answers after it are dropped,
// as the stream has failed.
func (in *ingress) write(ss grpc.ServerStream) error {
	var err error
	for a := range in.out {
		in.taken = append(in.taken[:0], a)
		if in.batchLimit > 0 {
		more:
			for len(in.taken) < maxBatch {
				select {
				case a, ok := <-in.out:
					if !ok {
						break more
					}
					in.taken = append(in.taken, a)
				default:
					break more
				}
			}
		}
		if err == nil {
			err = in.send(ss, in.taken)
		}
		for _, a := range in.taken {
			in.free <- a.slot
			in.inflight.Done()
		}
		clear(in.taken)
	}
	return err
}

// send sends answers in as few messages as the client's batchLimit allows.
func (in *ingress) send(ss grpc.ServerStream, answers []answered) error {
	if len(answers) == 1 { // the usual case without batches: no sizes needed
		return ss.SendMsg(answers[0].msg)
	}
	for len(answers) > 0 {
		n, size, checked := 0, 0, true
		for n < len(answers) {
			resp, ok := answers[n].response()
			entry := resp.SizeVT()
			entry += protowire.SizeTag(fieldStreamResponseBatch) + protowire.SizeVarint(uint64(entry))
			if n > 0 && size+entry > in.batchLimit {
				break
			}
			n, size, checked = n+1, size+entry, checked && ok
		}
		if n == 1 {
			if err := ss.SendMsg(answers[0].msg); err != nil {
				return err
			}
			answers = answers[1:]
			continue
		}
		for _, a := range answers[:n] {
			resp, _ := a.response()
			in.batch.Batch = append(in.batch.Batch, resp)
		}
		var msg any = &in.batch
		if checked {
			in.checkedBatch.Message = &in.batch
			msg = &in.checkedBatch
		}
		err := ss.SendMsg(msg) // encodes the message before it returns
		clear(in.batch.Batch)
		in.batch.Batch = in.batch.Batch[:0]
		if err != nil {
			return err
		}
		answers = answers[n:]
	}
	return nil
}

// fieldStreamResponseBatch is StreamResponse.batch.
const fieldStreamResponseBatch protowire.Number = 4

// answered is an answer for the writer, and the slot it frees.
type answered struct {
	msg  any // a *eventv1.StreamResponse, or one wrapped in a *vtcodec.Checked
	slot int32
}

// response returns the answer, and whether it is wrapped in a
// *vtcodec.Checked.
func (a answered) response() (*eventv1.StreamResponse, bool) {
	if c, ok := a.msg.(*vtcodec.Checked); ok {
		return c.Message.(*eventv1.StreamResponse), true
	}
	return a.msg.(*eventv1.StreamResponse), false
}

// read admits the client's events until the client closes the stream (nil)
// or it fails.
func (in *ingress) read(ss eventv1.SinkService_StreamServer) error {
	// An Empty keeps the whole StreamRequest as unknown fields: its
	// encoding, which parseStreamRequest reads (see ingress_raw.go). begin
	// copies what it keeps, so m is reused.
	var m emptypb.Empty
	for {
		err := ss.RecvMsg(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var gone error // the client went away while the reader waited for a slot
		err = eachStreamRequest(m.ProtoReflect().GetUnknown(), func(req *streamedEvent) error {
			gone = in.admit(req)
			return gone
		})
		if gone != nil {
			return gone
		}
		if err != nil {
			// As when gRPC cannot decode a message: the stream ends. The
			// events of a batch before the malformed entry are answered.
			return status.Errorf(codes.InvalidArgument, "malformed StreamRequest: %v", err)
		}
	}
}

// admit starts one event once it has a slot, waiting for one while
// maxInFlightPerClientStream events are in flight.
func (in *ingress) admit(req *streamedEvent) error {
	var slot int32
	if in.next < maxInFlightPerClientStream {
		slot = in.next
		in.next++
		in.mu.Lock()
		in.calls = append(in.calls, nil) // calls grows with the slots in use
		in.mu.Unlock()
	} else {
		select {
		case slot = <-in.free:
		case <-in.ctx.Done():
			return in.ctx.Err()
		}
	}
	in.inflight.Add(1)
	in.begin(slot, req)
	return nil
}

// event is one event of the stream on its way to a processor. It holds its
// first call and request, so the usual event costs one allocation here.
type event struct {
	in       *ingress
	slot     int32
	id       string
	typ      eventv1.Type
	field    []byte // ProcessRequest field 2: the event as the processor gets it
	r        *route
	start    time.Time
	deadline time.Time
	// failed is the pool of a first attempt that no processor handled;
	// set, the event has had its one retry.
	failed *pool
	first  call
	req    eventv1.ProcessRequest
}

// begin validates and routes one event and starts it.
func (in *ingress) begin(slot int32, req *streamedEvent) {
	s := in.s
	start := time.Now()
	newID := req.body != nil && req.id == ""
	if newID {
		req.id = s.ids.Next()
	}
	var limit time.Duration
	if d := req.timeout; d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			in.answer(slot, req.id, req.typ, start, nil, status.Error(codes.InvalidArgument, "timeout must be a positive duration"))
			return
		}
		limit = d.AsDuration()
	}
	r, err := s.routeForType(req.body != nil, req.typ)
	if err == nil && req.tooDeep {
		err = errTooDeep
	}
	if err != nil {
		in.answer(slot, req.id, req.typ, start, nil, err)
		return
	}
	if r.broadcast {
		// Rare, and it waits for several processors: decoded, on a
		// goroutine of its own (bounded by the slots).
		ev := new(eventv1.Event)
		if err := proto.Unmarshal(req.body, ev); err != nil { // checked already; cannot fail
			in.answer(slot, req.id, req.typ, start, nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err))
			return
		}
		ev.Id = req.id
		go func() {
			resp, err := s.dispatch(in.ctx, ev, start, limit, false)
			in.answer(slot, ev.Id, ev.Type, start, resp, err)
		}()
		return
	}
	if limit == 0 {
		limit = s.cfg.Timeout
	}
	deadline := start.Add(limit)
	if d, ok := in.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	e := &event{in: in, slot: slot, id: req.id, typ: req.typ, r: r, start: start, deadline: deadline,
		field: req.processRequestEvent(newID, start)}
	e.req.TraceContext = in.tc
	e.req.ProtoReflect().SetUnknown(e.field)
	e.first = call{ctx: in.ctx, deadline: deadline, req: &e.req, onDone: e, maxSize: in.tcSize + len(e.field)}
	e.send(&e.first)
}

// send starts c on the least loaded live stream of the event's route (not
// on the failed pool, if another target has a live stream), retrying once
// when the stream closed before c was queued.
func (e *event) send(c *call) {
	in := e.in
	for {
		st := e.r.pick(e.failed)
		if st == nil && e.failed != nil {
			st = e.failed.pick() // no other target: another stream of the same one
		}
		if st == nil {
			e.done(nil, status.Errorf(codes.Unavailable, "no live processor for %s", e.r.name))
			return
		}
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			e.done(nil, status.FromContextError(in.ctx.Err()).Err())
			return
		}
		err := st.start(c)
		if err == nil {
			in.calls[e.slot] = c
		}
		in.mu.Unlock()
		switch {
		case err == nil:
			return
		case errors.Is(err, errNotSent) && e.failed == nil:
			e.failed = st.p // c was never queued: it can be reused
		default:
			e.done(nil, in.s.streamError(e.r, err))
			return
		}
	}
}

// complete is the callback of the event's calls.
func (e *event) complete(c *call, r result) {
	in := e.in
	in.mu.Lock()
	in.calls[e.slot] = nil
	in.mu.Unlock()
	if e.failed == nil && (errors.Is(r.err, errNotSent) || r.err == nil && r.f.kind == frameError && isDraining(r.f.status)) {
		// No processor handled it: once more elsewhere, with a new call
		// (the first stream's writer may still look at the old one).
		e.failed = c.s.p
		req := &eventv1.ProcessRequest{TraceContext: in.tc}
		req.ProtoReflect().SetUnknown(e.field)
		e.send(&call{ctx: in.ctx, deadline: e.deadline, onDone: e, req: req, maxSize: in.tcSize + len(e.field)})
		return
	}
	if r.err != nil {
		e.done(nil, in.s.streamError(e.r, r.err))
		return
	}
	// The usual answer, a relayed reply, in one allocation.
	a := new(streamAnswer)
	if err := fillAnswer(&r.f, false, &a.send); err != nil {
		e.done(nil, err)
		return
	}
	in.s.metrics.observe(e.typ, codes.OK, e.start)
	a.resp.Id = e.id
	a.ok.Response = &a.send
	a.resp.Result = &a.ok
	// Every part of it is checked: the client's id (its request was
	// decoded), the outcome, and the reply's bytes (frame.parse).
	a.checked.Message = &a.resp
	in.out <- answered{&a.checked, e.slot}
}

// streamAnswer is a StreamResponse with its parts.
type streamAnswer struct {
	resp    eventv1.StreamResponse
	ok      eventv1.StreamResponse_Response
	send    eventv1.SendResponse
	checked vtcodec.Checked
}

func (e *event) done(resp *eventv1.SendResponse, err error) {
	e.in.answer(e.slot, e.id, e.typ, e.start, resp, err)
}

// answer counts an event's outcome and queues its answer for the writer.
func (in *ingress) answer(slot int32, id string, typ eventv1.Type, start time.Time, resp *eventv1.SendResponse, err error) {
	in.s.metrics.observe(typ, status.Code(err), start)
	sr := &eventv1.StreamResponse{Id: id}
	if err != nil {
		sr.Result = &eventv1.StreamResponse_Error{Error: status.Convert(err).Proto()}
	} else {
		sr.Result = &eventv1.StreamResponse_Response{Response: resp}
	}
	in.out <- answered{sr, slot}
}

// abort answers every event still in flight with the stream's context
// error, once the client has gone away.
func (in *ingress) abort() {
	in.mu.Lock()
	in.closed = true
	var calls []*call
	for _, c := range in.calls {
		if c != nil {
			calls = append(calls, c)
		}
	}
	in.mu.Unlock()
	for _, c := range calls {
		c.abandon(in.ctx.Err())
	}
}
