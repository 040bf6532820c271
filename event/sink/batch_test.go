package sink

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// batchProcessor is a fake processor that echoes, and that reads and
// answers batches when announce is set: the requests of one message are
// answered in one message.
type batchProcessor struct {
	eventv1.UnimplementedProcessorServiceServer
	announce bool

	sinkAnnounced atomic.Bool  // the sink's request headers said it reads batches
	batches       atomic.Int64 // messages with a batch
	most          atomic.Int64 // most requests in one message
	largest       atomic.Int64 // largest message, encoded
}

func (f *batchProcessor) Process(ps eventv1.ProcessorService_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(ps.Context())
	if v := md.Get(protocol.BatchHeader); len(v) == 1 && v[0] != "" {
		f.sinkAnnounced.Store(true)
	}
	hdr := metadata.MD{}
	if f.announce {
		hdr = metadata.Pairs(protocol.BatchHeader, "4194304")
	}
	if err := ps.SendHeader(hdr); err != nil {
		return err
	}
	for {
		req, err := ps.Recv()
		if err != nil {
			return nil
		}
		if n := int64(proto.Size(req)); n > f.largest.Load() {
			f.largest.Store(n) // one receiving goroutine per stream, one stream
		}
		reqs := req.GetBatch()
		if len(reqs) > 0 {
			f.batches.Add(1)
		} else {
			reqs = []*eventv1.ProcessRequest{req}
		}
		for n := int64(len(reqs)); ; {
			m := f.most.Load()
			if n <= m || f.most.CompareAndSwap(m, n) {
				break
			}
		}
		var out []*eventv1.ProcessResponse
		for _, r := range reqs {
			if !r.GetCancel() {
				out = append(out, echo(ps.Context(), r))
			}
		}
		switch {
		case len(out) == 1 || !f.announce && len(out) > 0:
			for _, resp := range out {
				if err := ps.Send(resp); err != nil {
					return nil
				}
			}
		case len(out) > 1:
			if err := ps.Send(&eventv1.ProcessResponse{Batch: out}); err != nil {
				return nil
			}
		}
	}
}

// gatedSends holds every message the sink sends to processors until open
// is closed, so that requests pile up behind the first; held counts the
// requests in the messages waiting at the gate.
func gatedSends(open <-chan struct{}, held *atomic.Int64) grpc.DialOption {
	return grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		return &gatedStream{ClientStream: cs, open: open, held: held}, err
	})
}

type gatedStream struct {
	grpc.ClientStream
	open <-chan struct{}
	held *atomic.Int64
}

func (g *gatedStream) SendMsg(m any) error {
	n := int64(1)
	if req, ok := m.(*relayv1.ProcessRequest); ok && len(req.Batch) > 0 {
		n = int64(len(req.Batch))
	}
	g.held.Add(n)
	defer g.held.Add(-n)
	select {
	case <-g.open:
	case <-g.Context().Done():
	}
	return g.ClientStream.SendMsg(m)
}

// Requests that wait for a stream's writer together go to a processor that
// reads batches as one message, and its batched answers reach each caller;
// a processor that does not announce batches gets every request on its
// own. Either way every caller gets its own reply.
//
// With a small message limit, a batch is split so that no message is over
// it.
func TestBatches(t *testing.T) {
	for _, tt := range []struct {
		announce bool
		limit    int // MaxMessageBytes; 0 for the default
	}{{true, 0}, {false, 0}, {true, 300}} {
		announce := tt.announce
		t.Run(fmt.Sprintf("announce=%v,limit=%d", announce, tt.limit), func(t *testing.T) {
			f := &batchProcessor{announce: announce}
			addr, _ := startFake(t, f)
			open := make(chan struct{})
			var held atomic.Int64
			s := startSink(t, Config{Routes: helloRoute(addr), StreamsPerTarget: 1, MaxMessageBytes: tt.limit,
				DialOptions: []grpc.DialOption{gatedSends(open, &held)}})
			st := s.routes[eventv1.Type_TYPE_HELLO].pick(nil)
			if (st.batchLimit > 0) != announce {
				t.Fatalf("stream batch limit %d, want batches %v", st.batchLimit, announce)
			}
			const n = 40
			ctx := testCtx(t)
			wait := sendEchoes(ctx, s, n)
			// The writer holds the first message at the gate; the requests
			// that came later queue behind it. (A batch split by the limit
			// is partly in the writer's hands: then wait for all to be in
			// flight instead.)
			waiting := func() int64 { return held.Load() + int64(len(st.sendq)) }
			if tt.limit > 0 {
				waiting = st.pending.Load
			}
			deadline := time.Now().Add(testTimeout)
			for waiting() < n {
				if time.Now().After(deadline) {
					t.Fatalf("%d requests waiting, want %d", waiting(), n)
				}
				runtime.Gosched()
			}
			close(open)
			for _, err := range wait() {
				t.Fatal(err)
			}
			if !f.sinkAnnounced.Load() {
				t.Error("the sink did not announce that it reads batches")
			}
			if tt.limit > 0 {
				if f.largest.Load() > int64(tt.limit) || f.batches.Load() < 2 {
					t.Errorf("%d batches, largest message %d bytes: want several, none over %d", f.batches.Load(), f.largest.Load(), tt.limit)
				}
				return
			}
			if announce && (f.batches.Load() == 0 || f.most.Load() < n/2) {
				t.Errorf("%d batches, at most %d requests in one; want at least %d in one", f.batches.Load(), f.most.Load(), n/2)
			}
			if !announce && f.batches.Load() != 0 {
				t.Errorf("%d batches sent to a processor that does not read them", f.batches.Load())
			}
		})
	}
}
