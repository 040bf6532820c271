// Package pubsub is the sink's in-memory fan-out hub: processors' published
// events go in through Hub.Publish, and each subscribed client takes the
// events of the types it asked for from its Subscription.
//
// # Sequence numbers and ordering
//
// Publish gives every event a hub-wide sequence number, starting at 1 and
// increasing by one per event. Each subscription receives its events in
// strictly increasing sequence order, so events published by one goroutine
// arrive in the order they were published, and the sequence number of the
// last event a client received is a sound resume point (the SSE
// Last-Event-ID): resubscribing with it replays the retained events after it,
// then continues live, with no duplicate and no gap. Sequence numbers restart
// at 1 with a new Hub.
//
// # Slow subscribers
//
// Publish never blocks on a subscriber. Each subscription has a bounded
// buffer (Config.BufferSize); when it is full the hub either drops the
// subscription's oldest buffered event (DropOldest, the default) or ends the
// subscription with ErrSlowSubscriber (Disconnect). Dropped events are
// counted exactly: the next event the subscriber receives carries in its
// Missed field the number of matching events lost since the previous one. A
// stuck subscriber therefore costs the publisher and other subscribers
// nothing but the copy of an event pointer into its full buffer.
//
// # History
//
// The hub retains the latest Config.HistorySize events of each type
// (DefaultHistorySize unless set; Config.DisableHistory retains none). A
// subscriber resuming from a sequence number whose successors were partly
// evicted gets the retained ones, the first carrying in Missed the number
// of matching events lost. That number is exact as long as the hub still
// remembers the sequence numbers of the lost events, which it does for the
// latest max(4*HistorySize, 1024) events evicted from each type's history.
// For events evicted longer ago it is an upper bound, and it is never zero
// when an event was lost.
//
// # Concurrency
//
// Hub methods are safe for concurrent use. Publish holds the hub's mutex
// while it assigns the sequence number, records the event in the history and
// appends it to each matching buffer: O(1) per subscriber, under that
// subscription's own short mutex, never waiting for the subscriber to read.
// Holding the hub's mutex across the fan-out is what makes each
// subscription's order the sequence order, and what lets Subscribe snapshot
// the history and register atomically with respect to Publish. Subscribers
// are indexed by type, so Publish visits only the subscriptions that want
// the event; concurrent publishers take turns.
//
// A Subscription's Next must be called by one goroutine at a time; its
// Close, Done, Err and Missed may be called from any goroutine.
//
// The package starts no goroutines of its own: Next waits on a channel, and
// a subscription watches its context with context.AfterFunc, whose goroutine
// only runs, briefly, once the context is done. Ended subscriptions are
// removed from the hub and their buffers released.
//
// Published events are shared by every subscriber and by the history, so
// nobody may modify an event after publishing it.
package pubsub
