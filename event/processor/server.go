package processor

import (
	"log/slog"
	"sync"
	"sync/atomic"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventid"
	"github.com/eventproc/eventproc/internal/protocol"
	"google.golang.org/grpc"
)

// errShuttingDown answers streams and requests that arrive while the Server
// drains: the sink retries the event elsewhere and stops using the stream.
var errShuttingDown = protocol.Draining("processor: shutting down")

// ErrorDomain is the domain of the google.rpc.ErrorInfo details of the
// processor protocol; see eventv1.ErrorReason.
const ErrorDomain = protocol.ErrorDomain

// Server serves a [Handler] as an eventv1.ProcessorServiceServer. Create it
// with [NewServer]. Serve runs a complete gRPC server; Register adds the
// service to a gRPC server of your own instead. All methods are safe for
// concurrent use. A Server is served at most once.
type Server struct {
	eventv1.UnimplementedProcessorServiceServer

	handler Handler
	inliner Inliner // handler as an Inliner, or nil
	opts    Options
	log     *slog.Logger
	// sem holds one token per running handler, across all streams.
	sem chan struct{}

	served atomic.Bool
	// draining is set (under mu) just before drainCh is closed.
	draining atomic.Bool
	drainCh  chan struct{} // closed when draining starts
	closing  chan struct{} // closed when the grace is over: streams end now
	closeMu  sync.Once

	mu      sync.Mutex
	procs   int                // running Process calls
	drained chan struct{}      // closed when draining and procs is 0
	streams map[*stream]uint64 // live streams, by open order, for Publish
	nextSeq uint64             // order of the next stream to open

	ids *eventid.Generator // ids of published events that have none
}

// NewServer returns a Server that answers events with h. It panics if h is
// nil. It starts no goroutines.
func NewServer(h Handler, opts Options) *Server {
	if h == nil {
		panic("processor: NewServer with nil Handler")
	}
	opts = opts.withDefaults()
	inliner, _ := h.(Inliner)
	return &Server{
		ids:     eventid.New(),
		handler: h,
		inliner: inliner,
		opts:    opts,
		log:     opts.Logger,
		sem:     make(chan struct{}, opts.MaxConcurrency),
		drainCh: make(chan struct{}),
		closing: make(chan struct{}),
		drained: make(chan struct{}),
		streams: make(map[*stream]uint64),
	}
}

// Register adds the Server's ProcessorService to r, for callers that run
// their own grpc.Server instead of Serve. Build that server with
// [KeepaliveOptions] and a receive limit of at least gRPC's default 4 MiB,
// which the Server announces to sinks as its batch limit. Such callers own
// its shutdown: Process streams end when the sink closes them or the
// grpc.Server is stopped (GracefulStop alone waits for the sinks).
func (s *Server) Register(r grpc.ServiceRegistrar) {
	eventv1.RegisterProcessorServiceServer(r, s)
}

// Process implements eventv1.ProcessorServiceServer. It serves one stream
// from a sink until the sink closes it, the stream breaks or the Server
// shuts down; see the package documentation for the protocol.
func (s *Server) Process(gs grpc.BidiStreamingServer[eventv1.ProcessRequest, eventv1.ProcessResponse]) error {
	if !s.enter() {
		return errShuttingDown.Err()
	}
	defer s.leave()
	return newStream(s, gs).serve()
}

// enter counts a new Process call, unless the Server is draining.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.procs++
	return true
}

// leave uncounts a Process call and reports the end of draining.
func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs--
	if s.procs == 0 && s.draining.Load() {
		close(s.drained)
	}
}

// drain stops new streams and new requests; streams end once their
// in-flight handlers have answered. s.drained is closed when all have.
func (s *Server) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return
	}
	s.draining.Store(true)
	close(s.drainCh)
	if s.procs == 0 {
		close(s.drained)
	}
}

// closeStreams ends all streams at once, answered or not.
func (s *Server) closeStreams() {
	s.closeMu.Do(func() { close(s.closing) })
}
