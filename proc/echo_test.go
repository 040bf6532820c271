package main

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"testing"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// FuzzEchoMetadata checks that no metadata makes echo panic or answer with
// anything but a reply, a consume or a proper status.
func FuzzEchoMetadata(f *testing.F) {
	f.Add("20ms", "NOT_FOUND", "true")
	f.Add("", "", "")
	f.Add("-1s", "ok", "0")
	f.Add("1e9h", "17", "FALSE")
	f.Add("soon", " NOT_FOUND", "maybe")
	f.Fuzz(func(t *testing.T, delay, code, consume string) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // any real delay ends at once
		e := &echo{log: slog.New(slog.DiscardHandler)}
		ev := &eventv1.Event{Id: "e", Metadata: map[string]string{"delay": delay, "error": code, "consume": consume}}
		reply, err := e.Handle(ctx, ev)
		if err != nil {
			st, ok := status.FromError(err)
			if !ok && err != context.Canceled {
				t.Fatalf("Handle = %v, want a status or context error", err)
			}
			if ok && (st.Code() == codes.OK || st.Code() > codes.Unauthenticated) {
				t.Fatalf("Handle = %v, want a valid failure code", err)
			}
			return
		}
		if reply != nil && reply != ev {
			t.Fatalf("reply = %v, want the event itself", reply)
		}
	})
}

func TestEchoStampsName(t *testing.T) {
	e := &echo{name: "A", log: slog.New(slog.DiscardHandler)}
	for _, md := range []map[string]string{nil, {}, {"k": "v"}, {"processed_by": "someone else"}} {
		ev := &eventv1.Event{Id: "e", Metadata: md}
		reply, err := e.Handle(t.Context(), ev)
		if err != nil {
			t.Fatalf("metadata %v: Handle = %v", md, err)
		}
		got := onTheWire(t, reply).GetMetadata()
		if got["processed_by"] != "A" {
			t.Errorf("metadata %v: reply processed_by = %q, want %q", md, got["processed_by"], "A")
		}
		if md["k"] != "" && got["k"] != md["k"] {
			t.Errorf("metadata %v: reply metadata %v lost k", md, got)
		}
		if want := max(len(md), 1); len(got) != want {
			t.Errorf("metadata %v: reply metadata %v, want %d entries", md, got, want)
		}
	}
}

// The stamp is shared by replies, and fields unknown to proc survive.
func TestEchoStampKeepsUnknownFields(t *testing.T) {
	e := &echo{name: "A", log: slog.New(slog.DiscardHandler)}
	unknown := protowire.AppendTag(nil, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	for range 2 {
		ev := &eventv1.Event{Id: "e"}
		ev.ProtoReflect().SetUnknown(unknown)
		reply, err := e.Handle(t.Context(), ev)
		if err != nil {
			t.Fatal(err)
		}
		got := onTheWire(t, reply)
		if got.GetMetadata()["processed_by"] != "A" || len(got.GetMetadata()) != 1 {
			t.Errorf("reply metadata %v, want processed_by=A only", got.GetMetadata())
		}
		if u := got.ProtoReflect().GetUnknown(); !bytes.Equal(u, unknown) {
			t.Errorf("reply unknown fields %x, want %x", u, unknown)
		}
		plain, err := e.Handle(t.Context(), &eventv1.Event{Id: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if u := onTheWire(t, plain).ProtoReflect().GetUnknown(); len(u) != 0 {
			t.Errorf("other reply got unknown fields %x", u)
		}
	}
}

// onTheWire returns ev as whoever receives it decodes it.
func onTheWire(t *testing.T, ev *eventv1.Event) *eventv1.Event {
	t.Helper()
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got eventv1.Event
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// BenchmarkEchoHandle measures the handler alone, on an event as the sink
// forwards it (no metadata) and on one with metadata of its own.
func BenchmarkEchoHandle(b *testing.B) {
	for _, bc := range []struct {
		name string
		md   map[string]string
	}{
		{"no-metadata", nil},
		{"metadata", map[string]string{"tenant": "t1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := &echo{name: "proc-1", log: slog.New(slog.DiscardHandler)}
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				ev := &eventv1.Event{Id: "e", Metadata: maps.Clone(bc.md)}
				if _, err := e.Handle(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Only events that can make echo wait (delay, or publishing) are not
// inlined.
func TestEchoInline(t *testing.T) {
	e := &echo{name: "A", log: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct {
		md   map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"error": "NOT_FOUND"}, true},
		{map[string]string{"consume": "true"}, true},
		{map[string]string{"delay": "1s"}, false},
		{map[string]string{"delay": "bogus"}, false},
	} {
		if got := e.Inline(&eventv1.Event{Metadata: tt.md}); got != tt.want {
			t.Errorf("Inline(metadata %v) = %v, want %v", tt.md, got, tt.want)
		}
	}
	e.publish = func(context.Context, *eventv1.Event) error { return nil }
	if e.Inline(&eventv1.Event{}) {
		t.Error("Inline with publish = true, want false")
	}
}

// BenchmarkEchoReply measures what a reply costs proc beyond the request's
// decoding: Handle, and encoding the answer as gRPC does (size, then
// marshal), for an event as the sink forwards it.
func BenchmarkEchoReply(b *testing.B) {
	e := &echo{name: "proc-1", log: slog.New(slog.DiscardHandler)}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		ev := &eventv1.Event{Id: "e"}
		reply, err := e.Handle(ctx, ev)
		if err != nil {
			b.Fatal(err)
		}
		resp := &eventv1.ProcessResponse{Id: 1, Result: &eventv1.ProcessResponse_Reply{Reply: reply}}
		_ = proto.Size(resp)
		if _, err := (proto.MarshalOptions{UseCachedSize: true}).Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}
