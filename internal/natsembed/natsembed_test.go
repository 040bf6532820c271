package natsembed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestStoreSurvivesRestart stores a message, closes the store, starts it
// again on the same directory and finds the message there.
func TestStoreSurvivesRestart(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	st, err := Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Embedded() || st.ListenAddr() != nil {
		t.Errorf("Embedded() = %v, ListenAddr() = %v; want true, nil (no port without Listen)", st.Embedded(), st.ListenAddr())
	}
	js, err := jetstream.New(st.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st.Close() // idempotent

	st, err = Start(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	js, err = jetstream.New(st.Conn())
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "kept" {
		t.Errorf("after a restart, message 1 = %q, want %q", m.Data, "kept")
	}
}

// TestListen lets a second client connect over TCP.
func TestListen(t *testing.T) {
	st, err := Start(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := st.ListenAddr()
	if addr == nil {
		t.Fatal("ListenAddr() = nil with Listen set")
	}
	other, err := Start(Options{URL: "nats://" + addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Embedded() {
		t.Error("a store with URL says it is embedded")
	}
	if got := other.Conn().Status(); got != nats.CONNECTED {
		t.Errorf("status of the TCP client = %v, want CONNECTED", got)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Options{}); !errors.Is(err, ErrNoDataDir) {
		t.Errorf("Start without DataDir = %v, want ErrNoDataDir", err)
	}
	if _, err := Start(Options{DataDir: t.TempDir(), Listen: "nope"}); err == nil {
		t.Error("Start with a bad Listen address succeeded")
	}
	// An unreachable URL is not an error: the store reconnects in the
	// background, and is not connected meanwhile.
	st, err := Start(Options{URL: "nats://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("Start with an unreachable URL: %v", err)
	}
	if got := st.Conn().Status(); got == nats.CONNECTED {
		t.Errorf("status with an unreachable URL = %v", got)
	}
	st.Close()
}

// BenchmarkStart starts an embedded server with a file store, connects to
// it and shuts it down.
func BenchmarkStart(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		st, err := Start(Options{DataDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}

// BenchmarkPublish publishes 200-byte messages synchronously to a file
// stream, with the default sync interval and with every write synced
// (docs/design.md, "Guarantees").
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name   string
		always bool
	}{{"sync=interval", false}, {"sync=always", true}} {
		b.Run(bc.name, func(b *testing.B) {
			st, err := Start(Options{DataDir: b.TempDir(), SyncAlways: bc.always})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			js, err := jetstream.New(st.Conn())
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"b"}}); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 200)
			for b.Loop() {
				if _, err := js.Publish(ctx, "b", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
