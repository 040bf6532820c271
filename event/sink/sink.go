package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventid"
)

// Sink routes events to processors. Create it with [New], start it with
// [Sink.Run]. It implements [eventv1.SinkServiceServer].
type Sink struct {
	eventv1.UnimplementedSinkServiceServer

	cfg     Config
	routes  router
	targets []*target // every configured target, once each
	ids     *eventid.Generator
	hub     *pubsub.Hub
	// metrics is nil when Config.Metrics is.
	metrics *metrics

	runOnce sync.Once
	stop    context.CancelFunc
	done    chan struct{}

	stateMu sync.Mutex
	changed chan struct{} // closed and replaced whenever a stream goes up or down
}

// New validates cfg and builds a Sink. It starts no goroutines and opens no
// connections; [Sink.Run] does.
func New(cfg Config) (*Sink, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sink{
		cfg:     cfg,
		routes:  make(router, len(cfg.Routes)),
		ids:     eventid.New(),
		hub:     pubsub.New(cfg.PubSub),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.closeTargets()
		}
	}()
	sinkID := s.ids.Prefix()
	byName := make(map[string]*target)
	for _, r := range cfg.Routes {
		rt := &route{typ: r.Type, name: r.Type.String(), broadcast: r.Broadcast}
		for _, name := range r.Targets {
			t, ok := byName[name]
			if !ok {
				t, err = newTarget(name, &s.cfg, func(t *target, poolName, dialTarget string) (*pool, error) {
					return newPool(poolName, dialTarget, t, &s.cfg, sinkID, s.publish, s.notify)
				}, s.notify)
				if err != nil {
					return nil, fmt.Errorf("%w: route for %s: target %q: %v", ErrInvalidConfig, r.Type, name, err)
				}
				byName[name] = t
				s.targets = append(s.targets, t)
			}
			rt.targets = append(rt.targets, t)
		}
		s.routes[r.Type] = rt
	}
	if cfg.Metrics != nil {
		if s.metrics, err = newMetrics(cfg.Metrics, s); err != nil {
			return nil, fmt.Errorf("%w: registering metrics: %v", ErrInvalidConfig, err)
		}
	}
	return s, nil
}

func (s *Sink) closeTargets() {
	for _, t := range s.targets {
		t.closeAll()
	}
}

