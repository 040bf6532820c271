// Command proc is the echo processor: it serves event.v1.ProcessorService
// with the processor SDK and answers every event with the same event. A
// flag or per-event metadata makes it consume events, fail them with a
// chosen status or take its time, to exercise the sink. Run `proc -h` for
// the flags. Unless the GOGC environment variable is set, proc runs with
// GOGC=400.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/encoding"

	"github.com/eventproc/eventproc/internal/vtcodec"
)

func main() {
	// Before any gRPC use, as package encoding requires; optional for a
	// processor (see internal/vtcodec).
	encoding.RegisterCodecV2(vtcodec.Codec{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proc:", err)
		os.Exit(1)
	}
}
