package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// TestDurableHTTP: a durable route answers 202 with the stored event's id
// and sequence, a retry with the same Idempotency-Key the same with
// "duplicate": true, and the key with another event 422; /readyz shows the
// store.
func TestDurableHTTP(t *testing.T) {
	ctx := testContext(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String() // no processor: events wait in the store
	lis.Close()
	s := startSink(t, "--route", "hello="+addr, "--durable", "hello", "--data-dir", t.TempDir())
	s.waitRoute(ctx, "TYPE_HELLO", true)
	if _, body := s.get(ctx, "/readyz"); !strings.Contains(string(body), `"durable":true,"store":"connected"`) {
		t.Errorf("/readyz = %s, want the route durable with its store connected", body)
	}
	type stored struct {
		ID        string `json:"id"`
		Sequence  uint64 `json:"sequence"`
		Duplicate bool   `json:"duplicate"`
	}
	post := func(body, key string, want int) stored {
		t.Helper()
		resp, b := s.post(ctx, body, "Idempotency-Key", key)
		if resp.StatusCode != want {
			t.Fatalf("POST %s with key %q: %d %s, want %d", body, key, resp.StatusCode, b, want)
		}
		var st stored
		if want == http.StatusAccepted {
			if err := json.Unmarshal(b, &st); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("202 body %q (%s): %v", b, resp.Header.Get("Content-Type"), err)
			}
		}
		return st
	}
	first := post(`{"type":"TYPE_HELLO","payload":1}`, "order-1", http.StatusAccepted)
	again := post(`{"type":"TYPE_HELLO","payload":1}`, "order-1", http.StatusAccepted)
	if first.ID == "" || first.Sequence != 1 || first.Duplicate || again != (stored{first.ID, 1, true}) {
		t.Errorf("first %+v, retry %+v; want the same id and sequence 1, the retry a duplicate", first, again)
	}
	post(`{"type":"TYPE_HELLO","payload":2}`, "order-1", http.StatusUnprocessableEntity)
	if next := post(`{"type":"TYPE_HELLO","payload":2}`, "order-2", http.StatusAccepted); next.Sequence != 2 || next.Duplicate {
		t.Errorf("another key: %+v, want sequence 2, not a duplicate", next)
	}
}

// TestDurableGRPC: each event of a Stream to a durable route is answered
// OUTCOME_STORED with its id and sequence; unary Send takes an
// idempotency key in its metadata.
func TestDurableGRPC(t *testing.T) {
	ctx := testContext(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	s := startSink(t, "--route", "hello="+addr, "--durable", "hello", "--data-dir", t.TempDir())
	s.waitRoute(ctx, "TYPE_HELLO", true)
	ss, err := s.sinkClient().Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if err := ss.Send(&eventv1.StreamRequest{Event: &eventv1.Event{Id: fmt.Sprint("s-", i), Type: eventv1.Type_TYPE_HELLO}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	for range n {
		m, err := ss.Recv()
		if err != nil {
			t.Fatal(err)
		}
		r := m.GetResponse()
		if r.GetOutcome() != eventv1.Outcome_OUTCOME_STORED || r.GetId() != m.GetId() || r.GetSequence() == 0 {
			t.Errorf("Stream answer %v, want OUTCOME_STORED with the event's id and a sequence", m)
		}
		seqs[r.GetSequence()] = true
	}
	if len(seqs) != n {
		t.Errorf("sequences %v, want %d different ones", seqs, n)
	}

	kctx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "k")
	req := &eventv1.SendRequest{Event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO}}
	first, err := s.sinkClient().Send(kctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.sinkClient().Send(kctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetOutcome() != eventv1.Outcome_OUTCOME_STORED || first.GetSequence() != n+1 || first.GetDuplicate() ||
		!again.GetDuplicate() || again.GetId() != first.GetId() || again.GetSequence() != first.GetSequence() {
		t.Errorf("Send %v then %v; want OUTCOME_STORED, sequence %d, then the same as a duplicate", first, again, n+1)
	}
	req.Event.Payload = structpb.NewStringValue("other")
	if _, err := s.sinkClient().Send(kctx, req); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Send of another event with the key: %v, want FAILED_PRECONDITION", err)
	}
}

// TestDurableCloudEvents: on a durable route a CloudEvent's source and id
// are its idempotency key: the same CloudEvent sent again, structured or
// in a batch, is stored once; another id is stored anew.
func TestDurableCloudEvents(t *testing.T) {
	ctx := testContext(t)
	s := startSink(t, "--route", "hello="+deadAddr(t), "--durable", "hello", "--data-dir", t.TempDir())
	s.waitRoute(ctx, "TYPE_HELLO", true)
	post := func(contentType, body string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, b := s.do(ctx, req)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
		}
		return strings.TrimSpace(string(b))
	}
	ce := func(id string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/shop","type":"TYPE_HELLO","data":1}`
	}
	first := post("application/cloudevents+json", ce("a"))
	again := post("application/cloudevents+json", ce("a"))
	if first != `{"id":"a","sequence":1,"duplicate":false}` || again != `{"id":"a","sequence":1,"duplicate":true}` {
		t.Errorf("first %s, again %s; want sequence 1 stored once", first, again)
	}
	batch := post("application/cloudevents-batch+json", "["+ce("a")+","+ce("b")+"]")
	want := `[{"status":202,"accepted":{"id":"a","sequence":1,"duplicate":true}},{"status":202,"accepted":{"id":"b","sequence":2,"duplicate":false}}]`
	if batch != want {
		t.Errorf("batch %s, want %s", batch, want)
	}
}
