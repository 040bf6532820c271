package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// durableStream is the sink's stream of durable events waiting for
// delivery (docs/design.md, "What is stored where"). Its retention is a
// work queue: an event leaves it once a processor answered it and the
// sink acked it.
const durableStream = "EVENTPROC_DURABLE"

// storeState is a sample of the durable stream.
type storeState struct {
	stored  uint64 // events ever stored: the last sequence
	waiting uint64 // events stored and not yet delivered (or acked)
}

// done is how many events were delivered and acked so far.
func (s storeState) done() uint64 { return s.stored - s.waiting }

// storeWatch reads the durable stream's state over a NATS connection to a
// durable sink's embedded server.
type storeWatch struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// watchStore connects to the NATS server at addr.
func watchStore(addr string) (*storeWatch, error) {
	nc, err := nats.Connect("nats://"+addr, nats.Name("eventproc-bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connecting to the durable store at %s: %w", addr, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &storeWatch{nc: nc, js: js}, nil
}

// sample reads the stream's state.
func (w *storeWatch) sample() (storeState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := w.js.Stream(ctx, durableStream)
	if err != nil {
		return storeState{}, fmt.Errorf("stream %s: %w", durableStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return storeState{}, fmt.Errorf("stream %s: %w", durableStream, err)
	}
	return storeState{stored: info.State.LastSeq, waiting: info.State.Msgs}, nil
}

func (w *storeWatch) close() { w.nc.Close() }
