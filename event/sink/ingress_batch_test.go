package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// Events sent in batches are each answered once, with their own id and
// outcome, as if each came on its own; a client that announced it reads
// batches may get answers in batches, and one that did not never does.
// Both with gRPC's codec and with the sink's own.
func TestStreamIngressBatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		announce bool
		opts     []grpc.ServerOption
	}{
		{"grpc codec, announced", true, []grpc.ServerOption{}},
		{"grpc codec, not announced", false, []grpc.ServerOption{}},
		{"sink codec, announced", true, nil},
		{"sink codec, not announced", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startFake(t, &fakeProcessor{answer: echo})
			s := startSink(t, Config{Routes: helloRoute(addr)})
			ctx := testCtx(t)
			if tc.announce {
				ctx = metadata.AppendToOutgoingContext(ctx, protocol.BatchHeader, strconv.Itoa(1<<20))
			}
			ss, err := serveSinkWith(t, s, tc.opts).Stream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const batches, per = 20, 50
			sendErr := make(chan error, 1)
			go func() {
				for b := range batches {
					req := new(eventv1.StreamRequest)
					for i := range per {
						ev := hello(fmt.Sprint(b*per + i))
						ev.Id = fmt.Sprintf("id-%d", b*per+i)
						if i%10 == 3 {
							ev.Type = eventv1.Type_TYPE_GOODBYE // no route
						}
						req.Batch = append(req.Batch, &eventv1.StreamRequest{Event: ev, Timeout: durationpb.New(testTimeout)})
					}
					if err := ss.Send(req); err != nil {
						sendErr <- err
						return
					}
				}
				sendErr <- ss.CloseSend()
			}()
			seen := make(map[string]bool, batches*per)
			messages := 0
			for len(seen) < batches*per {
				messages++
				msg, err := ss.Recv()
				if err != nil {
					t.Fatalf("after %d answers: %v", len(seen), err)
				}
				answers := []*eventv1.StreamResponse{msg}
				if len(msg.Batch) > 0 {
					if !tc.announce {
						t.Fatalf("a batch of %d answers for a client that did not ask for batches", len(msg.Batch))
					}
					if msg.Id != "" || msg.Result != nil {
						t.Fatalf("a batch with fields of its own: %v", msg)
					}
					answers = msg.Batch
				}
				for _, resp := range answers {
					id := resp.GetId()
					if seen[id] {
						t.Fatalf("answered %s twice", id)
					}
					seen[id] = true
					var i int
					if _, err := fmt.Sscanf(id, "id-%d", &i); err != nil {
						t.Fatalf("answer for unknown id %q", id)
					}
					if i%10 == 3 {
						if got := codes.Code(resp.GetError().GetCode()); got != codes.Unimplemented {
							t.Errorf("%s: code %v, want Unimplemented", id, got)
						}
						continue
					}
					if got := resp.GetResponse().GetEvent().GetPayload().GetStringValue(); got != fmt.Sprint(i) {
						t.Errorf("%s: reply payload %q, want %d", id, got, i)
					}
				}
			}
			t.Logf("%d answers in %d messages", len(seen), messages)
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			if _, err := ss.Recv(); err == nil {
				t.Fatal("an answer more than the events sent")
			}
		})
	}
}

// A batch next to an event, or within a batch, ends the stream with
// INVALID_ARGUMENT; the events of the batch before it are answered first.
func TestStreamIngressBatchMalformed(t *testing.T) {
	for name, req := range map[string]*eventv1.StreamRequest{
		"batch and event": {Event: hello("x"), Batch: []*eventv1.StreamRequest{{Event: hello("y")}}},
		"batch and timeout": {
			Timeout: durationpb.New(testTimeout), Batch: []*eventv1.StreamRequest{{Event: hello("y")}},
		},
		"batch in a batch": {Batch: []*eventv1.StreamRequest{
			{Event: &eventv1.Event{Id: "first", Type: eventv1.Type_TYPE_HELLO}},
			{Batch: []*eventv1.StreamRequest{{Event: hello("z")}}},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			ss := echoStream(t)
			if err := ss.Send(req); err != nil {
				t.Fatal(err)
			}
			resp, err := ss.Recv()
			if name == "batch in a batch" {
				if err != nil || resp.GetId() != "first" || resp.GetResponse() == nil {
					t.Fatalf("the entry before the bad one: %v, %v", resp, err)
				}
				_, err = ss.Recv()
			}
			wantCode(t, err, codes.InvalidArgument)
		})
	}
}

