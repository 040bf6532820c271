package pubsub_test

import (
	"context"
	"fmt"

	"github.com/eventproc/eventproc/event/pubsub"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

func Example() {
	ctx := context.Background()
	hub := pubsub.New(pubsub.Config{HistorySize: 100})
	defer hub.Close()

	hub.Publish(&eventv1.Event{Id: "a", Type: eventv1.Type_TYPE_HELLO})
	hub.Publish(&eventv1.Event{Id: "b", Type: eventv1.Type_TYPE_GOODBYE})
	hub.Publish(&eventv1.Event{Id: "c", Type: eventv1.Type_TYPE_HELLO})

	// Resume after sequence number 1, as a client sending Last-Event-ID: 1.
	sub, err := hub.Subscribe(ctx, []eventv1.Type{eventv1.Type_TYPE_HELLO}, "1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	hub.Publish(&eventv1.Event{Id: "d", Type: eventv1.Type_TYPE_HELLO})

	for range 2 {
		resp, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(resp.GetSequence(), resp.GetEvent().GetId(), resp.GetMissed())
	}
	// Output:
	// 3 c 0
	// 4 d 0
}
