package sink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
	"github.com/eventproc/eventproc/internal/wire"
)

// One path for every event (docs/design.md, "One path for every event"):
// every entry builds a submission and hands it to [Sink.submit]; its answer
// reaches the entry's receiver exactly once, from [submission.finish].

// receiver gets the answer of a submission.
type receiver interface {
	receive(sub *submission, a answer)
}

// answer is how a submission was answered: by a processor (resp), by a
// broadcast route (accepted), or with an error.
type answer struct {
	resp     *relayv1.ProcessResponse
	accepted bool
	id       string       // the accepted event's id
	stored   *storeAnswer // by the durable store
	err      error
}

// submission is one event from its entry to its answer. It holds its first
// call, so the usual event costs one allocation here.
type submission struct {
	s        *Sink
	ctx      context.Context
	to       receiver
	slot     int32 // the receiver's (a Stream's slot)
	start    time.Time
	deadline time.Time
	id       string
	typ      eventv1.Type
	event    []byte // encoded, with its id and time set
	trace    map[string]string
	route    *route
	// target, when set, is the one target to send to (a broadcast's part).
	target *target
	// child is set for the parts of a broadcast, which are not counted in
	// the metrics: their broadcast is.
	child bool
	// idem is the idempotency key of an event of a durable or idempotent
	// route, if it has one.
	idem *idempotency
	// key is the idempotency key a Stream's client sent with the event
	// (StreamRequest.idempotency_key), if any.
	key string
	// asked, when set, is the id the event came with, which a Stream's
	// answer names: id became the first event's under the same key.
	asked string
	// storing is its event as published to the store while the store has
	// not answered, guarded by Sink.storing's lock.
	storing *nats.Msg

	mu       sync.Mutex
	cur      *call         // the call in flight, if any
	gone     error         // the caller gave up: start no more calls
	children []*submission // a broadcast's parts
	retried  bool          // had its one retry
	failed   *pool         // the pool of a first attempt no processor handled
	timer    *time.Timer   // fires at the deadline, when ctx does not
	first    call
}

// eventDepth is the depth at which protobuf's decoder meets an event inside
// a batch of answers for a client (StreamResponse, its batch entry,
// SendResponse, the event) or of requests for a processor, with room to
// spare: an event is held to the nesting limit it will meet there.
const eventDepth = 7

var eventDescriptor = (*eventv1.Event)(nil).ProtoReflect().Descriptor()

// errTooDeep is the error for an event a processor could not decode for
// its nesting.
var errTooDeep = status.Errorf(codes.InvalidArgument,
	"event payload is nested too deeply: protobuf decodes at most %d levels of messages", wire.MaxDepth)

// header is what the sink reads of an event.
type header struct {
	id      string
	typ     eventv1.Type
	hasTime bool
}

// The fields of Event the sink reads, by number, from the descriptor.
var (
	eventIDField   = eventDescriptor.Fields().ByName("id").Number()
	eventTypeField = eventDescriptor.Fields().ByName("type").Number()
	eventTimeField = eventDescriptor.Fields().ByName("time").Number()
)

// checkEvent checks an encoded event as proto.Unmarshal would at the depth
// a processor or client meets it, and reads its header on the way. tooDeep
// is set for an event that is valid but too deep for that; err for one that
// is malformed.
func checkEvent(b []byte) (h header, tooDeep bool, err error) {
	var id []byte
	err = wire.CheckVisit(b, eventDescriptor, eventDepth, func(f wire.Field) {
		switch f.Num {
		case eventIDField:
			id = f.Bytes
		case eventTypeField:
			h.typ = eventv1.Type(int32(f.Int))
		case eventTimeField:
			h.hasTime = true
		}
	})
	h.id = string(id)
	if errors.Is(err, wire.ErrDepth) {
		if err = wire.Check(b, eventDescriptor); err == nil {
			return h, true, nil
		}
	}
	return h, false, err
}

