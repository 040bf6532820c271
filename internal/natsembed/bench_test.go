package natsembed

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// processCPU is the CPU time this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStoreRoundTrip is the store's share of a durable event, alone:
// an embedded server, a file-backed work-queue stream like the sink's, a
// publisher with 64 asynchronous publishes in flight, and a pull consumer
// acking each message as it comes, on in-process connections. No gRPC, no
// processor: what it reports (msgs/s, CPU µs/msg over every core) is the
// ceiling of durable intake with delivery on this machine
// (docs/performance.md, "Durable intake: the ceiling").
func BenchmarkStoreRoundTrip(b *testing.B) {
	st, err := Start(Options{DataDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	js, err := jetstream.New(st.Conn(), jetstream.WithPublishAsyncMaxPending(64))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"b.*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "B", jetstream.ConsumerConfig{Durable: "c",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10000})
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range b.N {
			m, err := msgs.Next()
			if err != nil {
				b.Error(err)
				return
			}
			if err := m.Ack(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	event := make([]byte, 80) // about a hello event as the sink stores it
	cpu0 := processCPU(b)
	b.ResetTimer()
	for range b.N {
		if _, err := js.PublishAsync("b.hello", event); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	wg.Wait()
	b.StopTimer()
	msgs.Stop()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/msg")
}
