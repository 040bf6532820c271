package client_test

import (
	"context"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/client"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Send events to the sink of `make run` (gRPC on localhost:8081) from as
// many goroutines as you like: they share one stream.
func Example() {
	conn, err := grpc.NewClient("localhost:8081", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c := client.New(conn, client.Options{})
	defer c.Close() // before conn.Close

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, &eventv1.Event{
		Type:    eventv1.Type_TYPE_HELLO,
		Payload: structpb.NewStringValue("hello from Go"),
	})
	switch status.Code(err) {
	case codes.OK:
		log.Printf("%v: %v", resp.GetOutcome(), resp.GetEvent())
	case codes.Unavailable:
		log.Printf("the sink is not there (yet): %v", err)
	default:
		log.Printf("this event failed: %v", err)
	}
}
