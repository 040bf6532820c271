package pubsub

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them with
// details; test for them with errors.Is.
var (
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("pubsub: invalid config")
	// ErrInvalidTypes means Subscribe got no types, TYPE_UNSPECIFIED or an
	// undefined type. The sink maps it to INVALID_ARGUMENT.
	ErrInvalidTypes = errors.New("pubsub: invalid types")
	// ErrInvalidLastEventID means Subscribe got a last event id that is not a
	// decimal sequence number. The sink maps it to INVALID_ARGUMENT.
	ErrInvalidLastEventID = errors.New("pubsub: invalid last event id")
	// ErrTooManySubscribers means the hub already has Config.MaxSubscribers
	// subscriptions. The sink maps it to RESOURCE_EXHAUSTED.
	ErrTooManySubscribers = errors.New("pubsub: too many subscribers")
	// ErrSlowSubscriber ends a subscription whose buffer overflowed under
	// the Disconnect policy.
	ErrSlowSubscriber = errors.New("pubsub: subscriber too slow")
	// ErrReset ends every subscription of a hub whose history Reset
	// replaced (the shared stream was recreated): the client resubscribes
	// from its last event id and is told of the reset.
	ErrReset = errors.New("pubsub: history reset")
	// ErrClosed ends a subscription closed by Subscription.Close or
	// Hub.Close, and is returned by Subscribe once the hub is closed.
	ErrClosed = errors.New("pubsub: closed")
)
