// Package vtcodec is a gRPC codec for protobuf that encodes and decodes
// with the code protoc-gen-go-vtproto generates for event/v1 and
// internal/relay/v1 (MarshalVT, UnmarshalVT, SizeVT) instead of
// protobuf-go's. The eventproc and proc binaries register it as gRPC's
// proto codec at the start of main (encoding.RegisterCodecV2); libraries
// never register it. See docs/design.md, Protobuf without reflection.
//
// It accepts, rejects and produces exactly what gRPC's own proto codec
// does: encoding runs [wire.Check] on its output and decoding runs
// [wire.CheckStrict] first, for the checks the generated code lacks, and a
// message that fails either is handed to protobuf-go, which decides and
// gives its error. Messages without generated methods (health, reflection,
// well-known types) go to gRPC's proto codec.
//
// One difference: unknown fields inside the well-known types (Timestamp,
// Duration, Value and Struct) are dropped, as vtprotobuf's code for those
// types has nowhere to keep them. Unknown fields of event/v1's own
// messages are kept.
package vtcodec

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/eventproc/eventproc/internal/wire"
)

// Message is a message with generated vtproto methods.
type Message interface {
	proto.Message
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// protoCodec is gRPC's own proto codec, for other messages.
var protoCodec = encoding.GetCodecV2(grpcproto.Name)

// Codec is a gRPC encoding.CodecV2, named "proto": registered, it replaces
// gRPC's proto codec in the whole process.
type Codec struct{}

// Name is the content-subtype: peers see plain application/grpc+proto.
func (Codec) Name() string { return grpcproto.Name }

// Marshal encodes v, failing where proto.Marshal would (invalid UTF-8).
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(Message)
	if !ok {
		return protoCodec.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if err := MarshalTo(buf, m); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if err := MarshalTo(*buf, m); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// MarshalTo encodes m into buf, which must be m.SizeVT() long, failing
// where proto.Marshal would (invalid UTF-8), with proto.Marshal's error.
func MarshalTo(buf []byte, m Message) error {
	if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
		return err
	}
	if wire.Check(buf, m.ProtoReflect().Descriptor()) != nil {
		_, err := proto.Marshal(m) // protobuf's own error
		return err
	}
	return nil
}

// Unmarshal decodes data into v, which it replaces as proto.Unmarshal
// does, failing where proto.Unmarshal would.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(Message)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return Unmarshal(buf.ReadOnlyData(), m)
}

// Unmarshal decodes b into m, which it replaces: proto.Unmarshal, faster.
// m keeps no reference to b.
func Unmarshal(b []byte, m Message) error {
	proto.Reset(m) // UnmarshalVT merges into what m holds
	if wire.CheckStrict(b, m.ProtoReflect().Descriptor()) == nil && m.UnmarshalVT(b) == nil {
		return nil
	}
	return proto.Unmarshal(b, m) // its verdict and its error
}