// The writer sends what waits at once in one message, up to protocol.MaxBatch
// answers and the client's limit in bytes, and each answer alone to a
// client that reads no batches; every slot is released.
func TestStreamIngressWriteBatches(t *testing.T) {
	answer := func(i int) answered {
		return answered{&relayv1.StreamResponse{Id: fmt.Sprintf("id-%03d", i), Result: &relayv1.StreamResponse_Response{
			Response: &relayv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED}}}, int32(i)}
	}
	entrySize := proto.Size(&relayv1.StreamResponse{Batch: []*relayv1.StreamResponse{answer(1).resp}})
	for _, tc := range []struct {
		limit, answers int
		want           []int // answers per message
	}{
		{0, 5, []int{1, 1, 1, 1, 1}},
		{1 << 20, 5, []int{5}},
		{1 << 20, protocol.MaxBatch + 3, []int{protocol.MaxBatch, 3}},
		{3 * entrySize, 7, []int{3, 3, 1}},
		{entrySize - 1, 2, []int{1, 1}}, // an answer over the limit goes alone
		{1 << 20, 1, []int{1}},
	} {
		t.Run(fmt.Sprintf("limit %d, %d answers", tc.limit, tc.answers), func(t *testing.T) {
			in := &ingress{
				out:        make(chan answered, tc.answers),
				free:       make(chan int32, tc.answers),
				batchLimit: tc.limit,
			}
			for i := range tc.answers {
				in.inflight.Add(1)
				in.out <- answer(i)
			}
			close(in.out)
			ss := &recordingStream{ctx: context.Background()}
			if err := in.write(ss); err != nil {
				t.Fatal(err)
			}
			in.inflight.Wait() // every answer released
			if len(in.free) != tc.answers {
				t.Errorf("%d slots freed, want %d", len(in.free), tc.answers)
			}
			var got []int
			next := 0
			for _, msg := range ss.sent {
				answers := []*eventv1.StreamResponse{msg}
				if len(msg.Batch) > 0 {
					answers = msg.Batch
				}
				got = append(got, len(answers))
				for _, a := range answers {
					if want := fmt.Sprintf("id-%03d", next); a.GetId() != want {
						t.Fatalf("answer %q, want %q", a.GetId(), want)
					}
					next++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("answers per message %v, want %v", got, tc.want)
			}
		})
	}
}

// recordingStream is a grpc.ServerStream that keeps, decoded, what is
// sent on it through the sink's codec.
type recordingStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*eventv1.StreamResponse
}

func (r *recordingStream) Context() context.Context { return r.ctx }

func (r *recordingStream) SendMsg(m any) error {
	enc, err := vtcodec.Codec{}.Marshal(m)
	if err != nil {
		return err
	}
	resp := new(eventv1.StreamResponse)
	if err := proto.Unmarshal(enc.Materialize(), resp); err != nil {
		return err
	}
	r.sent = append(r.sent, resp)
	return nil
}

// A batch of more events than a client stream may have in flight is
// admitted as slots free up, each event answered once.
func TestStreamIngressBatchOverSlots(t *testing.T) {
	ss := echoStream(t)
	const n = 3*maxInFlightPerClientStream + 7
	req := new(eventv1.StreamRequest)
	for i := range n {
		req.Batch = append(req.Batch, &eventv1.StreamRequest{Event: &eventv1.Event{Id: fmt.Sprint(i), Type: eventv1.Type_TYPE_HELLO}})
	}
	if err := ss.Send(req); err != nil {
		t.Fatal(err)
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, n)
	for {
		resp, err := ss.Recv()
		if err != nil {
			if len(seen) != n || !errors.Is(err, io.EOF) {
				t.Fatalf("%d of %d answered, then %v", len(seen), n, err)
			}
			return
		}
		if seen[resp.GetId()] || resp.GetResponse().GetEvent().GetId() != resp.GetId() {
			t.Fatalf("answer %v: want each event echoed once", resp)
		}
		seen[resp.GetId()] = true
	}
}
