package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eventproc/eventproc/event/processor"
	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// orderPlaced is the CloudEvents type the tests map TYPE_GOODBYE to.
const orderPlaced = "com.example.order.placed"

// ceServer is the API in front of a real sink and a processor that
// records every event it gets and replies with it, or consumes it when
// its metadata has ce-consume=true; served on loopback.
type ceServer struct {
	url  string
	got  chan *eventv1.Event
	last *responseRecorder // the raw answers the SDK client got
	srv  *httptest.Server
}

// responseRecorder is a RoundTripper that keeps the headers of the last
// response, to tell the mode of a reply the SDK has already decoded.
type responseRecorder struct {
	http.RoundTripper
	mu     sync.Mutex
	header http.Header
}

func (r *responseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.RoundTripper.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.header = resp.Header.Clone()
		r.mu.Unlock()
	}
	return resp, err
}

func (r *responseRecorder) lastHeader() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.header
}

func newCEServer(t *testing.T) *ceServer {
	t.Helper()
	s := &ceServer{got: make(chan *eventv1.Event, 16)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := processor.HandlerFunc(func(_ context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
		s.got <- ev
		if ev.GetMetadata()["ce-consume"] == "true" {
			return nil, nil
		}
		return ev, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- processor.NewServer(h, processor.Options{Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, lis)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	addr := lis.Addr().String()
	sk, err := sink.New(sink.Config{
		Routes: []sink.Route{
			{Type: eventv1.Type_TYPE_HELLO, Targets: []string{addr}},
			{Type: eventv1.Type_TYPE_GOODBYE, Targets: []string{addr}},
		},
		StreamsPerTarget: 1,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sk.Run(context.Background()) }()
	t.Cleanup(func() {
		sk.Close()
		<-done
	})
	if err := sk.WaitReady(testContext(t)); err != nil {
		t.Fatalf("sink never ready: %v", err)
	}
	api := newAPI(t, sk, Options{CloudEventTypes: map[eventv1.Type]string{eventv1.Type_TYPE_GOODBYE: orderPlaced}})
	s.srv = httptest.NewServer(api)
	t.Cleanup(s.srv.Close)
	s.url = s.srv.URL + "/v1/events"
	s.last = &responseRecorder{RoundTripper: s.srv.Client().Transport}
	return s
}

// next is the next event the processor got.
func (s *ceServer) next(t *testing.T) *eventv1.Event {
	t.Helper()
	select {
	case ev := <-s.got:
		return ev
	case <-testContext(t).Done():
		t.Fatal("the processor got no event")
		return nil
	}
}

// client is the CloudEvents SDK's HTTP client, posting to /v1/events.
func (s *ceServer) client(t *testing.T) cloudevents.Client {
	t.Helper()
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(s.url), cloudevents.WithRoundTripper(s.last))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCE returns a CloudEvent with every kind of attribute.
func newCE(t *testing.T, id, typ string) event.Event {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource("/tests/orders")
	e.SetType(typ)
	e.SetSubject("order 42 für Zoë") // percent-encoded in binary mode
	e.SetDataSchema("https://example.com/schemas/order.json")
	e.SetExtension("tenant", "acme")
	e.SetExtension("priority", 3)
	e.SetTime(time.Date(2026, 11, 27, 21, 39, 59, 413000000, time.UTC))
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]any{"total": 9.5, "items": []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCloudEventsModes sends CloudEvents with the official SDK in binary
// and structured mode: the processor gets every attribute (in metadata,
// ce- prefixed), the type mapped to its enum, the data as payload, and the
// reply comes back in the request's mode.
func TestCloudEventsModes(t *testing.T) {
	s := newCEServer(t)
	c := s.client(t)
	tests := []struct {
		name, ceType string
		structured   bool
		wantType     eventv1.Type
		wantCT       string // Content-Type of the reply
	}{
		{"binary, enum name", "TYPE_HELLO", false, eventv1.Type_TYPE_HELLO, "application/json"},
		{"binary, mapped", orderPlaced, false, eventv1.Type_TYPE_GOODBYE, "application/json"},
		{"structured, enum name", "TYPE_HELLO", true, eventv1.Type_TYPE_HELLO, mimeCloudEvent},
		{"structured, mapped", orderPlaced, true, eventv1.Type_TYPE_GOODBYE, mimeCloudEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			if tc.structured {
				ctx = cloudevents.WithEncodingStructured(ctx)
			}
			sent := newCE(t, "id-"+strings.ReplaceAll(tc.name, " ", ""), tc.ceType)
			reply, result := c.Request(ctx, sent)
			if !cloudevents.IsACK(result) {
				t.Fatalf("Request: %v", result)
			}
			got := s.next(t)
			if got.GetId() != sent.ID() || got.GetType() != tc.wantType {
				t.Errorf("processor got id %q type %v, want %q %v", got.GetId(), got.GetType(), sent.ID(), tc.wantType)
			}
			wantMeta := map[string]string{
				"ce-source":          "/tests/orders",
				"ce-subject":         "order 42 für Zoë",
				"ce-dataschema":      "https://example.com/schemas/order.json",
				"ce-datacontenttype": "application/json",
				"ce-tenant":          "acme",
				"ce-priority":        "3",
			}
			for k, v := range wantMeta {
				if got.GetMetadata()[k] != v {
					t.Errorf("processor got metadata %s=%q, want %q (all: %v)", k, got.GetMetadata()[k], v, got.GetMetadata())
				}
			}
			if total := got.GetPayload().GetStructValue().GetFields()["total"].GetNumberValue(); total != 9.5 {
				t.Errorf("processor got payload %v, want the JSON data", got.GetPayload())
			}
			if got.GetTime() == nil || !got.GetTime().AsTime().Equal(sent.Time()) {
				t.Errorf("processor got time %v, want %v", got.GetTime(), sent.Time())
			}

			h := s.last.lastHeader()
			if ct := h.Get("Content-Type"); ct != tc.wantCT {
				t.Errorf("reply Content-Type %q, want %q", ct, tc.wantCT)
			}
			if binary := h.Get("Ce-Id") != ""; binary == tc.structured {
				t.Errorf("reply has Ce-Id %q, want binary mode %v", h.Get("Ce-Id"), !tc.structured)
			}
			if reply == nil {
				t.Fatal("no reply event")
			}
			if err := reply.Validate(); err != nil {
				t.Errorf("reply is not a valid CloudEvent: %v", err)
			}
			// The HTTP binding has header values percent-encoded, which
			// sdk-go (v2.16.2) neither does nor undoes.
			subject, _ := url.PathUnescape(reply.Subject())
			if reply.ID() != sent.ID() || reply.Type() != tc.ceType || reply.Source() != sent.Source() ||
				subject != sent.Subject() || reply.Extensions()["tenant"] != "acme" {
				t.Errorf("reply %v (headers %v), want the event sent back", reply, s.last.lastHeader())
			}
			var data map[string]any
			if err := reply.DataAs(&data); err != nil || data["total"] != 9.5 {
				t.Errorf("reply data %s (%v), want the data sent", reply.Data(), err)
			}
		})
	}
}

// TestCloudEventsBinaryData: a binary-mode body that is not JSON travels as
// the event's data bytes (text as a JSON string payload), and the binary
// reply carries it back as is, with its content type.
func TestCloudEventsBinaryData(t *testing.T) {
	s := newCEServer(t)
	c := s.client(t)
	for _, ct := range []string{"application/octet-stream", "text/plain"} {
		t.Run(ct, func(t *testing.T) {
			sent := cloudevents.NewEvent()
			sent.SetID("bin-" + ct)
			sent.SetSource("/tests")
			sent.SetType("TYPE_HELLO")
			data := []byte("\x00\x01 raw bytes")
			if ct == "text/plain" {
				data = []byte("plain text\n")
			}
			if err := sent.SetData(ct, data); err != nil {
				t.Fatal(err)
			}
			reply, result := c.Request(testContext(t), sent)
			if !cloudevents.IsACK(result) || reply == nil {
				t.Fatalf("Request: %v, reply %v", result, reply)
			}
			got := s.next(t)
			if ct == "text/plain" {
				if got.GetPayload().GetStringValue() != string(data) {
					t.Errorf("processor got payload %v, want the text", got.GetPayload())
				}
			} else if !bytes.Equal(got.GetData(), data) {
				t.Errorf("processor got data %q, want %q", got.GetData(), data)
			}
			if !bytes.Equal(reply.Data(), data) || reply.DataContentType() != ct {
				t.Errorf("reply data %q (%s), want %q (%s)", reply.Data(), reply.DataContentType(), data, ct)
			}
		})
	}
}

// TestCloudEventsRejected: an unmapped type is 400 naming it (an enum name
// with a mapping of its own is unmapped too), and so is an event without a
// required attribute; a consumed event is 204.
func TestCloudEventsRejected(t *testing.T) {
	s := newCEServer(t)
	c := s.client(t)
	for _, typ := range []string{"com.example.nope", "TYPE_GOODBYE"} {
		for _, structured := range []bool{false, true} {
			ctx := testContext(t)
			if structured {
				ctx = cloudevents.WithEncodingStructured(ctx)
			}
			result := c.Send(ctx, newCE(t, "x", typ))
			var res *cehttp.Result
			if !cloudevents.ResultAs(result, &res) || res.StatusCode != http.StatusBadRequest ||
				!strings.Contains(result.Error(), typ) {
				t.Errorf("type %q (structured %v): %v, want 400 naming the type", typ, structured, result)
			}
		}
	}
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, s.url, strings.NewReader(`{}`))
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "1")
	req.Header.Set("Ce-Type", "TYPE_HELLO")
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st statusJSON
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(st.Message, "without source") {
		t.Errorf("no ce-source: %d %+v, want 400 saying so", resp.StatusCode, st)
	}

	e := newCE(t, "consumed", "TYPE_HELLO")
	e.SetExtension("consume", true)
	reply, result := c.Request(testContext(t), e)
	var res *cehttp.Result
	if !cloudevents.ResultAs(result, &res) || res.StatusCode != http.StatusNoContent || reply != nil {
		t.Errorf("consumed: %v, reply %v, want 204 without one", result, reply)
	}
	s.next(t) // the consumed one
}

// TestCloudEventsBatch posts a batch of SDK events: the answer is a JSON
// array with each event's result, in order.
func TestCloudEventsBatch(t *testing.T) {
	s := newCEServer(t)
	consumed := newCE(t, "b3", orderPlaced)
	consumed.SetExtension("consume", true)
	batch := []event.Event{newCE(t, "b1", "TYPE_HELLO"), newCE(t, "b2", "com.example.nope"), consumed}
	body, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, s.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", mimeCloudEventBatch)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var results []struct {
		Status int             `json:"status"`
		Event  *event.Event    `json:"event"`
		Error  *statusJSON     `json:"error"`
		Rest   json.RawMessage `json:"-"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&results); err != nil || resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %s (%v), want 200 with a JSON array", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	if r := results[0]; r.Status != 200 || r.Event == nil || r.Event.ID() != "b1" || r.Event.Validate() != nil {
		t.Errorf("result 0: %+v, want 200 with the reply", r)
	}
	if r := results[1]; r.Status != 400 || r.Error == nil || r.Error.Code != 3 || !strings.Contains(r.Error.Message, "com.example.nope") {
		t.Errorf("result 1: %+v, want 400 naming the type", r)
	}
	if r := results[2]; r.Status != 204 || r.Event != nil || r.Error != nil {
		t.Errorf("result 2: %+v, want 204", r)
	}
	for range 2 {
		s.next(t)
	}
}

// TestSubscribeCloudEvents: with format=cloudevents subscribers get
// published events as CloudEvents, in SSE and NDJSON, which the SDK reads.
func TestSubscribeCloudEvents(t *testing.T) {
	hub := pubsub.New(pubsub.Config{})
	t.Cleanup(hub.Close)
	ev := &eventv1.Event{Id: "p1", Type: eventv1.Type_TYPE_GOODBYE, Payload: structpb.NewStringValue("hi"),
		Metadata: map[string]string{"ce-source": "/orders", "ce-tenant": "acme", "processed_by": "x"}}
	b := &stubBackend{hub: hub, subscribed: func(*pubsub.Subscription) { hub.Publish(ev) }}
	api := newAPI(t, b, Options{CloudEventTypes: map[eventv1.Type]string{eventv1.Type_TYPE_GOODBYE: orderPlaced}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	for _, sse := range []bool{true, false} {
		ctx, cancel := context.WithCancel(testContext(t))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events:subscribe?types=goodbye&format=cloudevents", nil)
		if sse {
			req.Header.Set("Accept", "text/event-stream")
		}
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %v %v", resp, err)
		}
		r := bufio.NewReader(resp.Body)
		var data string
		for data == "" {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case sse && line == "event: "+orderPlaced+"\n":
			case sse && strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case !sse:
				data = line
			}
		}
		cancel()
		resp.Body.Close()
		var got event.Event
		if err := json.Unmarshal([]byte(data), &got); err != nil {
			t.Fatalf("sse %v: %q is not a CloudEvent: %v", sse, data, err)
		}
		if err := got.Validate(); err != nil || got.ID() != "p1" || got.Type() != orderPlaced || got.Source() != "/orders" ||
			got.Extensions()["tenant"] != "acme" || string(got.Data()) != `"hi"` {
			t.Errorf("sse %v: got %v (%v), want the published event", sse, got, err)
		}
		// The second subscription's publish is the hub's second event.
		if seq := got.Extensions()["sequence"]; !sse && seq != "2" {
			t.Errorf("NDJSON sequence %v, want \"2\"", seq)
		}
	}
}

// FuzzCloudEventJSON reads arbitrary bodies as structured CloudEvents and
// batches: no input may panic, and every rejection is INVALID_ARGUMENT.
func FuzzCloudEventJSON(f *testing.F) {
	for _, seed := range []string{
		`{"specversion":"1.0","id":"1","source":"/s","type":"TYPE_HELLO","data":{"a":1}}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"TYPE_HELLO","data_base64":"AAEC","ext":true,"n":3}`,
		`{"specversion":"0.3","id":"1","source":"/s","type":"TYPE_HELLO"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"TYPE_HELLO","time":"yesterday"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"TYPE_HELLO","Bad-Name":"x"}`,
		`[{"specversion":"1.0","id":"1","source":"/s","type":"x"}]`, `[]`, `null`, `{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	ce, err := newCETypes(map[eventv1.Type]string{eventv1.Type_TYPE_GOODBYE: orderPlaced})
	if err != nil {
		f.Fatal(err)
	}
	invalid := func(t *testing.T, err error) {
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("error %v, want INVALID_ARGUMENT", err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ce.fromStructured(body)
		invalid(t, err)
		if err == nil {
			if _, err := ce.structured(ev, nil); err != nil {
				t.Fatalf("accepted event %v cannot be written back: %v", ev, err)
			}
		}
		_, errs, err := ce.fromBatch(body)
		invalid(t, err)
		for _, err := range errs {
			invalid(t, err)
		}
	})
}

// TestIsCloudEventAllocs: telling a plain JSON request from a CloudEvent
// allocates nothing, so the plain path pays no allocation for CloudEvents.
func TestIsCloudEventAllocs(t *testing.T) {
	plain := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(`{"type":"TYPE_HELLO"}`))
	plain.Header.Set("Content-Type", "application/json")
	structured := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	structured.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	binary := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	binary.Header.Set("ce-specversion", "1.0")
	for _, tc := range []struct {
		name string
		r    *http.Request
		want bool
	}{{"plain", plain, false}, {"structured", structured, true}, {"binary", binary, true}} {
		if got := isCloudEvent(tc.r); got != tc.want {
			t.Errorf("%s: isCloudEvent = %v, want %v", tc.name, got, tc.want)
		}
		if n := testing.AllocsPerRun(100, func() { isCloudEvent(tc.r) }); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tc.name, n)
		}
	}
}
