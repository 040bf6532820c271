package sink

import (
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// On every path, an event sent without an id or a time gets them from the
// sink, and a client's own id and time are kept; the reply is the event
// the processor echoed, payload included.
func TestSendPathsFillIDAndTime(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	for _, path := range sendPaths {
		t.Run(path.name, func(t *testing.T) {
			send := path.sender(t, s)
			own := hello("own")
			own.Id, own.Time = "client-id", timestamppb.New(time.Unix(1000, 5))
			ids := map[string]bool{}
			for _, ev := range []*eventv1.Event{hello("a"), hello("b"), own} {
				payload := ev.GetPayload().GetStringValue()
				resp, err := send(proto.CloneOf(ev))
				if err != nil {
					t.Fatal(err)
				}
				got := resp.GetEvent()
				if got.GetId() == "" || ids[got.GetId()] || got.GetTime() == nil {
					t.Fatalf("reply %v: want a new id and a time (ids so far %v)", got, ids)
				}
				ids[got.GetId()] = true
				if got.GetPayload().GetStringValue() != payload || resp.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
					t.Fatalf("reply %v, outcome %v: want payload %q replied", got, resp.GetOutcome(), payload)
				}
				if ev == own && (got.GetId() != "client-id" || !proto.Equal(got.GetTime(), own.GetTime())) {
					t.Fatalf("client's id and time not kept: %v", got)
				}
			}
		})
	}
}

// The service Register adds relays a reply without decoding it; every
// answer is the one the generated service (which calls Send, decoding the
// reply) gives, errors included, and a request gRPC's decoder rejects is
// rejected the same way.
func TestRegisteredLikeGenerated(t *testing.T) {
	addr, _ := startFake(t, &fakeProcessor{answer: echo})
	s := startSink(t, Config{Routes: helloRoute(addr)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	eventv1.RegisterSinkServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	decodedConn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { decodedConn.Close() })
	encodedConn := serveSinkConn(t, s, nil)
	decoded, encoded := eventv1.NewSinkServiceClient(decodedConn), eventv1.NewSinkServiceClient(encodedConn)
	ctx := testCtx(t)

	at := timestamppb.New(time.Unix(1795888656, 7))
	payload, err := structpb.NewValue(map[string]any{"user": "ada", "tags": []any{"a", 1.5, nil, true}})
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := &eventv1.Event{Id: "u", Type: typeHello, Time: at}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	for _, tt := range []struct {
		name string
		req  *eventv1.SendRequest
	}{
		{"full", &eventv1.SendRequest{Event: &eventv1.Event{Id: "a", Type: typeHello, Time: at, Payload: payload,
			Metadata: map[string]string{"k": "v", "ü": "ß"}, Data: []byte{0, 1, 2}}}},
		{"unknown fields kept", &eventv1.SendRequest{Event: withUnknown}},
		{"no event", &eventv1.SendRequest{}},
		{"no type", &eventv1.SendRequest{Event: &eventv1.Event{Id: "b"}}},
		{"unknown type", &eventv1.SendRequest{Event: &eventv1.Event{Id: "c", Type: 99}}},
		{"no route", &eventv1.SendRequest{Event: &eventv1.Event{Id: "d", Type: eventv1.Type_TYPE_GOODBYE}}},
		{"deep but fits", &eventv1.SendRequest{Event: &eventv1.Event{Id: "e", Type: typeHello, Time: at, Payload: nestedLists(4990)}}},
		{"too deep", &eventv1.SendRequest{Event: &eventv1.Event{Id: "f", Type: typeHello, Payload: nestedLists(4998)}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := decoded.Send(ctx, tt.req)
			got, gotErr := encoded.Send(ctx, tt.req)
			if status.Code(gotErr) != status.Code(wantErr) || status.Convert(gotErr).Message() != status.Convert(wantErr).Message() {
				t.Fatalf("encoded: %v; decoded: %v", gotErr, wantErr)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("encoded: %v; decoded: %v", got, want)
			}
		})
	}

	// Bytes protobuf does not decode (invalid UTF-8 in the event's id):
	// both servers fail the call alike, and the next call is served.
	bad := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
		protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff"))
	for name, conn := range map[string]*grpc.ClientConn{"decoded": decodedConn, "encoded": encodedConn} {
		var out []byte
		err := conn.Invoke(ctx, "/event.v1.SinkService/Send", bad, &out, grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "invalid UTF-8") {
			t.Errorf("%s: invalid UTF-8: %v, want gRPC's INTERNAL decode error", name, err)
		}
	}
}
