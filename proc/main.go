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
	// gRPC's proto codec, through the code vtprotobuf generates for
	// event/v1 (internal/vtcodec): proc's answers encode in a fraction of
	// the time. Registered here, before any gRPC use, as encoding
	// requires; a processor of your own works the same without it.
	encoding.RegisterCodecV2(vtcodec.Codec{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proc:", err)
		os.Exit(1)
	}
}
