package pubsub

import (
	"errors"
	"fmt"
)

// Defaults applied by New to the zero fields of a Config.
const (
	// DefaultHistorySize is the default number of events retained per type.
	DefaultHistorySize = 1024
	// DefaultBufferSize is the default per-subscriber buffer.
	DefaultBufferSize = 256
	// DefaultMaxSubscribers is the default subscriber limit.
	DefaultMaxSubscribers = 10000
)

// Policy says what the hub does with a subscriber whose buffer is full when
// an event for it is published. Either way the publisher never waits.
type Policy int

const (
	// DropOldest, the default, discards the subscriber's oldest buffered
	// event; the next event it receives reports the loss in Missed.
	DropOldest Policy = iota
	// Disconnect ends the subscription with ErrSlowSubscriber; the client
	// can resubscribe from its last sequence number and catch up.
	Disconnect
)

// String returns the policy's name, as used in configuration.
func (p Policy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case Disconnect:
		return "disconnect"
	default:
		return fmt.Sprintf("Policy(%d)", int(p))
	}
}

// Config configures a Hub. The zero value is valid and means all defaults.
type Config struct {
	// HistorySize is how many of the latest events of each type the hub
	// retains for resuming subscribers. Zero means DefaultHistorySize;
	// negative is invalid (set DisableHistory to retain nothing).
	HistorySize int
	// DisableHistory turns the history off: resuming subscribers receive new
	// events only (the first reports what was missed). HistorySize must be 0.
	DisableHistory bool
	// BufferSize is how many events the hub buffers for each subscriber.
	// Zero means DefaultBufferSize; negative is invalid.
	BufferSize int
	// Policy says what to do when a subscriber's buffer is full. The zero
	// value is DropOldest.
	Policy Policy
	// MaxSubscribers caps live subscriptions (ErrTooManySubscribers beyond).
	// Zero means DefaultMaxSubscribers; negative is invalid.
	MaxSubscribers int
	// External makes the hub number events from outside: PublishAt takes
	// each event with its sequence number (a shared store's), Publish must
	// not be used, and resume points carry the epoch set by Reset. A
	// resuming subscriber skips live events up to its resume point, which
	// may lie ahead of this hub's latest event.
	External bool
}

// Validate reports every problem in c, each wrapping ErrInvalidConfig, or nil
// when New would accept c.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.HistorySize < 0 {
		bad("HistorySize %d is negative (set DisableHistory to retain nothing)", c.HistorySize)
	}
	if c.DisableHistory && c.HistorySize != 0 {
		bad("HistorySize %d is set together with DisableHistory", c.HistorySize)
	}
	if c.BufferSize < 0 {
		bad("BufferSize %d is negative", c.BufferSize)
	}
	if c.Policy != DropOldest && c.Policy != Disconnect {
		bad("unknown %v (want DropOldest or Disconnect)", c.Policy)
	}
	if c.MaxSubscribers < 0 {
		bad("MaxSubscribers %d is negative", c.MaxSubscribers)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with its zero fields replaced by the defaults and
// HistorySize set to the number of events actually retained per type.
func (c Config) withDefaults() Config {
	switch {
	case c.DisableHistory:
		c.HistorySize = 0
	case c.HistorySize == 0:
		c.HistorySize = DefaultHistorySize
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	return c
}
