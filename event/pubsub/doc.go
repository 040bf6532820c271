// Package pubsub is the sink's in-memory fan-out hub: processors' published
// events go in through Hub.Publish, and each subscribed client takes the
// events of the types it asked for from its Subscription.
//
// # Sequence numbers and ordering
//
// Publish gives every event a hub-wide sequence number, from 1 up by one
// per event (restarting with a new Hub). Each subscription receives its
// events in increasing sequence order (one goroutine's events in the order
// it published them), so the sequence number of the last event a client
// received is a sound resume point (the SSE Last-Event-ID):
// resubscribing with it replays the retained events after it, then goes on
// live, with no duplicate and no gap.
//
// # Slow subscribers
//
// Publish never blocks on a subscriber. Each subscription has a bounded
// buffer (Config.BufferSize); when it is full the hub either drops the
// subscription's oldest buffered event (DropOldest, the default) or ends the
// subscription with ErrSlowSubscriber (Disconnect). Dropped events are
// counted exactly: the next event the subscriber receives carries in its
// Missed field the number of matching events lost since the previous one.
//
// # History
//
// The hub retains the latest Config.HistorySize events of each type
// (DefaultHistorySize unless set; Config.DisableHistory retains none). A
// subscriber resuming after partly evicted events gets the retained ones,
// the first carrying in Missed the number of matching events lost: exact
// while the hub remembers the evicted sequence numbers (the latest
// max(4*HistorySize, 1024) per type), an upper bound beyond that, and never
// zero when an event was lost.
//
// # Concurrency
//
// Hub methods are safe for concurrent use. Publish holds the hub's mutex
// while it numbers the event, records it in the history and appends it to
// the buffer of each subscription of its type, never waiting for a
// subscriber. Holding it across the fan-out keeps each subscription in
// sequence order and lets Subscribe snapshot the history and register
// atomically with respect to Publish.
//
// A Subscription's Next must be called by one goroutine at a time; its
// Close, Done, Err and Missed may be called from any goroutine.
//
// The package starts no goroutines of its own (a subscription watches its
// context with context.AfterFunc). Ended subscriptions are removed from the
// hub and their buffers released.
//
// Published events are shared by every subscriber and by the history, so
// nobody may modify an event after publishing it.
package pubsub