// submitEvent submits a decoded event, which it encodes.
func (s *Sink) submitEvent(sub *submission, ev *eventv1.Event) {
	if ev == nil {
		sub.finish(answer{err: status.Error(codes.InvalidArgument, "missing event")})
		return
	}
	sub.typ = ev.GetType()
	// Room for the id and time the sink may add (see submit).
	n := ev.SizeVT()
	b := make([]byte, n, n+64)
	_, _ = ev.MarshalToSizedBufferVT(b) // cannot fail
	// Go callers can build an event that does not decode, and JSON nests
	// differently from protobuf: check it as a Stream's.
	h, tooDeep, err := checkEvent(b)
	if errors.Is(err, wire.ErrDepth) {
		tooDeep, err = true, nil
	}
	if err != nil {
		sub.finish(answer{err: status.Errorf(codes.InvalidArgument, "invalid event: %v", err)})
		return
	}
	s.submit(sub, b, h, tooDeep, 0)
}

// submit submits an encoded event (b), checked by checkEvent, which read
// its header h and found it tooDeep or not: it asks Config.Authorize,
// routes the event, fills in its id and time, and sends it; limit, when not
// zero, is the client's timeout. Its answer reaches sub.to. b is kept.
func (s *Sink) submit(sub *submission, b []byte, h header, tooDeep bool, limit time.Duration) {
	sub.id, sub.typ = h.id, h.typ
	var err error
	if tooDeep {
		err = errTooDeep
	} else {
		sub.route, err = s.routeFor(sub.ctx, h.typ)
	}
	if err == nil && (sub.route.durable || sub.route.idempotent) {
		if _, waits := sub.to.(waiter); waits {
			sub.idem, err = readIdempotencyKey(sub.ctx, h.typ, b)
		} else if sub.key != "" {
			sub.idem, err = newIdempotency(h.typ, sub.key, b)
		}
	}
	if err != nil {
		sub.finish(answer{err: err})
		return
	}
	// Fill in what the client left out, into b's spare capacity if it has
	// room (an event the sink encoded itself), else a copy.
	sub.event, sub.id = s.fillHeader(b, h, sub.start)
	s.setDeadline(sub, limit)
	if sub.idem != nil {
		// The key's claim is a round trip to the store: a waiter's caller
		// waits anyway, a Stream's reader must not.
		run := s.storeEvent
		if !sub.route.durable {
			run = s.sendIdempotent
		}
		if _, waits := sub.to.(waiter); waits {
			run(sub)
		} else {
			go run(sub)
		}
		return
	}
	if sub.route.durable {
		s.storeEvent(sub) // asynchronous without a key
		return
	}
	if sub.route.broadcast {
		sub.broadcast()
		return
	}
	sub.first = call{sub: sub}
	sub.send(&sub.first)
}

// fillHeader returns the encoded event b with an id and a time, which it
// fills in when its header h says they are missing (a fresh id; at), and
// the event's id. An encoded header appended to the event sets its fields
// (a later occurrence wins), so b is not decoded. The header goes into b's
// spare capacity: pass b[:len(b):len(b)] to have it copied.
func (s *Sink) fillHeader(b []byte, h header, at time.Time) ([]byte, string) {
	if h.id != "" && h.hasTime {
		return b, h.id
	}
	var fill relayv1.EventHeader
	var ts timestamppb.Timestamp
	if h.id == "" {
		h.id = s.ids.Next()
		fill.Id = h.id
	}
	if !h.hasTime {
		ts.Seconds, ts.Nanos = at.Unix(), int32(at.Nanosecond())
		fill.Time = &ts
	}
	extra := fill.SizeVT()
	b = append(b, make([]byte, extra)...)
	_, _ = fill.MarshalToSizedBufferVT(b[len(b)-extra:])
	return b, h.id
}

// routeFor validates an event's type, asks Config.Authorize, and returns
// the type's route.
func (s *Sink) routeFor(ctx context.Context, t eventv1.Type) (*route, error) {
	if t == eventv1.Type_TYPE_UNSPECIFIED {
		return nil, status.Error(codes.InvalidArgument, "event type is required (TYPE_UNSPECIFIED is not a valid type)")
	}
	if _, known := eventv1.Type_name[int32(t)]; !known {
		return nil, status.Errorf(codes.InvalidArgument, "unknown event type %d", t)
	}
	if err := s.authorize(ctx, ActionSend, t); err != nil {
		return nil, err
	}
	r := s.routes[t]
	if r == nil {
		return nil, status.Errorf(codes.Unimplemented, "no route for event type %s", t)
	}
	return r, nil
}

