package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// Register adds the sink's SinkService to a gRPC server. Send relays the
// processor's reply without decoding it: interceptors see the decoded
// *eventv1.SendRequest, and an envelope (internal/relay/v1) as the response,
// which clients decode as an eventv1.SendResponse.
func (s *Sink) Register(r grpc.ServiceRegistrar) {
	desc := eventv1.SinkService_ServiceDesc
	desc.Methods = []grpc.MethodDesc{{MethodName: "Send", Handler: s.sendHandler}}
	r.RegisterService(&desc, s)
}

// sendHandler is the gRPC method handler of Send (see Register).
func (s *Sink) sendHandler(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(eventv1.SendRequest)
	if err := dec(req); err != nil {
		s.metrics.observe(eventv1.Type_TYPE_UNSPECIFIED, status.Code(err), time.Now()) // type unknown
		return nil, err
	}
	handle := func(ctx context.Context, req any) (any, error) {
		resp, err := s.send(ctx, req.(*eventv1.SendRequest).GetEvent())
		if err != nil {
			return nil, err // not a typed nil
		}
		return resp, nil
	}
	if interceptor == nil {
		return handle(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: eventv1.SinkService_Send_FullMethodName}
	return interceptor(ctx, req, info, handle)
}

// maxInFlightPerClientStream bounds the events one SinkService.Stream client
// may have in flight. Past it the sink stops reading the client's stream, so
// gRPC flow control pushes back on the client instead of memory growing.
const maxInFlightPerClientStream = 1024

// Stream implements [eventv1.SinkServiceServer]: it submits every event the
// client sends, each entry of a batch as if it came alone, and answers each
// one, in completion order, with a StreamResponse carrying the event's id.
// A failed event is answered with its status; the stream itself ends only
// when the client closes it or goes away, or sends a message that is not a
// valid StreamRequest (INVALID_ARGUMENT). Events are relayed to processors,
// and replies to the client, without being decoded.
//
// No goroutine waits for an event: one goroutine reads and submits
// events, and their answers are queued for the one goroutine that writes
// to the client. The handler's goroutine waits for the reader to finish or
// for the stream's context to end (a credential that expired, say), and
// then ends the stream.
func (s *Sink) Stream(ss eventv1.SinkService_StreamServer) error {
	ctx := ss.Context()
	in := &ingress{
		s:    s,
		ctx:  ctx,
		tc:   traceContext(ctx),
		out:  make(chan answered, maxInFlightPerClientStream),
		free: make(chan int32, maxInFlightPerClientStream),
		quit: make(chan struct{}),
	}
	md, _ := metadata.FromIncomingContext(ctx)
	in.batchLimit = protocol.BatchLimit(md)
	// When the client goes away, answer what is still in flight at once
	// (with its context error), and tell the processors.
	stop := context.AfterFunc(ctx, in.abort)
	defer stop()

	// Writer: the only goroutine that sends on ss. It ends once every
	// admitted event was answered and out is drained, or at quit.
	writerDone := make(chan error, 1)
	go func() { writerDone <- in.write(ss) }()

	// Reader: apart, so that the stream ends with its context (a
	// credential that expired, say) even while the client sends nothing. A
	// RecvMsg that blocks returns once this handler has.
	readDone := make(chan error, 1)
	go func() { readDone <- in.read(ss) }()
	select {
	case err := <-readDone:
		in.inflight.Wait()
		close(in.out)
		if werr := <-writerDone; err == nil {
			err = werr
		}
		if err != nil && ctx.Err() != nil {
			return contextStatus(ctx)
		}
		return err
	case <-ctx.Done():
		// abort answered the events in flight; the stream is over, so
		// answers not yet written are dropped.
		close(in.quit)
		<-writerDone
		return contextStatus(ctx)
	}
}

// contextStatus is the status a call whose context ended returns: the
// cause, when it is a status error, else CANCELLED or DEADLINE_EXCEEDED.
func contextStatus(ctx context.Context) error {
	if _, ok := status.FromError(context.Cause(ctx)); ok {
		return context.Cause(ctx)
	}
	return status.FromContextError(ctx.Err()).Err()
}

// ingress is the state of one SinkService.Stream.
type ingress struct {
	s   *Sink
	ctx context.Context
	tc  map[string]string // the stream's trace context, for every event
	// out holds answers for the writer. It has room for every slot, so a
	// receiver never blocks on it.
	out chan answered
	// free holds slots the writer released; slots never used are
	// next..maxInFlightPerClientStream-1.
	free     chan int32
	next     int32
	inflight sync.WaitGroup // events admitted and not yet taken by the writer
	quit     chan struct{}  // closed when the stream's context ends: the writer stops

	mu     sync.Mutex
	closed bool          // the client went away: start no more calls
	subs   []*submission // by slot: the event in flight, if any

	// batchLimit, when not zero, is the largest message the client reads:
	// answers waiting together go out as StreamResponse.batch messages no
	// larger than that.
	batchLimit int
}

// answered is an answer for the writer, and the slot it frees.
type answered struct {
	resp *relayv1.StreamResponse
	slot int32
}

// errCredentialShape is the error for a StreamRequest with a credential
// and anything else.
var errCredentialShape = errors.New("a StreamRequest with a credential must have no other field set, nor be a batch entry")

// errBatchShape is the error for a StreamRequest that breaks batch's rules.
var errBatchShape = errors.New("a StreamRequest with a batch must have no event or timeout of its own, nor its entries a batch")

// read admits the client's events until the client closes the stream (nil)
// or it fails.
func (in *ingress) read(ss grpc.ServerStream) error {
	for {
		m := new(relayv1.StreamRequest) // its event's bytes are kept until answered
		err := ss.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Credential != "" {
			if m.Event != nil || m.Timeout != nil || len(m.Batch) > 0 {
				return malformed(errCredentialShape)
			}
			if err := in.refresh(m.Credential); err != nil {
				return err
			}
			continue
		}
		entries := []*relayv1.StreamRequest{m}
		if len(m.Batch) > 0 {
			if m.Event != nil || m.Timeout != nil {
				return malformed(errBatchShape)
			}
			entries = m.Batch
		}
		for _, e := range entries {
			if len(e.Batch) > 0 && e != m {
				return malformed(errBatchShape)
			}
			if e.Credential != "" {
				return malformed(errCredentialShape)
			}
			if err := in.admit(e); err != nil {
				// The events of a batch before the malformed entry are
				// answered.
				return err
			}
		}
	}
}

// malformed ends a stream whose message is not a valid StreamRequest.
func malformed(err error) error {
	return status.Errorf(codes.InvalidArgument, "malformed StreamRequest: %v", err)
}

// admit submits one event once it has a slot, waiting for one while
// maxInFlightPerClientStream events are in flight. It fails when the event
// is malformed or the client went away.
func (in *ingress) admit(req *relayv1.StreamRequest) error {
	var h header
	var tooDeep bool
	if req.Event != nil {
		var err error
		if h, tooDeep, err = checkEvent(req.Event); err != nil {
			return malformed(fmt.Errorf("event: %w", err))
		}
	}
	var limit time.Duration
	badTimeout := false
	if d := req.Timeout; d != nil {
		limit = d.AsDuration()
		badTimeout = d.CheckValid() != nil || limit <= 0
	}
	slot, err := in.takeSlot()
	if err != nil {
		return err
	}
	sub := &submission{s: in.s, ctx: in.ctx, to: in, slot: slot, start: time.Now(), trace: in.tc, key: req.IdempotencyKey}
	in.mu.Lock()
	in.subs[slot] = sub
	if in.closed {
		sub.gone = status.FromContextError(in.ctx.Err()).Err()
	}
	in.mu.Unlock()
	switch {
	case req.Event == nil:
		sub.finish(answer{err: status.Error(codes.InvalidArgument, "missing event")})
	case badTimeout:
		sub.finish(answer{err: status.Error(codes.InvalidArgument, "timeout must be a positive duration")})
	default:
		in.s.submit(sub, req.Event, h, tooDeep, limit)
	}
	return nil
}

// takeSlot returns a free slot for an answer, waiting for one while
// maxInFlightPerClientStream are taken, and counts it in flight.
func (in *ingress) takeSlot() (int32, error) {
	var slot int32
	if in.next < maxInFlightPerClientStream {
		slot = in.next
		in.next++
		in.mu.Lock()
		in.subs = append(in.subs, nil) // subs grows with the slots in use
		in.mu.Unlock()
	} else {
		select {
		case slot = <-in.free:
		case <-in.ctx.Done():
			return 0, in.ctx.Err()
		}
	}
	in.inflight.Add(1)
	return slot, nil
}

// refresh asks Config.Refresh about a credential sent in-band, and queues
// its answer.
func (in *ingress) refresh(credential string) error {
	slot, err := in.takeSlot()
	if err != nil {
		return err
	}
	resp := new(relayv1.StreamResponse)
	exp, err := time.Time{}, status.Error(codes.FailedPrecondition, "this sink does not authenticate its clients: no credential to refresh")
	if in.s.cfg.Refresh != nil {
		exp, err = in.s.cfg.Refresh(in.ctx, credential)
	}
	if err != nil {
		resp.Result = &relayv1.StreamResponse_Error{Error: status.Convert(err).Proto()}
	} else {
		resp.Result = &relayv1.StreamResponse_CredentialExpires{CredentialExpires: timestamppb.New(exp)}
	}
	in.out <- answered{resp, slot}
	return nil
}

// receive queues a submission's answer for the writer.
func (in *ingress) receive(sub *submission, a answer) {
	in.mu.Lock()
	in.subs[sub.slot] = nil
	in.mu.Unlock()
	// The usual answer, with its parts, in one allocation.
	sa := new(struct {
		resp relayv1.StreamResponse
		ok   relayv1.StreamResponse_Response
		send relayv1.SendResponse
	})
	sa.resp.Id = sub.id
	if sub.asked != "" {
		sa.resp.Id = sub.asked
	}
	if err := fillSendResponse(a, &sa.send); err != nil {
		sa.resp.Result = &relayv1.StreamResponse_Error{Error: status.Convert(err).Proto()}
	} else {
		sa.ok.Response = &sa.send
		sa.resp.Result = &sa.ok
	}
	in.out <- answered{&sa.resp, sub.slot}
}

// abort answers every event still in flight with the stream's context
// error, once the client has gone away.
func (in *ingress) abort() {
	in.mu.Lock()
	in.closed = true
	var subs []*submission
	for _, sub := range in.subs {
		if sub != nil {
			subs = append(subs, sub)
		}
	}
	in.mu.Unlock()
	for _, sub := range subs {
		sub.abandon(in.ctx.Err())
	}
}

// write sends the queued answers, one message each or, when the client
// reads batches, as many as wait at once (up to protocol.MaxBatch) in as
// few messages as its limit allows. It releases each answer's slot, and
// returns once out is closed and drained (or at quit), with the first error sending:
// answers after it are dropped, as the stream has failed.
func (in *ingress) write(ss grpc.ServerStream) error {
	var err error
	var batch relayv1.StreamResponse
	var taken []answered
	size := 0
	flush := func() {
		switch {
		case len(batch.Batch) == 0:
		case err != nil:
		case len(batch.Batch) == 1:
			err = ss.SendMsg(batch.Batch[0])
		default:
			err = ss.SendMsg(&batch) // encodes the message before it returns
		}
		clear(batch.Batch)
		batch.Batch, size = batch.Batch[:0], 0
	}
	for {
		var a answered
		select {
		case next, ok := <-in.out:
			if !ok {
				return err
			}
			a = next
		case <-in.quit:
			return err
		}
		taken = append(taken[:0], a)
		if in.batchLimit > 0 {
		more:
			for len(taken) < protocol.MaxBatch {
				select {
				case a, ok := <-in.out:
					if !ok {
						break more
					}
					taken = append(taken, a)
				default:
					break more
				}
			}
		}
		for _, a := range taken {
			entry := 0
			if len(taken) > 1 {
				entry = protocol.StreamResponseBatch.EntrySize(a.resp.SizeVT())
				if len(batch.Batch) > 0 && size+entry > in.batchLimit {
					flush()
				}
			}
			batch.Batch, size = append(batch.Batch, a.resp), size+entry
		}
		flush()
		for _, a := range taken {
			in.free <- a.slot
			in.inflight.Done()
		}
		clear(taken)
	}
}
