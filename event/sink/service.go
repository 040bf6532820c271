package sink

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
	"github.com/eventproc/eventproc/internal/wire"
)

// CodecOption returns the gRPC codec for the server of the sink's service:
// protobuf encoded and decoded by generated code instead of reflection,
// which halves the protobuf share of a unary Send (3.2 → 1.5 µs per
// request on the benchmark machine, docs/performance.md). It accepts and produces what gRPC's default codec
// does (its one difference: unknown fields inside a Timestamp, Duration or
// Value are dropped), writes a relayed reply as it came, and leaves
// messages of other services (health, reflection) to gRPC's codec.
func CodecOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(vtcodec.Codec{})
}

// RelayCodecOption is [CodecOption], except that it does not decode a
// unary SendRequest at all: it checks the request as proto.Unmarshal would
// (and fails where it would, with its error) and keeps the encoding in the
// request's unknown fields, which [Sink.Send] relays to the processor as it
// came, as the Stream ingress does. That saves decoding the event only to
// encode it again: 22 of about 300 allocations per call in
// BenchmarkUnarySend. eventproc builds its server with it.
//
// Use it only on a server whose interceptors do not read SendRequests: to
// them the request's Event is nil (and its type unknown), so an
// interceptor that authorises by event type, say, would be fooled.
func RelayCodecOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(serverCodec{})
}

// serverCodec is vtcodec's codec, but keeps a SendRequest encoded.
type serverCodec struct{ vtcodec.Codec }

var sendRequestDescriptor = (&eventv1.SendRequest{}).ProtoReflect().Descriptor()

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*eventv1.SendRequest)
	if !ok {
		return c.Codec.Unmarshal(data, v)
	}
	b := data.Materialize() // the request's own copy
	if wire.Check(b, sendRequestDescriptor) != nil {
		return vtcodec.Unmarshal(b, req) // proto.Unmarshal's verdict and error
	}
	// Send checks the event again, at the depth a processor meets it: it
	// cannot tell these bytes from unknown fields a Go caller set, and the
	// second check of a small event costs less than decoding it did.
	proto.Reset(req)
	req.ProtoReflect().SetUnknown(b)
	return nil
}

// Send implements [eventv1.SinkServiceServer]: it routes req's event like
// [Sink.Dispatch], but relays a reply event without decoding it: the
// response's Event field is nil and the event travels, as the processor
// encoded it, in the response's unknown fields, which gRPC's proto codec
// writes out unchanged, so a gRPC client receives the event itself.
// [RelayedEvent] returns those bytes; code that needs the reply as an Event
// calls Dispatch instead.
//
// A request whose event is not set but whose unknown fields are is taken as
// the encoded SendRequest (which is what [RelayCodecOption] gives it): its event
// is checked as proto.Unmarshal would and relayed without being decoded.
func (s *Sink) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	var resp *eventv1.SendResponse
	var err error
	if b := req.ProtoReflect().GetUnknown(); req.GetEvent() == nil && len(b) > 0 {
		resp, err = s.sendEncoded(ctx, b)
	} else {
		resp, err = s.dispatchCounted(ctx, req.GetEvent(), false)
	}
	if err != nil {
		return nil, err
	}
	if b, ok := RelayedEvent(resp); ok {
		ev := new(eventv1.Event)
		if err := proto.Unmarshal(b, ev); err != nil {
			return nil, status.Errorf(codes.Internal, "processor's reply event does not decode: %v", err)
		}
		return &eventv1.SendResponse{Event: ev, Outcome: resp.GetOutcome()}, nil
	}
	return resp, nil
}

// sendEncoded is Send for an encoded SendRequest, b: what dispatch does,
// on the event's encoding.
func (s *Sink) sendEncoded(ctx context.Context, b []byte) (*eventv1.SendResponse, error) {
	start := time.Now()
	ev, err := parseSendRequest(b)
	if err != nil { // only from Go callers: gRPC's decoder checked b
		err = status.Errorf(codes.InvalidArgument, "malformed SendRequest: %v", err)
	} else {
		var resp *eventv1.SendResponse
		if resp, err = s.dispatchEncoded(ctx, &ev, start); err == nil {
			s.metrics.observe(ev.typ, codes.OK, start)
			return resp, nil
		}
	}
	s.metrics.observe(ev.typ, status.Code(err), start)
	return nil, err
}

// dispatchEncoded routes an encoded event and waits for its answer, as
// dispatch does for a decoded one.
func (s *Sink) dispatchEncoded(ctx context.Context, ev *streamedEvent, now time.Time) (*eventv1.SendResponse, error) {
	r, err := s.routeForType(ev.body != nil, ev.typ)
	if err == nil && ev.tooDeep {
		err = errTooDeep
	}
	if err != nil {
		return nil, err
	}
	if r.broadcast { // rare, and it needs the event decoded
		dec := new(eventv1.Event)
		if err := proto.Unmarshal(ev.body, dec); err != nil { // checked already; cannot fail
			return nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err)
		}
		return s.dispatch(ctx, dec, now, 0, false)
	}
	newID := ev.id == ""
	if newID {
		ev.id = s.ids.Next()
	}
	deadline, timer := s.deadline(ctx, now, 0)
	req := &eventv1.ProcessRequest{TraceContext: traceContext(ctx)}
	req.ProtoReflect().SetUnknown(ev.processRequestEvent(newID, now))
	return s.process(ctx, r, req, deadline, timer, false)
}

// RelayedEvent returns the encoded reply event that [Sink.Send] relayed in
// resp, as the processor encoded it, and whether resp holds one. The HTTP
// front writes it as JSON without decoding it.
func RelayedEvent(resp *eventv1.SendResponse) ([]byte, bool) {
	if resp.GetEvent() != nil {
		return nil, false
	}
	b := resp.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldSendEvent || typ != protowire.BytesType {
		return nil, false
	}
	ev, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, false
	}
	return ev, true
}