// setDeadline sets sub's deadline: ctx's, or start + limit, or start +
// Timeout when ctx has none, whichever is first. Only when it is not ctx's
// own, or the caller does not wait on ctx (a Stream's event), does a timer
// enforce it.
func (s *Sink) setDeadline(sub *submission, limit time.Duration) {
	deadline, ctxHasDeadline := sub.ctx.Deadline()
	if !ctxHasDeadline && limit == 0 {
		limit = s.cfg.Timeout
	}
	timer := true
	if own := sub.start.Add(limit); limit > 0 && (!ctxHasDeadline || own.Before(deadline)) {
		deadline = own
	} else if _, waits := sub.to.(waiter); waits {
		timer = false // ctx enforces it: its caller waits on it
	}
	sub.deadline = deadline
	if timer {
		sub.timer = time.AfterFunc(time.Until(deadline), sub.expire)
	}
}

// expire ends sub at its deadline.
func (sub *submission) expire() { sub.abandon(context.DeadlineExceeded) }

// expired reports whether nobody waits for sub any more.
func (sub *submission) expired() bool {
	return sub.ctx.Err() != nil || !time.Now().Before(sub.deadline)
}

// pick returns the least loaded live stream for sub: of its target or
// route, avoiding the pool that failed it if another has a live stream.
func (sub *submission) pick() *stream {
	var st *stream
	if sub.target != nil {
		st = sub.target.pick(sub.failed)
	} else {
		st = sub.route.pick(sub.failed)
	}
	if st == nil && sub.failed != nil {
		st = sub.failed.pick() // nowhere else: another stream of the same processor
	}
	return st
}

// send starts c on the least loaded live stream, retrying once when that
// stream closed before c was queued.
func (sub *submission) send(c *call) {
	for {
		st := sub.pick()
		if st == nil {
			sub.finish(answer{err: status.Errorf(codes.Unavailable, "no live processor for %s", sub.route.name)})
			return
		}
		c.req.Event, c.req.TraceContext = sub.event, sub.trace
		sub.mu.Lock()
		if sub.gone != nil {
			sub.mu.Unlock()
			sub.finish(answer{err: sub.gone})
			return
		}
		err := st.start(c)
		if err == nil {
			sub.cur = c
		}
		sub.mu.Unlock()
		switch {
		case err == nil:
			return
		case errors.Is(err, errNotSent) && !sub.retried:
			sub.retried, sub.failed = true, st.p // c was never queued: reuse it
		default:
			sub.finish(answer{err: sub.s.streamError(sub.route, err)})
			return
		}
	}
}

// complete takes the answer of sub's call c: it tries once more elsewhere
// when no processor handled the event, else finishes.
func (sub *submission) complete(c *call, r result) {
	if !sub.retried && (errors.Is(r.err, errNotSent) || r.err == nil && protocol.IsDraining(r.resp.GetError())) {
		// A new call: the first stream's writer may still look at c.
		sub.retried, sub.failed = true, c.s.p
		sub.send(&call{sub: sub})
		return
	}
	if r.err != nil {
		sub.finish(answer{err: sub.s.streamError(sub.route, r.err)})
		return
	}
	if rr, ok := r.resp.GetResult().(*relayv1.ProcessResponse_Reply); ok && rr.Reply != nil {
		h, tooDeep, err := checkEvent(rr.Reply)
		if tooDeep || err != nil {
			if err == nil {
				err = errTooDeep
			}
			sub.finish(answer{err: status.Errorf(codes.Internal, "processor's reply event cannot be relayed: %v", err)})
			return
		}
		// Every event the sink emits has an id and a time. A copy: the
		// reply may share its array with the rest of a batch.
		rr.Reply, _ = sub.s.fillHeader(rr.Reply[:len(rr.Reply):len(rr.Reply)], h, time.Now())
	}
	sub.finish(answer{resp: r.resp})
}

