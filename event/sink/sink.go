package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	// metrics is nil when Config.Metrics is; durm too, and without a
	// durable route.
	metrics *metrics
	durm    *durableMetrics
	// js is the durable store, nil without durable routes; kv its bucket
	// of idempotency keys, once created.
	js jetstream.JetStream
	kv atomic.Pointer[jetstream.KeyValue]
	// pub publishes durable events asynchronously (storeEvent); storing
	// holds those not answered yet.
	pub     jetstream.JetStream
	storing storingSet
	// ps is the shared pub/sub stream's JetStream, nil without
	// Config.SharedPubSub; psReady is closed once the hub caught up with
	// the stream.
	ps      jetstream.JetStream
	psReady chan struct{}

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
		rt := &route{typ: r.Type, name: r.Type.String(), broadcast: r.Broadcast, durable: r.Durable,
			idempotent: r.Idempotent}
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
	if cfg.Durable.Conn != nil {
		if s.js, err = jetstream.New(cfg.Durable.Conn); err != nil {
			return nil, fmt.Errorf("%w: durable store: %v", ErrInvalidConfig, err)
		}
		s.pub, err = jetstream.New(cfg.Durable.Conn,
			jetstream.WithPublishAsyncMaxPending(maxStoring),
			// A publish the store never answers frees its place.
			jetstream.WithPublishAsyncTimeout(cfg.Timeout),
			jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) { s.storeAcked(m, ack) }),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { s.storeFailed(m, err, true) }))
		if err != nil {
			return nil, fmt.Errorf("%w: durable store: %v", ErrInvalidConfig, err)
		}
	}
	if cfg.SharedPubSub != nil {
		if err = s.newSharedPubSub(); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics != nil {
		if s.metrics, err = newMetrics(cfg.Metrics, s); err != nil {
			return nil, fmt.Errorf("%w: registering metrics: %v", ErrInvalidConfig, err)
		}
		if s.js != nil && s.anyDurable() {
			if s.durm, err = newDurableMetrics(cfg.Metrics); err != nil {
				return nil, fmt.Errorf("%w: registering metrics: %v", ErrInvalidConfig, err)
			}
			for _, r := range s.routes {
				if r.durable {
					s.durm.init(r.name)
				}
			}
			if err = cfg.Metrics.Register(newStoreGauges(s)); err != nil {
				return nil, fmt.Errorf("%w: registering metrics: %v", ErrInvalidConfig, err)
			}
		}
	}
	return s, nil
}

// anyDurable reports whether a route is durable.
func (s *Sink) anyDurable() bool {
	for _, r := range s.routes {
		if r.durable {
			return true
		}
	}
	return false
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
	if s.js != nil {
		wg.Go(func() { s.runDurable(ctx) })
	}
	if s.ps != nil {
		wg.Go(func() { s.runSharedPubSub(ctx) })
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
	if s.ps != nil {
		s.publishShared(ev)
		return
	}
	s.hub.Publish(ev)
}
