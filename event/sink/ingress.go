package sink

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/workpool"
)

// maxInFlightPerClientStream bounds the events one SinkService.Stream client
// may have in flight. Past it the sink stops reading the client's stream, so
// gRPC flow control pushes back on the client instead of memory growing.
const maxInFlightPerClientStream = 1024

// Stream implements [eventv1.SinkServiceServer]: it dispatches every event
// the client sends concurrently and answers each one, in completion order,
// with a StreamResponse carrying the event's id. A failed event is answered
// with its status; the stream itself ends only when the client closes it or
// goes away.
func (s *Sink) Stream(ss eventv1.SinkService_StreamServer) error {
	ctx := ss.Context()
	out := make(chan *eventv1.StreamResponse, maxInFlightPerClientStream)
	slots := make(chan struct{}, maxInFlightPerClientStream)
	workers := workpool.New()
	var inflight sync.WaitGroup

	// Writer: the only goroutine that sends on ss. It ends once the reader
	// and every dispatch have finished and out is drained.
	writerDone := make(chan error, 1)
	go func() {
		var err error
		for resp := range out {
			if err == nil {
				err = ss.Send(resp)
			}
		}
		writerDone <- err
	}()

	// Reader: this goroutine. Each event is dispatched on a pooled
	// goroutine; at most maxInFlightPerClientStream at once.
	err := func() error {
		defer workers.Close()
		for {
			req, err := ss.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			inflight.Add(1)
			workers.Go(func() {
				out <- s.dispatchStreamed(ctx, req)
				<-slots
				inflight.Done()
			})
		}
	}()
	inflight.Wait()
	close(out)
	if werr := <-writerDone; err == nil {
		err = werr
	}
	if err != nil && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

func (s *Sink) dispatchStreamed(ctx context.Context, req *eventv1.StreamRequest) *eventv1.StreamResponse {
	ev := req.GetEvent()
	if ev != nil && ev.Id == "" {
		ev.Id = s.ids.next()
	}
	var limit time.Duration
	if d := req.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return &eventv1.StreamResponse{Id: ev.GetId(), Result: &eventv1.StreamResponse_Error{
				Error: status.New(codes.InvalidArgument, "timeout must be a positive duration").Proto()}}
		}
		limit = d.AsDuration()
	}
	resp, err := s.dispatchWithin(ctx, ev, limit)
	if err != nil {
		return &eventv1.StreamResponse{Id: ev.GetId(), Result: &eventv1.StreamResponse_Error{Error: status.Convert(err).Proto()}}
	}
	return &eventv1.StreamResponse{Id: ev.GetId(), Result: &eventv1.StreamResponse_Response{Response: resp}}
}