// Run connects to every processor target and keeps the streams open until
// ctx ends or [Sink.Close] is called; then it closes them, failing requests
// still pending with UNAVAILABLE, and returns nil. Run may be called once.
func (s *Sink) Run(ctx context.Context) error {
	started := false
	s.runOnce.Do(func() {
		started = true
		ctx, s.stop = context.WithCancel(ctx)
	})
	if !started {
		return errors.New("sink: Run called twice")
	}
	defer close(s.done)
	defer s.hub.Close()
	defer s.stop()
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() { t.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Close stops a running sink and waits for Run to return. It is idempotent
// and safe to call when Run was never called.
func (s *Sink) Close() {
	ran := true
	s.runOnce.Do(func() { ran = false })
	if !ran {
		s.closeTargets()
		s.hub.Close()
		return
	}
	s.stop()
	<-s.done
}

// notify wakes everyone waiting in WaitReady.
func (s *Sink) notify() {
	s.stateMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.stateMu.Unlock()
}

// WaitReady blocks until [Sink.Ready] is true or ctx ends.
func (s *Sink) WaitReady(ctx context.Context) error {
	for {
		s.stateMu.Lock()
		ch := s.changed
		s.stateMu.Unlock()
		if s.Ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// publish receives events processors publish.
func (s *Sink) publish(ev *eventv1.Event) {
	if ev.GetType() == eventv1.Type_TYPE_UNSPECIFIED {
		s.cfg.Logger.Warn("dropped published event without a type", "id", ev.GetId())
		return
	}
	if ev.Id == "" {
		ev.Id = s.ids.Next()
	}
	if ev.Time == nil {
		ev.Time = timestamppb.Now()
	}
	s.hub.Publish(ev)
}

// Dispatch routes ev to a processor and returns its answer. Errors are gRPC
// status errors: INVALID_ARGUMENT for a missing or unknown type,
// UNIMPLEMENTED for a type without a route, UNAVAILABLE when no processor
// stream is live or the stream broke, RESOURCE_EXHAUSTED when too many
// requests are pending, DEADLINE_EXCEEDED or CANCELED when ctx ended first,
// or the status the processor answered. Without a deadline in ctx, the
// configured Timeout applies. Dispatch fills in ev's id and time when unset.
func (s *Sink) Dispatch(ctx context.Context, ev *eventv1.Event) (*eventv1.SendResponse, error) {
	return s.dispatchCounted(ctx, ev, true)
}

// dispatchCounted is Dispatch, counted in the metrics; decode says whether
// a reply event is decoded or relayed (see [Sink.Send]).
func (s *Sink) dispatchCounted(ctx context.Context, ev *eventv1.Event, decode bool) (*eventv1.SendResponse, error) {
	start := time.Now()
	resp, err := s.dispatch(ctx, ev, start, 0, decode)
	s.metrics.observe(ev.GetType(), status.Code(err), start)
	return resp, err
}

// dispatch routes ev and waits for its answer, for at most limit when it
// is not zero.
func (s *Sink) dispatch(ctx context.Context, ev *eventv1.Event, now time.Time, limit time.Duration, decode bool) (*eventv1.SendResponse, error) {
	r, err := s.routeFor(ev)
	if err != nil {
		return nil, err
	}
	if err := checkEncodable(ev); err != nil {
		return nil, err
	}
	if ev.Id == "" {
		ev.Id = s.ids.Next()
	}
	if ev.Time == nil {
		ev.Time = timestamppb.New(now)
	}
	deadline, timer := s.deadline(ctx, now, limit)
	if r.broadcast {
		if timer {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		return s.broadcast(ctx, r, ev)
	}
	return s.process(ctx, r, &eventv1.ProcessRequest{Event: ev, TraceContext: traceContext(ctx)}, deadline, timer, decode)
}

// deadline is a request's deadline: ctx's, or now + limit, or now +
// Timeout when ctx has none, whichever is first. Only when it is not ctx's
// own does the wait need a timer (timer); the multiplexer uses a plain one
// rather than a derived context, which would also register with ctx's
// cancellation.
func (s *Sink) deadline(ctx context.Context, now time.Time, limit time.Duration) (deadline time.Time, timer bool) {
	deadline, ctxHasDeadline := ctx.Deadline()
	if !ctxHasDeadline && limit == 0 {
		limit = s.cfg.Timeout
	}
	if own := now.Add(limit); limit > 0 && (!ctxHasDeadline || own.Before(deadline)) {
		return own, true
	}
	return deadline, false // ctx's deadline comes first and ctx enforces it
}

// process sends req on one of r's streams and waits for its answer, trying
// once more elsewhere when no processor handled it.
func (s *Sink) process(ctx context.Context, r *route, req *eventv1.ProcessRequest, deadline time.Time, timer, decode bool) (*eventv1.SendResponse, error) {
	var failed *pool
	for attempt := 0; ; attempt++ {
		st := r.pick(failed)
		if st == nil && failed != nil {
			st = failed.pick() // no other target: another stream of the same one
		}
		if st == nil {
			if err := ctx.Err(); err != nil {
				return nil, status.FromContextError(err).Err()
			}
			return nil, status.Errorf(codes.Unavailable, "no live processor for %s", r.name)
		}
		res, err := st.do(ctx, deadline, timer, req)
		switch {
		case err == nil && attempt == 0 && res.f.kind == frameError && isDraining(res.f.status):
			failed = st.p // the processor did not handle it: try once more elsewhere
			req = retryRequest(req)
		case err == nil:
			return answer(&res.f, decode)
		case errors.Is(err, errNotSent) && attempt == 0:
			failed = st.p // no processor saw it: try once more elsewhere
			req = retryRequest(req)
		default:
			return nil, s.streamError(r, err)
		}
	}
}

// retryRequest returns a new request for the same event, decoded or
// encoded (in the unknown fields): the first stream's writer may still
// hold the old one.
func retryRequest(req *eventv1.ProcessRequest) *eventv1.ProcessRequest {
	out := &eventv1.ProcessRequest{Event: req.GetEvent(), TraceContext: req.GetTraceContext()}
	if u := req.ProtoReflect().GetUnknown(); len(u) > 0 {
		out.ProtoReflect().SetUnknown(u)
	}
	return out
}

// streamError turns an error from stream.do into a status error.
func (s *Sink) streamError(r *route, err error) error {
	switch {
	case errors.Is(err, errNotSent):
		return status.Errorf(codes.Unavailable, "processor stream for %s closed before the event was sent", r.name)
	case errors.Is(err, errBusy):
		return status.Errorf(codes.ResourceExhausted,
			"too many events pending for %s (limit %d per processor stream); retry later", r.name, s.cfg.MaxPendingPerStream)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "no answer from the processor for %s before the deadline", r.name)
	case errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	default:
		return err
	}
}

// routeFor validates ev's type and returns its route.
func (s *Sink) routeFor(ev *eventv1.Event) (*route, error) {
	return s.routeForType(ev != nil, ev.GetType())
}

// routeForType is routeFor given whether there is an event, and its type.
func (s *Sink) routeForType(present bool, t eventv1.Type) (*route, error) {
	if !present {
		return nil, status.Error(codes.InvalidArgument, "missing event")
	}
	if t == eventv1.Type_TYPE_UNSPECIFIED {
		return nil, status.Error(codes.InvalidArgument, "event type is required (TYPE_UNSPECIFIED is not a valid type)")
	}
	r := s.routes.lookup(t)
	if r == nil {
		if _, known := eventv1.Type_name[int32(t)]; !known {
			return nil, status.Errorf(codes.InvalidArgument, "unknown event type %d", t)
		}
		return nil, status.Errorf(codes.Unimplemented, "no route for event type %s", t)
	}
	return r, nil
}

// answer turns a processor's answer into the client's. A reply event is
// decoded when decode is set, else relayed: its encoding becomes the
// response's unknown fields, which proto encodes as they are (see relay.go).
func answer(f *frame, decode bool) (*eventv1.SendResponse, error) {
	resp := new(eventv1.SendResponse)
	if err := fillAnswer(f, decode, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// fillAnswer is answer, filling in an empty resp.
func fillAnswer(f *frame, decode bool, resp *eventv1.SendResponse) error {
	switch f.kind {
	case frameReply:
		resp.Outcome = eventv1.Outcome_OUTCOME_REPLIED
		if !decode {
			resp.ProtoReflect().SetUnknown(f.reply)
			return nil
		}
		ev, err := f.replyEvent()
		if err != nil {
			return status.Errorf(codes.Internal, "processor's reply event does not decode: %v", err)
		}
		resp.Event = ev
		return nil
	case frameConsumed:
		resp.Outcome = eventv1.Outcome_OUTCOME_CONSUMED
		return nil
	case frameError:
		st := status.FromProto(f.status)
		if st.Code() == codes.OK {
			return status.Error(codes.Internal, "processor answered with an error status of OK")
		}
		return st.Err()
	default:
		return status.Error(codes.Internal, "processor answered without a result")
	}
}

// broadcast hands ev to one live stream of every target of r, in parallel,
// and waits until each has answered. It answers OUTCOME_ACCEPTED when every
// live target replied or consumed the event, or the first failure, naming its
// target. Targets without a live stream are skipped; none at all is
// UNAVAILABLE.
func (s *Sink) broadcast(ctx context.Context, r *route, ev *eventv1.Event) (*eventv1.SendResponse, error) {
	type outcome struct {
		target string
		err    error
	}
	results := make(chan outcome, len(r.targets))
	tc := traceContext(ctx)
	sent := 0
	for _, t := range r.targets {
		st := t.pick()
		if st == nil {
			continue
		}
		sent++
		go func() {
			dl, _ := ctx.Deadline() // set by dispatch
			res, err := st.do(ctx, dl, false, &eventv1.ProcessRequest{Event: ev, TraceContext: tc})
			if err == nil {
				_, err = answer(&res.f, false)
			}
			results <- outcome{t.name, err}
		}()
	}
	if sent == 0 {
		return nil, status.Errorf(codes.Unavailable, "no live processor for %s", r.name)
	}
	var first error
	for range sent {
		o := <-results
		if o.err != nil && first == nil {
			first = s.streamError(r, o.err)
			st := status.Convert(first)
			first = status.Errorf(st.Code(), "broadcast to %s: %s", o.target, st.Message())
		}
	}
	if first != nil {
		return nil, first
	}
	return &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_ACCEPTED}, nil
}
