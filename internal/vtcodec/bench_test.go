package vtcodec

import (
	"testing"
	"time"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// benchMessages are what the hot paths carry: a client's unary request,
// a batch of four requests to a processor, its batch of four answers.
func benchMessages() map[string]func() proto.Message {
	ev := func() *eventv1.Event {
		return &eventv1.Event{
			Id: "3f1c2a9e-17", Type: eventv1.Type_TYPE_HELLO,
			Payload:  structpb.NewStringValue("hello"),
			Metadata: map[string]string{"processed_by": "proc-1"},
			Time:     timestamppb.New(time.Unix(1795854747, 194051497)),
		}
	}
	return map[string]func() proto.Message{
		"SendRequest": func() proto.Message { return &eventv1.SendRequest{Event: ev()} },
		"ProcessRequest batch of 4": func() proto.Message {
			m := new(eventv1.ProcessRequest)
			for i := range 4 {
				m.Batch = append(m.Batch, &eventv1.ProcessRequest{Id: uint64(i), Event: ev(), Timeout: durationpb.New(time.Second)})
			}
			return m
		},
		"ProcessResponse batch of 4": func() proto.Message {
			m := new(eventv1.ProcessResponse)
			for i := range 4 {
				m.Batch = append(m.Batch, &eventv1.ProcessResponse{Id: uint64(i), Result: &eventv1.ProcessResponse_Reply{Reply: ev()}})
			}
			return m
		},
	}
}

// BenchmarkCodec compares this codec with gRPC's proto codec on each
// message, both ways.
func BenchmarkCodec(b *testing.B) {
	codecs := []struct {
		name  string
		codec encoding.CodecV2
	}{{"vtcodec", Codec{}}, {"grpc-proto", encoding.GetCodecV2(grpcproto.Name)}}
	for name, newMsg := range benchMessages() {
		for _, c := range codecs {
			b.Run("marshal/"+name+"/"+c.name, func(b *testing.B) {
				m := newMsg()
				b.ReportAllocs()
				for b.Loop() {
					out, err := c.codec.Marshal(m)
					if err != nil {
						b.Fatal(err)
					}
					out.Free()
				}
			})
			b.Run("unmarshal/"+name+"/"+c.name, func(b *testing.B) {
				enc, _ := proto.Marshal(newMsg())
				data := mem.BufferSlice{mem.SliceBuffer(enc)}
				m := newMsg()
				b.ReportAllocs()
				for b.Loop() {
					if err := c.codec.Unmarshal(data, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
