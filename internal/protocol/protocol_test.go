package protocol

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestEntrySize: a batch of entries is as large as the sum of their
// EntrySize, for each message with a batch field.
func TestEntrySize(t *testing.T) {
	ev := &eventv1.Event{Id: "an id", Type: eventv1.Type_TYPE_HELLO, Data: make([]byte, 300)}
	for _, tc := range []struct {
		name  string
		b     Batch
		entry proto.Message
		batch proto.Message
	}{
		{"ProcessRequest", ProcessRequestBatch, &eventv1.ProcessRequest{Id: 7, Event: ev},
			&eventv1.ProcessRequest{Batch: []*eventv1.ProcessRequest{{Id: 7, Event: ev}, {Id: 7, Event: ev}}}},
		{"ProcessResponse", ProcessResponseBatch, &eventv1.ProcessResponse{Id: 7, Result: &eventv1.ProcessResponse_Reply{Reply: ev}},
			&eventv1.ProcessResponse{Batch: []*eventv1.ProcessResponse{{Id: 7, Result: &eventv1.ProcessResponse_Reply{Reply: ev}}, {Id: 7, Result: &eventv1.ProcessResponse_Reply{Reply: ev}}}}},
		{"StreamRequest", StreamRequestBatch, &eventv1.StreamRequest{Event: ev},
			&eventv1.StreamRequest{Batch: []*eventv1.StreamRequest{{Event: ev}, {Event: ev}}}},
		{"StreamResponse", StreamResponseBatch, &eventv1.StreamResponse{Id: "x"},
			&eventv1.StreamResponse{Batch: []*eventv1.StreamResponse{{Id: "x"}, {Id: "x"}}}},
	} {
		if got, want := 2*tc.b.EntrySize(proto.Size(tc.entry)), proto.Size(tc.batch); got != want {
			t.Errorf("%s: 2 × EntrySize = %d, want the batch's size %d", tc.name, got, want)
		}
	}
}

func TestBatchLimit(t *testing.T) {
	for _, tc := range []struct {
		md   metadata.MD
		want int
	}{
		{nil, 0},
		{metadata.Pairs(BatchHeader, "1024"), 1024},
		{metadata.Pairs(BatchHeader, "-3"), 0},
		{metadata.Pairs(BatchHeader, "lots"), 0},
	} {
		if got := BatchLimit(tc.md); got != tc.want {
			t.Errorf("BatchLimit(%v) = %d, want %d", tc.md, got, tc.want)
		}
	}
}

func TestDraining(t *testing.T) {
	if st := Draining("bye"); !IsDraining(st.Proto()) || st.Code() != codes.Unavailable || st.Message() != "bye" {
		t.Errorf("Draining: %v, not recognised", st)
	}
	if IsDraining(status.New(codes.Unavailable, "down").Proto()) {
		t.Error("a plain UNAVAILABLE counts as draining")
	}
	other, _ := status.New(codes.Unavailable, "x").WithDetails(&errdetails.ErrorInfo{Reason: drainingReason, Domain: "elsewhere"})
	if IsDraining(other.Proto()) {
		t.Error("another domain's reason counts as draining")
	}
}
