package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// The reference servers are what the sink is measured against: the least a
// server must do to answer the same request over the same protocol. Each
// runs as a subcommand of this program in a process of its own, as the sink
// does, and prints "listening on ADDR" on stdout once it accepts
// connections.

// serveRef runs the reference server named by cmd until ctx ends.
func serveRef(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen `address`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	defer lis.Close()
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	switch cmd {
	case cmdHTTPEcho:
		return serveHTTP(ctx, lis, http.HandlerFunc(httpEcho))
	case cmdGRPCEcho:
		gs := grpc.NewServer()
		eventv1.RegisterSinkServiceServer(gs, unaryEcho{})
		return serveGRPC(ctx, lis, gs)
	case cmdStreamEcho:
		gs := grpc.NewServer()
		eventv1.RegisterProcessorServiceServer(gs, streamEcho{})
		return serveGRPC(ctx, lis, gs)
	default:
		return fmt.Errorf("unknown reference server %q", cmd)
	}
}

// Subcommands of this program that run a reference server.
const (
	cmdHTTPEcho   = "serve-http-echo"
	cmdGRPCEcho   = "serve-grpc-echo"
	cmdStreamEcho = "serve-stream-echo"
)

// httpEcho is the REST reference: it decodes the JSON event with protojson
// and encodes it back, as the sink's HTTP front must at least do.
func httpEcho(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ev eventv1.Event
	if err := protojson.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := protojson.Marshal(&ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// unaryEcho is the gRPC reference: SinkService.Send answering with the
// event it got.
type unaryEcho struct {
	eventv1.UnimplementedSinkServiceServer
}

func (unaryEcho) Send(_ context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return &eventv1.SendResponse{Event: req.GetEvent(), Outcome: eventv1.Outcome_OUTCOME_REPLIED}, nil
}

// streamEcho is the stream reference: ProcessorService.Process answering
// every request on the stream with its event and id, in order, from the
// receiving goroutine (one goroutine may both receive and send).
type streamEcho struct {
	eventv1.UnimplementedProcessorServiceServer
}

func (streamEcho) Process(ps grpc.BidiStreamingServer[eventv1.ProcessRequest, eventv1.ProcessResponse]) error {
	for {
		req, err := ps.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &eventv1.ProcessResponse{Id: req.GetId(), Result: &eventv1.ProcessResponse_Reply{Reply: req.GetEvent()}}
		if err := ps.Send(resp); err != nil {
			return err
		}
	}
}

// serveHTTP serves h on lis until ctx ends.
func serveHTTP(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveGRPC serves gs on lis until ctx ends.
func serveGRPC(ctx context.Context, lis net.Listener, gs *grpc.Server) error {
	stop := context.AfterFunc(ctx, func() {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			gs.Stop()
		}
	})
	defer stop()
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
