package client

import (
	"context"
	"testing"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// BenchmarkSend sends events through a real sink to a real echo processor
// on loopback, from many goroutines at once (b.SetParallelism(16)): with
// this client over one Stream, and with the unary Send, one call per event.
// ns/op is the whole process's time per event, client, sink and processor
// together.
func BenchmarkSend(b *testing.B) {
	e := startEnv(b, echo)
	ev := hello("", "hello")
	b.Run("client", func(b *testing.B) {
		c := newClient(b, e.conn, Options{})
		run(b, func(ctx context.Context) error {
			_, err := c.Send(ctx, ev)
			return err
		})
	})
	b.Run("unary", func(b *testing.B) {
		unary := eventv1.NewSinkServiceClient(e.conn)
		req := &eventv1.SendRequest{Event: ev}
		run(b, func(ctx context.Context) error {
			_, err := unary.Send(ctx, req)
			return err
		})
	})
}

func run(b *testing.B, send func(context.Context) error) {
	ctx := testCtx(b)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := send(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
