package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/eventproc/eventproc/event/processor"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// A processor that shouts: it replies with the payload in upper case.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	shout := processor.HandlerFunc(func(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		return &eventv1.Event{
			Id:      ev.GetId(),
			Type:    ev.GetType(),
			Payload: structpb.NewStringValue(strings.ToUpper(ev.GetPayload().GetStringValue())),
		}, nil
	})
	srv := processor.NewServer(shout, processor.Options{Logger: slog.New(slog.DiscardHandler)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()

	// What the sink does: open a Process stream and send a request.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	streamCtx, closeStream := context.WithCancel(context.Background())
	defer closeStream()
	stream, err := eventv1.NewProcessorServiceClient(conn).Process(streamCtx)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = stream.Send(&eventv1.ProcessRequest{Id: 1, Event: &eventv1.Event{
		Id:      "ev-1",
		Type:    eventv1.Type_TYPE_HELLO,
		Payload: structpb.NewStringValue("hello, world"),
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := stream.Recv()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("answer to %d: %s %s %q\n", resp.GetId(), resp.GetReply().GetId(),
		resp.GetReply().GetType(), resp.GetReply().GetPayload().GetStringValue())

	stop() // Serve shuts down gracefully, though the stream is still open
	fmt.Println("Serve:", <-served)
	// Output:
	// answer to 1: ev-1 TYPE_HELLO "HELLO, WORLD"
	// Serve: <nil>
}
