package sink

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// SubscribeEvents subscribes to the events processors publish, as
// [Sink.Subscribe] does, for callers that deliver them another way (the
// HTTP front's Server-Sent Events). It asks Config.Authorize about each
// type. Errors are status errors. The
// subscription ends when ctx does; close it when done with it.
func (s *Sink) SubscribeEvents(ctx context.Context, types []eventv1.Type, lastEventID string) (*pubsub.Subscription, error) {
	for _, t := range types {
		if _, known := eventv1.Type_name[int32(t)]; !known || t == eventv1.Type_TYPE_UNSPECIFIED {
			continue // the hub refuses it
		}
		if err := s.authorize(ctx, ActionSubscribe, t); err != nil {
			return nil, err
		}
	}
	if !s.sharedPubSubReady() {
		return nil, status.Error(codes.Unavailable, "shared pub/sub is catching up with its stream (NATS JetStream); retry later")
	}
	sub, err := s.hub.Subscribe(ctx, types, lastEventID)
	if err != nil {
		return nil, SubscriptionError(err)
	}
	return sub, nil
}

// Subscribe implements [eventv1.SinkServiceServer]: it sends the response
// headers once subscribed, then streams published events of the requested types until the client goes away, the subscriber
// falls too far behind under the Disconnect policy (RESOURCE_EXHAUSTED), or
// the sink shuts down (UNAVAILABLE).
func (s *Sink) Subscribe(req *eventv1.SubscribeRequest, ss eventv1.SinkService_SubscribeServer) error {
	ctx := ss.Context()
	sub, err := s.SubscribeEvents(ctx, req.GetTypes(), req.GetLastEventId())
	if err != nil {
		return err
	}
	defer sub.Close()
	// Headers now tell the client that the subscription is in place (and
	// was allowed) before any event comes.
	if err := ss.SendHeader(nil); err != nil {
		return err
	}
	for {
		resp, err := sub.Next(ctx)
		if err != nil {
			return SubscriptionError(err)
		}
		if err := ss.Send(resp); err != nil {
			return err
		}
	}
}

// SubscriptionError turns an error of package pubsub into a status error.
func SubscriptionError(err error) error {
	switch {
	case errors.Is(err, pubsub.ErrInvalidTypes), errors.Is(err, pubsub.ErrInvalidLastEventID):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, pubsub.ErrTooManySubscribers):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, pubsub.ErrSlowSubscriber):
		return status.Error(codes.ResourceExhausted, "subscriber too slow: it fell behind by more than its buffer of events and was disconnected")
	case errors.Is(err, pubsub.ErrReset):
		return status.Error(codes.Unavailable, "the shared pub/sub history was reset (its stream was created anew): subscribe again with your last event id")
	case errors.Is(err, pubsub.ErrClosed):
		return status.Error(codes.Unavailable, "sink is shutting down")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return status.Convert(err).Err()
	}
}

// Stats reports counters for monitoring.
func (s *Sink) Stats() Stats {
	st := Stats{PubSub: s.hub.Stats()}
	for _, t := range s.targets {
		st.DroppedReplies += t.dropped.Load()
		st.Reconnects += t.reconnect.Load()
	}
	return st
}

// Stats are the sink's counters.
type Stats struct {
	// DroppedReplies counts processor answers for unknown or expired ids.
	DroppedReplies uint64
	// Reconnects counts processor streams re-opened after breaking.
	Reconnects uint64
	// PubSub are the hub's counters.
	PubSub pubsub.Stats
}
