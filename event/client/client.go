package client

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventid"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// Defaults for the zero fields of [Options].
const (
	// DefaultMaxInFlight is what the sink itself admits on one stream.
	DefaultMaxInFlight = 1024
	// DefaultMaxBatch is as many as the sink puts in one batch of answers.
	DefaultMaxBatch = protocol.MaxBatch
	// DefaultMaxMessageBytes is the default of the sink's --max-body-bytes.
	DefaultMaxMessageBytes = 1 << 20
)

// Options configure a [Client]. The zero value is usable.
type Options struct {
	// MaxInFlight bounds the events in flight; Send waits for room. Zero
	// or less means DefaultMaxInFlight.
	MaxInFlight int
	// MaxBatch is the most events sent in one message; 1 sends each in a
	// message of its own. Zero or less means DefaultMaxBatch.
	MaxBatch int
	// MaxMessageBytes bounds a message sent to the sink, a batch or a lone
	// event. Set it to the sink's --max-body-bytes if that is lower: a
	// larger message ends the stream and fails every event on it. Send
	// refuses a larger event with RESOURCE_EXHAUSTED. Zero or less means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// CallOptions are added to those the client opens the stream with (for
	// example grpc.WaitForReady(true), or per-call credentials).
	CallOptions []grpc.CallOption
	// Credential, when set, gives the token the client authenticates with
	// (a JWT or an API key) and when it expires (zero: never). The client
	// sends it as the "authorization: Bearer" metadata of each stream it
	// opens and, with a quarter of its lifetime left, gets a fresh one and
	// sends it on the open stream (StreamRequest.credential), so that the
	// stream outlives its tokens without losing an event in flight.
	// Credential is called from the client's goroutines, with a context
	// that ends at Close.
	Credential func(ctx context.Context) (token string, expires time.Time, err error)
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return o
}

// errClosed fails the calls in flight at Close, and every Send after it.
var errClosed = status.Error(codes.Canceled, "eventproc client: closed")

// Client sends events over SinkService.Stream (see the package comment).
// Build it with [New]; its methods are safe for concurrent use.
type Client struct {
	conn grpc.ClientConnInterface
	opts Options
	ids  *eventid.Generator
	// slots holds a token per event in flight, given back by its answerer.
	slots chan struct{}
	// ctx ends with Close, and with it every stream.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the streams' goroutines

	mu     sync.Mutex
	cur    *stream // the open stream, nil before the first Send and after a failure
	closed bool
}

// New returns a Client sending events to the sink conn reaches. It opens
// nothing until the first Send; Close releases what it holds.
func New(conn grpc.ClientConnInterface, opts Options) *Client {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		conn:   conn,
		opts:   opts,
		ids:    eventid.New(),
		slots:  make(chan struct{}, opts.MaxInFlight),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Send sends ev to the sink and waits for its answer, or for ctx to end. It
// returns what the unary SinkService.Send would; errors are gRPC status
// errors. ev is only read, and not after Send returns.
//
// An idempotency key in ctx's outgoing metadata, as for a unary Send
// (metadata.AppendToOutgoingContext(ctx, "idempotency-key", key)), is sent
// with the event: a durable or idempotent route stores or processes an
// event sent again with the same key once, and answers it like the first.
func (c *Client) Send(ctx context.Context, ev *eventv1.Event) (*eventv1.SendResponse, error) {
	if ev == nil {
		return nil, status.Error(codes.InvalidArgument, "eventproc client: nil event")
	}
	if err := ctx.Err(); err != nil {
		return nil, contextError(err)
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, contextError(ctx.Err())
	case <-c.ctx.Done():
		return nil, errClosed
	}
	cl, err := c.newCall(ctx, ev)
	if err != nil {
		<-c.slots
		return nil, err
	}
	s, err := c.register(cl)
	if err != nil {
		<-c.slots
		return nil, err
	}
	// Never blocks: the queue has room for every slot.
	s.queue <- cl
	select {
	case r := <-cl.answer:
		return r.resp, r.err
	case <-ctx.Done():
		// The event keeps its slot until the sink answers it (or the
		// writer drops it unsent): see stream.complete.
		return nil, contextError(ctx.Err())
	}
}

// register adds cl to the pending calls of the open (or a new) stream.
func (c *Client) register(cl *call) (*stream, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.stream()
		if err != nil {
			return nil, err
		}
		err, gone := s.register(cl)
		if err == nil {
			return s, nil
		}
		// The stream broke before cl was registered, so cl may go on the
		// next one; once only.
		if !gone || attempt > 0 {
			return nil, err
		}
	}
}

// stream returns the open stream, opening one if there is none.
func (c *Client) stream() (*stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if c.cur == nil {
		c.cur = c.open()
	}
	return c.cur, nil
}

// dropped is called by a stream that failed: the next Send opens another.
func (c *Client) dropped(s *stream) {
	c.mu.Lock()
	if c.cur == s {
		c.cur = nil
	}
	c.mu.Unlock()
}

// Close ends the stream: the events in flight on it fail with CANCELLED,
// and so does every Send after Close. It waits for the client's goroutines
// to end. Close the Client before the grpc.ClientConn it uses.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	s := c.cur
	c.cur = nil
	c.mu.Unlock()
	if s != nil {
		s.fail(errClosed)
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// call is one event in flight.
type call struct {
	ctx context.Context // the caller's
	id  string
	// entry is the event's StreamRequest (encoded event), size its size.
	entry  *relayv1.StreamRequest
	size   int
	answer chan result // capacity 1: whoever answers never waits
}

// result is a call's answer.
type result struct {
	resp *eventv1.SendResponse
	err  error
}

// newCall encodes ev, with its id (given here when it has none) and ctx's
// deadline, as a StreamRequest, on the caller's goroutine: the writer only
// joins encoded events.
func (c *Client) newCall(ctx context.Context, ev *eventv1.Event) (*call, error) {
	b := make([]byte, ev.SizeVT())
	if err := vtcodec.MarshalTo(b, ev); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "eventproc client: event cannot be encoded: %v", err)
	}
	id := ev.GetId()
	if id == "" {
		// Append an encoded header with the id: the last occurrence wins.
		id = c.ids.Next()
		fill := relayv1.EventHeader{Id: id}
		extra := fill.SizeVT()
		b = append(b, make([]byte, extra)...)
		_, _ = fill.MarshalToSizedBufferVT(b[len(b)-extra:])
	}
	entry := &relayv1.StreamRequest{Event: b}
	// The key a unary Send would carry as metadata goes with the event:
	// the stream's metadata is not the event's.
	switch keys := metadata.ValueFromOutgoingContext(ctx, protocol.IdempotencyKey); len(keys) {
	case 0:
	case 1:
		entry.IdempotencyKey = keys[0]
	default:
		return nil, status.Error(codes.InvalidArgument, "eventproc client: more than one idempotency-key in the context's metadata")
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, contextError(context.DeadlineExceeded)
		}
		// The sink counts it from when it reads the event: it may answer
		// after the caller gave up, never before.
		entry.Timeout = durationpb.New(left)
	}
	n := entry.SizeVT()
	if n > c.opts.MaxMessageBytes {
		return nil, status.Errorf(codes.ResourceExhausted,
			"eventproc client: event of %d bytes encoded, more than the %d a message may have", n, c.opts.MaxMessageBytes)
	}
	return &call{ctx: ctx, id: id, entry: entry, size: n, answer: make(chan result, 1)}, nil
}

// contextError turns a context error into DEADLINE_EXCEEDED or CANCELLED.
func contextError(err error) error { return status.FromContextError(err).Err() }
