package sink

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// publisher is a processor that, once its stream is open, publishes the
// events handed to it on pub, then answers nothing else.
type publisher struct {
	eventv1.UnimplementedProcessorServiceServer
	pub chan *eventv1.Event
}

func (p *publisher) Process(ps eventv1.ProcessorService_ProcessServer) error {
	if err := ps.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case ev := <-p.pub:
			if err := ps.Send(&eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Publish{Publish: ev}}); err != nil {
				return err
			}
		case <-ps.Context().Done():
			return nil
		}
	}
}

// Events a processor publishes reach each of 1,000 gRPC subscribers exactly
// once and in order.
func TestFanOutThousandSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const subscribers, events = 1000, 50
	p := &publisher{pub: make(chan *eventv1.Event)}
	addr, _ := startFake(t, p)
	s := startSink(t, Config{
		Routes:           helloRoute(addr),
		StreamsPerTarget: 1,
		PubSub:           pubsub.Config{BufferSize: events},
	})
	client := serveSink(t, s)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	// Subscribe from the start of the history (last id 0), so no
	// subscriber can miss an event published before it registered.
	subs := make([]eventv1.SinkService_SubscribeClient, subscribers)
	for i := range subs {
		sub, err := client.Subscribe(ctx, &eventv1.SubscribeRequest{Types: []eventv1.Type{eventv1.Type_TYPE_HELLO}, LastEventId: "0"})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
	}
	for i := range events {
		ev := hello(strconv.Itoa(i))
		ev.Id = fmt.Sprint("pub-", i)
		select {
		case p.pub <- ev:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	for i, sub := range subs {
		wg.Go(func() {
			for want := range events {
				resp, err := sub.Recv()
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d events: %v", i, want, err)
					return
				}
				if got := resp.GetEvent().GetPayload().GetStringValue(); got != strconv.Itoa(want) || resp.GetMissed() != 0 {
					errs <- fmt.Errorf("subscriber %d: got %q (missed %d), want %d", i, got, resp.GetMissed(), want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Stats().PubSub.Subscribers; got != subscribers {
		t.Errorf("%d subscribers registered, want %d", got, subscribers)
	}
}