// code is the status code of an answer, as the client gets it.
func (a answer) code() codes.Code {
	switch {
	case a.err != nil:
		return status.Code(a.err)
	case a.accepted, a.stored != nil:
		return codes.OK
	}
	switch r := a.resp.GetResult().(type) {
	case *relayv1.ProcessResponse_Reply, *relayv1.ProcessResponse_Consumed:
		return codes.OK
	case *relayv1.ProcessResponse_Error:
		if c := codes.Code(r.Error.GetCode()); c != codes.OK {
			return c
		}
	}
	return codes.Internal
}

// abandon ends sub with err (a status or context error) unless it is
// answered first: the caller gave up or the deadline passed.
func (sub *submission) abandon(err error) {
	if sub.route != nil && sub.route.durable && !sub.child && sub.s.storing.takeSub(sub) {
		sub.finish(answer{err: storeAbandoned(sub.typ, err)}) // the store has not answered yet
		return
	}
	if _, ok := status.FromError(err); !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			err = status.Errorf(codes.DeadlineExceeded, "no answer from the processor for %s before the deadline", sub.typ)
		} else {
			err = status.FromContextError(err).Err()
		}
	}
	sub.mu.Lock()
	if sub.gone == nil {
		sub.gone = err
	}
	c, children := sub.cur, sub.children
	sub.mu.Unlock()
	if c != nil {
		c.abandon(err)
	}
	for _, ch := range children {
		ch.abandon(err)
	}
}

// finish delivers sub's answer: the one exit of every submission.
func (sub *submission) finish(a answer) {
	if sub.timer != nil {
		sub.timer.Stop()
	}
	if !sub.child {
		sub.s.metrics.observe(sub.typ, a.code(), sub.start)
	}
	sub.to.receive(sub, a)
}

// streamError turns an error from a stream into a status error.
func (s *Sink) streamError(r *route, err error) error {
	switch {
	case errors.Is(err, errNotSent):
		return status.Errorf(codes.Unavailable, "processor stream for %s closed before the event was sent", r.name)
	case errors.Is(err, errBusy):
		return status.Errorf(codes.ResourceExhausted,
			"too many events pending for %s (limit %d per processor stream); retry later", r.name, s.cfg.MaxPendingPerStream)
	default:
		return err
	}
}

// broadcast hands sub's event to one live stream of every target of its
// route, in parallel, and answers OUTCOME_ACCEPTED once every live target
// replied or consumed it, or the first failure, naming its target. Targets
// without a live stream are skipped; none at all is UNAVAILABLE.
func (sub *submission) broadcast() {
	b := &broadcast{parent: sub}
	sub.mu.Lock()
	if sub.gone != nil {
		sub.mu.Unlock()
		sub.finish(answer{err: sub.gone})
		return
	}
	for _, t := range sub.route.targets {
		if t.live() == 0 {
			continue
		}
		part := &submission{s: sub.s, ctx: sub.ctx, to: b, start: sub.start, deadline: sub.deadline, id: sub.id,
			typ: sub.typ, event: sub.event, trace: sub.trace, route: sub.route, target: t, child: true}
		part.first = call{sub: part}
		sub.children = append(sub.children, part)
	}
	b.left = len(sub.children)
	parts := sub.children
	sub.mu.Unlock()
	if len(parts) == 0 {
		sub.finish(answer{err: status.Errorf(codes.Unavailable, "no live processor for %s", sub.route.name)})
		return
	}
	for _, part := range parts {
		part.send(&part.first)
	}
}

// broadcast collects the answers of a broadcast's parts.
type broadcast struct {
	parent *submission
	mu     sync.Mutex
	left   int
	first  error
}

func (b *broadcast) receive(part *submission, a answer) {
	err := a.err
	if err == nil {
		_, err = sendResponse(a)
	}
	b.mu.Lock()
	if err != nil && b.first == nil {
		st := status.Convert(err)
		b.first = status.Errorf(st.Code(), "broadcast to %s: %s", part.target.name, st.Message())
	}
	b.left--
	done, first := b.left == 0, b.first
	b.mu.Unlock()
	if done {
		b.parent.finish(answer{accepted: first == nil, id: b.parent.id, err: first})
	}
}

// sendResponse is the answer as the client gets it: a relayed reply,
// consumed, accepted, or the error the processor answered with.
func sendResponse(a answer) (*relayv1.SendResponse, error) {
	out := new(relayv1.SendResponse)
	if err := fillSendResponse(a, out); err != nil {
		return nil, err
	}
	return out, nil
}

// fillSendResponse is sendResponse, filling in an empty out.
func fillSendResponse(a answer, out *relayv1.SendResponse) error {
	if a.err != nil {
		return a.err
	}
	if a.accepted {
		out.Outcome, out.Id = eventv1.Outcome_OUTCOME_ACCEPTED, a.id
		return nil
	}
	if st := a.stored; st != nil {
		out.Outcome, out.Id, out.Sequence, out.Duplicate = eventv1.Outcome_OUTCOME_STORED, st.id, st.sequence, st.duplicate
		return nil
	}
	switch r := a.resp.GetResult().(type) {
	case *relayv1.ProcessResponse_Reply:
		out.Event, out.Outcome = r.Reply, eventv1.Outcome_OUTCOME_REPLIED
	case *relayv1.ProcessResponse_Consumed:
		out.Outcome = eventv1.Outcome_OUTCOME_CONSUMED
	case *relayv1.ProcessResponse_Error:
		st := status.FromProto(r.Error)
		if st.Code() == codes.OK {
			return status.Error(codes.Internal, "processor answered with an error status of OK")
		}
		return st.Err()
	default:
		return status.Error(codes.Internal, "processor answered without a result")
	}
	return nil
}

// waiter receives the answer of a synchronous caller.
type waiter chan answer

func (w waiter) receive(_ *submission, a answer) { w <- a }

// send submits a decoded event and waits for its answer, or for ctx to
// end: the synchronous entry (unary Send, the HTTP gateway, Go callers).
func (s *Sink) send(ctx context.Context, ev *eventv1.Event) (*relayv1.SendResponse, error) {
	w := make(waiter, 1)
	sub := &submission{s: s, ctx: ctx, to: w, start: time.Now(), trace: traceContext(ctx)}
	s.submitEvent(sub, ev)
	select {
	case a := <-w:
		return sendResponse(a)
	case <-ctx.Done():
		sub.abandon(ctx.Err())
		return sendResponse(<-w)
	}
}

// Send implements [eventv1.SinkServiceServer] for in-process callers, such
// as the HTTP gateway and Go programs embedding the sink: it routes the
// event to a processor and returns its answer, with the reply event
// decoded. Errors are gRPC status errors: INVALID_ARGUMENT for a missing,
// malformed or unknown-typed event, PERMISSION_DENIED (or what
// Config.Authorize said) when refused, UNIMPLEMENTED for a type without a
// route, UNAVAILABLE when no processor stream is live or it broke,
// RESOURCE_EXHAUSTED when too many events are pending, DEADLINE_EXCEEDED
// or CANCELED when ctx ended first, or the status the processor answered.
// Without a deadline in ctx, Config.Timeout applies. The sink fills in the
// event's id and time when they are unset, in what it sends; req is only
// read.
//
// The gRPC service [Sink.Register] adds relays the reply without decoding
// it.
func (s *Sink) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	r, err := s.send(ctx, req.GetEvent())
	if err != nil {
		return nil, err
	}
	out := &eventv1.SendResponse{Outcome: r.Outcome, Id: r.Id, Sequence: r.Sequence, Duplicate: r.Duplicate}
	if r.Event != nil {
		out.Event = new(eventv1.Event)
		if err := vtcodec.Unmarshal(r.Event, out.Event); err != nil { // checked already
			return nil, status.Errorf(codes.Internal, "processor's reply event does not decode: %v", err)
		}
	}
	return out, nil
}
