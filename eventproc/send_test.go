package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// fixture is a sink, and the processor behind it when there is one.
type fixture struct {
	sink *sinkProc
	proc *testProcessor
}

// testTraceparent is a valid W3C traceparent.
const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// The sinks the table test runs against. Bodies are limited to 4 KiB.
const testMaxBody = 4096

// echoFixture: HELLO routed to a live test processor, GOODBYE unrouted.
func echoFixture(t *testing.T, ctx context.Context) *fixture { return echoFixtureWith(t, ctx) }

// echoFixtureWith is echoFixture with extra flags.
func echoFixtureWith(t *testing.T, ctx context.Context, extra ...string) *fixture {
	p := startProcessor(t)
	args := append([]string{"--route", "hello=" + p.addr, "--max-body-bytes", "4096", "--streams-per-target", "2"}, extra...)
	s := startSink(t, args...)
	s.waitRoute(ctx, "TYPE_HELLO", true)
	return &fixture{sink: s, proc: p}
}

// busyFixture: one stream admitting one pending request.
func busyFixture(t *testing.T, ctx context.Context) *fixture {
	return echoFixtureWith(t, ctx, "--max-pending", "1", "--streams-per-target", "1")
}

// deadFixture: HELLO routed to an address where nothing listens.
func deadFixture(t *testing.T, _ context.Context) *fixture {
	return &fixture{sink: startSink(t, "--route", "hello="+deadAddr(t), "--max-body-bytes", "4096")}
}

// eventJSON renders ev as the JSON an HTTP client sends.
func eventJSON(t *testing.T, ev *eventv1.Event) string {
	t.Helper()
	b, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hello(md ...string) *eventv1.Event {
	ev := &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hi")}
	if len(md) > 0 {
		ev.Metadata = map[string]string{}
		for i := 0; i+1 < len(md); i += 2 {
			ev.Metadata[md[i]] = md[i+1]
		}
	}
	return ev
}

// sendCase is one row of TestSend: a request, sent over HTTP and, when it
// has a gRPC form, over gRPC, and the answer wanted on each.
type sendCase struct {
	name    string
	fixture func(*testing.T, context.Context) *fixture

	// The HTTP request: POST /v1/events with body unless method/path say
	// otherwise; chunked hides the length.
	method, path string
	body         string
	chunked      bool
	header       map[string]string

	// The gRPC form, when there is one: this event (or none when nilEvent)
	// with this deadline, or none when noDeadline; grpcMsg replaces wantMsg.
	event      *eventv1.Event
	nilEvent   bool
	deadline   time.Duration
	noDeadline bool
	grpcMsg    string
	grpcMD     []string // outgoing metadata, key value ...

	// before runs once the fixture is up; the func it returns runs after the
	// request. during runs while the request is in flight.
	before func(*testing.T, context.Context, *fixture) func()
	during func(*testing.T, context.Context, *fixture)

	wantStatus int        // HTTP status
	wantCode   codes.Code // gRPC code, also in HTTP error bodies
	wantMsg    string     // in the error message
	wantAllow  string     // Allow header of a 405
	// wantReply checks a successful answer (both transports); sent is the
	// event as sent.
	wantReply func(t *testing.T, sent, got *eventv1.SendResponse)
	// atLeast is a lower bound on the time the answer takes (deadlines).
	atLeast time.Duration
	// noFollowUp skips checking that the next event still succeeds.
	noFollowUp bool
}

// echoed checks a REPLIED answer carrying the sent event back, with an id.
func echoed(wantID string) func(*testing.T, *eventv1.SendResponse, *eventv1.SendResponse) {
	return func(t *testing.T, sent, got *eventv1.SendResponse) {
		t.Helper()
		if got.GetOutcome() != eventv1.Outcome_OUTCOME_REPLIED {
			t.Fatalf("outcome = %v, want REPLIED", got.GetOutcome())
		}
		ev := got.GetEvent()
		if ev.GetId() == "" {
			t.Errorf("reply has no id; the sink must assign one")
		}
		if wantID != "" && ev.GetId() != wantID {
			t.Errorf("reply id = %q, want %q", ev.GetId(), wantID)
		}
		if ev.GetTime() == nil {
			t.Errorf("reply has no time; the sink must set one")
		}
		want, reply := proto.CloneOf(sent.GetEvent()), proto.CloneOf(ev)
		want.Id, want.Time, reply.Id, reply.Time = "", nil, "", nil
		if !proto.Equal(want, reply) {
			t.Errorf("reply (without id and time) = %v, want the event sent: %v", reply, want)
		}
	}
}

func consumed(t *testing.T, _, got *eventv1.SendResponse) {
	t.Helper()
	if got.GetOutcome() != eventv1.Outcome_OUTCOME_CONSUMED || got.GetEvent() != nil {
		t.Fatalf("answer = %v, want CONSUMED without event", got)
	}
}

// occupy fills the only pending slot of a busy fixture with a blocked event.
func occupy(t *testing.T, ctx context.Context, f *fixture) func() {
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, body := f.sink.post(ctx, eventJSON(t, hello("act", "block")))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("blocked event: status %d %s, want 200 once released", resp.StatusCode, body)
		}
	})
	f.proc.waitStarted(ctx)
	return func() {
		f.proc.unblock()
		wg.Wait()
	}
}

// killWhenStarted kills the processor once the blocked event reached it.
func killWhenStarted(t *testing.T, ctx context.Context, f *fixture) {
	f.proc.waitStarted(ctx)
	f.proc.kill()
}

func sendCases(t *testing.T) []sendCase {
	big := strings.Repeat("x", testMaxBody)
	return []sendCase{{
		name:    "routed event, processor replies: 200 and the reply",
		fixture: echoFixture,
		body:    `{"type":"TYPE_HELLO","payload":{"a":[1,"two",true,null],"b":{"c":1.5}},"metadata":{"k":"v"}}`,
		event: &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Metadata: map[string]string{"k": "v"},
			Payload: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}})},
		wantStatus: http.StatusOK,
		wantReply:  echoed(""),
	}, {
		name:       "client id and string payload round-trip",
		fixture:    echoFixture,
		body:       `{"id":"client-1","type":"TYPE_HELLO","payload":"hello there","data":"AAEC"}`,
		event:      &eventv1.Event{Id: "client-1", Type: eventv1.Type_TYPE_HELLO, Payload: structpb.NewStringValue("hello there"), Data: []byte{0, 1, 2}},
		wantStatus: http.StatusOK,
		wantReply:  echoed("client-1"),
	}, {
		name:       "W3C trace context reaches the processor",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","metadata":{"act":"trace"}}`,
		header:     map[string]string{"Traceparent": testTraceparent, "Tracestate": "k=v"},
		event:      hello("act", "trace"),
		grpcMD:     []string{"traceparent", testTraceparent, "tracestate", "k=v"},
		wantStatus: http.StatusOK,
		wantReply: func(t *testing.T, _, got *eventv1.SendResponse) {
			md := got.GetEvent().GetMetadata()
			if md["traceparent"] != testTraceparent || md["tracestate"] != "k=v" {
				t.Errorf("processor saw trace context %v, want the client's", md)
			}
		},
	}, {
		name:       "numeric type",
		fixture:    echoFixture,
		body:       `{"type":1}`,
		wantStatus: http.StatusOK,
		wantReply:  echoed(""),
	}, {
		name:       "processor consumes: 204 with empty body",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","metadata":{"act":"consume"}}`,
		event:      hello("act", "consume"),
		wantStatus: http.StatusNoContent,
		wantReply:  consumed,
	}, {
		name:       "malformed JSON",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO",`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "invalid JSON event",
	}, {
		// JSON's decoder takes it (it counts one level per array, protobuf
		// two), but no processor could decode it: refused, and the
		// processor stream it would have broken goes on.
		name: "payload nested too deeply",
		fixture: func(t *testing.T, ctx context.Context) *fixture {
			return echoFixtureWith(t, ctx, "--max-body-bytes", "65536")
		},
		body:       `{"type":"TYPE_HELLO","payload":` + strings.Repeat("[", 5001) + strings.Repeat("]", 5001) + `}`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "event payload is nested too deeply",
	}, {
		name:       "not JSON at all",
		fixture:    echoFixture,
		body:       `hello`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "invalid JSON event",
	}, {
		name:       "unknown field",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","colour":"red"}`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: `unknown field "colour"`,
	}, {
		name:       "unknown type name",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_WAVE"}`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: `"TYPE_WAVE"`,
	}, {
		name:       "unknown type number",
		fixture:    echoFixture,
		body:       `{"type":99}`,
		event:      &eventv1.Event{Type: 99},
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "unknown event type 99",
	}, {
		name:       "data after the event",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO"} {"type":"TYPE_HELLO"}`,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "syntax error (line 1:23): unexpected token",
	}, {
		name:       "empty body",
		fixture:    echoFixture,
		body:       ``,
		nilEvent:   true,
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "empty request body", grpcMsg: "missing event",
	}, {
		name:       "type missing",
		fixture:    echoFixture,
		body:       `{"payload":"no type"}`,
		event:      &eventv1.Event{Payload: structpb.NewStringValue("no type")},
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "type is required",
	}, {
		name:       "TYPE_UNSPECIFIED",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_UNSPECIFIED"}`,
		event:      &eventv1.Event{Type: eventv1.Type_TYPE_UNSPECIFIED},
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "TYPE_UNSPECIFIED",
	}, {
		name:       "valid type with no route: 501 naming the type",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_GOODBYE"}`,
		event:      &eventv1.Event{Type: eventv1.Type_TYPE_GOODBYE},
		wantStatus: http.StatusNotImplemented, wantCode: codes.Unimplemented,
		wantMsg: "TYPE_GOODBYE",
	}, {
		name:       "body over the limit with Content-Length: 413",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","payload":"` + big + `"}`,
		event:      &eventv1.Event{Type: eventv1.Type_TYPE_HELLO, Data: []byte(big)},
		wantStatus: http.StatusRequestEntityTooLarge, wantCode: codes.ResourceExhausted,
		wantMsg: "larger than",
	}, {
		name:       "chunked body over the limit: 413",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","payload":"` + big + `"}`,
		chunked:    true,
		wantStatus: http.StatusRequestEntityTooLarge, wantCode: codes.ResourceExhausted,
		wantMsg: "larger than the limit of 4096 bytes",
	}, {
		name:       "chunked body within the limit",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO","payload":"small"}`,
		chunked:    true,
		wantStatus: http.StatusOK,
		wantReply:  echoed(""),
	}, {
		name:       "no live processor for the type: 503 at once",
		fixture:    deadFixture,
		body:       `{"type":"TYPE_HELLO"}`,
		header:     map[string]string{"Grpc-Timeout": "100S"},
		event:      hello(),
		deadline:   100 * time.Second,
		wantStatus: http.StatusServiceUnavailable, wantCode: codes.Unavailable,
		wantMsg:    "no live processor for TYPE_HELLO",
		noFollowUp: true,
	}, {
		name:       "stream broke while waiting: 503 at once",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "block")),
		header:     map[string]string{"Grpc-Timeout": "100S"},
		event:      hello("act", "block"),
		deadline:   100 * time.Second,
		during:     killWhenStarted,
		wantStatus: http.StatusServiceUnavailable, wantCode: codes.Unavailable,
		wantMsg:    "broke",
		noFollowUp: true,
	}, {
		name:       "processor slower than the deadline: 504 at the deadline",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "slow")),
		header:     map[string]string{"Grpc-Timeout": "300m"},
		event:      hello("act", "slow"),
		deadline:   300 * time.Millisecond,
		wantStatus: http.StatusGatewayTimeout, wantCode: codes.DeadlineExceeded,
		atLeast: 300 * time.Millisecond,
	}, {
		name:       "Request-Timeout header: 504 at the deadline",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "slow")),
		header:     map[string]string{"Request-Timeout": "0.3"},
		wantStatus: http.StatusGatewayTimeout, wantCode: codes.DeadlineExceeded,
		atLeast: 300 * time.Millisecond,
	}, {
		name:       "default --timeout when the client gives none: 504",
		fixture:    func(t *testing.T, ctx context.Context) *fixture { return echoFixtureWith(t, ctx, "--timeout", "300ms") },
		body:       eventJSON(t, hello("act", "slow")),
		event:      hello("act", "slow"),
		noDeadline: true,
		wantStatus: http.StatusGatewayTimeout, wantCode: codes.DeadlineExceeded,
		atLeast: 300 * time.Millisecond,
	}, {
		name:       "bad Grpc-Timeout header",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO"}`,
		header:     map[string]string{"Grpc-Timeout": "soon"},
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "grpc-timeout",
	}, {
		name:       "bad Request-Timeout header",
		fixture:    echoFixture,
		body:       `{"type":"TYPE_HELLO"}`,
		header:     map[string]string{"Request-Timeout": "soon"},
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "Request-Timeout",
	}, {
		name:       "processor fails with NOT_FOUND: 404",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "error", "code", "NOT_FOUND")),
		event:      hello("act", "error", "code", "NOT_FOUND"),
		wantStatus: http.StatusNotFound, wantCode: codes.NotFound,
		wantMsg: "failing with NOT_FOUND",
	}, {
		name:       "processor fails with INVALID_ARGUMENT: 400",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "error", "code", "INVALID_ARGUMENT")),
		event:      hello("act", "error", "code", "INVALID_ARGUMENT"),
		wantStatus: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		wantMsg: "failing with INVALID_ARGUMENT",
	}, {
		name:       "processor fails with PERMISSION_DENIED: 403",
		fixture:    echoFixture,
		body:       eventJSON(t, hello("act", "error", "code", "PERMISSION_DENIED")),
		event:      hello("act", "error", "code", "PERMISSION_DENIED"),
		wantStatus: http.StatusForbidden, wantCode: codes.PermissionDenied,
		wantMsg: "failing with PERMISSION_DENIED",
	}, {
		name:       "too many pending for the target: 429 at once",
		fixture:    busyFixture,
		body:       `{"type":"TYPE_HELLO"}`,
		header:     map[string]string{"Grpc-Timeout": "100S"},
		event:      hello(),
		deadline:   100 * time.Second,
		before:     occupy,
		wantStatus: http.StatusTooManyRequests, wantCode: codes.ResourceExhausted,
		wantMsg: "too many events pending",
	}, {
		name:       "wrong method: 405",
		fixture:    echoFixture,
		method:     http.MethodGet,
		wantStatus: http.StatusMethodNotAllowed, wantCode: codes.Unimplemented,
		wantAllow: "POST",
	}, {
		name:       "PUT: 405",
		fixture:    echoFixture,
		method:     http.MethodPut,
		body:       `{"type":"TYPE_HELLO"}`,
		wantStatus: http.StatusMethodNotAllowed, wantCode: codes.Unimplemented,
		wantAllow: "POST",
	}, {
		name:       "POST on /healthz: 405",
		fixture:    echoFixture,
		path:       "/healthz",
		wantStatus: http.StatusMethodNotAllowed, wantCode: codes.Unimplemented,
		wantAllow: "GET",
	}, {
		name:       "unknown path: 404",
		fixture:    echoFixture,
		path:       "/v1/nothing",
		body:       `{"type":"TYPE_HELLO"}`,
		wantStatus: http.StatusNotFound, wantCode: codes.NotFound,
		wantMsg: "/v1/nothing",
	}, {
		name:       "path below /v1/events: 404",
		fixture:    echoFixture,
		path:       "/v1/events/1",
		wantStatus: http.StatusNotFound, wantCode: codes.NotFound,
	}}
}

// TestSend sends every row over HTTP and, where it has a gRPC form, over
// gRPC, each against a fresh sink.
func TestSend(t *testing.T) {
	t.Parallel()
	for _, tc := range sendCases(t) {
		t.Run("http/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			f := tc.fixture(t, ctx)
			res := runCase(t, ctx, f, &tc, func() (*eventv1.SendResponse, error) { return sendHTTP(t, ctx, f, &tc) })
			res.http = true
			checkCase(t, ctx, f, &tc, res)
		})
		if tc.event == nil && !tc.nilEvent {
			continue
		}
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			f := tc.fixture(t, ctx)
			res := runCase(t, ctx, f, &tc, func() (*eventv1.SendResponse, error) { return sendGRPC(ctx, f, &tc) })
			checkCase(t, ctx, f, &tc, res)
		})
	}
}

// TestReplyNotJSON: a reply event JSON cannot express (a NaN number) is a
// 500 with a clear message over HTTP, the reply itself over gRPC, and
// nothing else is disturbed.
func TestReplyNotJSON(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixture(t, ctx)
	resp, body := f.sink.post(ctx, eventJSON(t, hello("act", "nan")))
	// protobuf's errors vary their spacing on purpose: match the parts.
	const want, cause = "processor's reply event cannot be written as JSON: ", "google.protobuf.Value.number_value: invalid NaN value"
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), want) || !strings.Contains(string(body), cause) {
		t.Errorf("HTTP: %d %s, want 500 with %q and %q", resp.StatusCode, body, want, cause)
	}
	got, err := f.sink.sinkClient().Send(ctx, &eventv1.SendRequest{Event: hello("act", "nan")})
	if err != nil {
		t.Fatalf("gRPC: %v, want the reply", err)
	}
	if n := got.GetEvent().GetPayload().GetNumberValue(); !math.IsNaN(n) {
		t.Errorf("gRPC: payload number = %v, want NaN", n)
	}
	resp, body = f.sink.post(ctx, eventJSON(t, hello()))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("next event: %d %s, want 200", resp.StatusCode, body)
	}
}

// caseResult is what one transport answered, and how long it took.
type caseResult struct {
	http    bool
	resp    *eventv1.SendResponse
	err     error
	elapsed time.Duration
}

func runCase(t *testing.T, ctx context.Context, f *fixture, tc *sendCase, send func() (*eventv1.SendResponse, error)) caseResult {
	t.Helper()
	if tc.before != nil {
		after := tc.before(t, ctx, f)
		defer after()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if tc.during != nil {
		wg.Go(func() { tc.during(t, ctx, f) })
	}
	start := time.Now()
	resp, err := send()
	return caseResult{resp: resp, err: err, elapsed: time.Since(start)}
}

// sendGRPC sends tc's event with SinkService.Send on the gRPC port.
func sendGRPC(ctx context.Context, f *fixture, tc *sendCase) (*eventv1.SendResponse, error) {
	var cancel context.CancelFunc
	switch {
	case tc.noDeadline:
		// Cancelled with the test, but sent without a deadline so that the
		// sink applies its --timeout.
		ctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		defer context.AfterFunc(ctx, cancel)()
	case tc.deadline > 0:
		ctx, cancel = context.WithTimeout(ctx, tc.deadline)
	default:
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if len(tc.grpcMD) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, tc.grpcMD...)
	}
	return f.sink.sinkClient().Send(ctx, &eventv1.SendRequest{Event: tc.event})
}

// httpError is an HTTP error answer: its status and JSON body.
type httpError struct {
	status int
	allow  string
	st     *status.Status
}

func (e *httpError) Error() string { return e.st.Message() }

// sendHTTP sends tc's HTTP request and turns the answer into the gRPC form:
// a SendResponse for 200 and 204, an *httpError otherwise.
func sendHTTP(t *testing.T, ctx context.Context, f *fixture, tc *sendCase) (*eventv1.SendResponse, error) {
	t.Helper()
	method, path := cmp.Or(tc.method, http.MethodPost), cmp.Or(tc.path, "/v1/events")
	var body io.Reader = strings.NewReader(tc.body)
	if tc.chunked {
		body = io.MultiReader(body) // hides the length: sent chunked
	}
	req, err := http.NewRequestWithContext(ctx, method, f.sink.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if tc.chunked && req.ContentLength != 0 {
		t.Fatalf("request has Content-Length %d, want it chunked", req.ContentLength)
	}
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	resp, raw := f.sink.do(ctx, req)
	checkOpenAPI(t, ctx, f.sink, req, []byte(tc.body), resp, raw)
	switch resp.StatusCode {
	case http.StatusOK:
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var ev eventv1.Event
		if err := protojson.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("200 body %q is not an event: %v", raw, err)
		}
		return &eventv1.SendResponse{Event: &ev, Outcome: eventv1.Outcome_OUTCOME_REPLIED}, nil
	case http.StatusNoContent:
		if len(raw) != 0 {
			t.Errorf("204 body = %q, want empty", raw)
		}
		return &eventv1.SendResponse{Outcome: eventv1.Outcome_OUTCOME_CONSUMED}, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var eb struct {
		Code    *int              `json:"code"`
		Message *string           `json:"message"`
		Details []json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Code == nil || eb.Message == nil || eb.Details == nil {
		t.Fatalf("error body %q: want {\"code\":..,\"message\":..,\"details\":[]} (%v)", raw, err)
	}
	return nil, &httpError{status: resp.StatusCode, allow: resp.Header.Get("Allow"), st: status.New(codes.Code(*eb.Code), *eb.Message)}
}

func checkCase(t *testing.T, ctx context.Context, f *fixture, tc *sendCase, got caseResult) {
	t.Helper()
	st := status.Convert(got.err)
	if he, ok := got.err.(*httpError); ok {
		st = he.st
		if he.status != tc.wantStatus {
			t.Errorf("HTTP status %d (%s), want %d", he.status, st.Message(), tc.wantStatus)
		}
		if tc.wantAllow != "" && he.allow != tc.wantAllow {
			t.Errorf("Allow = %q, want %q", he.allow, tc.wantAllow)
		}
	} else if got.http && tc.wantStatus >= 300 {
		t.Errorf("HTTP answered %v, want status %d", got.resp, tc.wantStatus)
	}
	if st.Code() != tc.wantCode {
		t.Fatalf("code %v (%s), want %v", st.Code(), st.Message(), tc.wantCode)
	}
	wantMsg := tc.wantMsg
	if tc.grpcMsg != "" && !got.http {
		wantMsg = tc.grpcMsg
	}
	if !strings.Contains(st.Message(), wantMsg) {
		t.Errorf("message %q does not contain %q", st.Message(), wantMsg)
	}
	if got.elapsed < tc.atLeast {
		t.Errorf("answered after %v, before the %v deadline", got.elapsed, tc.atLeast)
	}
	if got.err == nil && tc.wantReply != nil {
		sent := tc.event
		if got.http {
			sent = new(eventv1.Event)
			if err := protojson.Unmarshal([]byte(tc.body), sent); err != nil {
				t.Fatalf("case body %q: %v", tc.body, err)
			}
		}
		tc.wantReply(t, &eventv1.SendResponse{Event: sent}, got.resp)
	}
	if tc.noFollowUp || f.proc == nil {
		return
	}
	// Whatever happened, other events are unaffected: late answers are
	// dropped, and the next event gets its own reply.
	f.proc.unblock()
	next := hello("n", "next")
	next.Id = "follow-up"
	resp, body := f.sink.post(ctx, eventJSON(t, next))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("next event: status %d %s, want 200", resp.StatusCode, body)
	}
	var ev eventv1.Event
	if err := protojson.Unmarshal(body, &ev); err != nil || ev.GetId() != "follow-up" || ev.GetMetadata()["n"] != "next" {
		t.Fatalf("next event: reply %s (%v), want the follow-up event back", body, err)
	}
}

// TestReplyIDAndTime: every event the sink returns has an id and a time. A
// processor's fresh reply without them gets a new id and the time it was
// answered, over REST, gRPC Send and Stream (batched, whose replies share
// a message); a reply that has them keeps them.
func TestReplyIDAndTime(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := echoFixture(t, ctx)
	before := time.Now()
	check := func(t *testing.T, how string, reqID string, ev *eventv1.Event) {
		t.Helper()
		if ev.GetId() == "" || ev.GetId() == reqID || ev.GetTime() == nil || ev.GetTime().AsTime().Before(before.Add(-time.Second)) {
			t.Errorf("%s: reply id %q time %v, want a new id (not the request's %q) and the time of the answer", how, ev.GetId(), ev.GetTime(), reqID)
		}
		if want := "fresh " + reqID; ev.GetPayload().GetStringValue() != want {
			t.Errorf("%s: payload %v, want %q", how, ev.GetPayload(), want)
		}
	}

	resp, body := f.sink.post(ctx, `{"id":"rest-1","type":"TYPE_HELLO","metadata":{"act":"fresh"}}`)
	var got eventv1.Event
	if err := protojson.Unmarshal(body, &got); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("REST: %d %s (%v), want 200 with the reply", resp.StatusCode, body, err)
	}
	check(t, "REST", "rest-1", &got)

	sent, err := f.sink.sinkClient().Send(ctx, &eventv1.SendRequest{Event: &eventv1.Event{Id: "grpc-1", Type: eventv1.Type_TYPE_HELLO, Metadata: map[string]string{"act": "fresh"}}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "gRPC Send", "grpc-1", sent.GetEvent())

	ss, err := f.sink.sinkClient().Stream(metadata.AppendToOutgoingContext(ctx, "eventproc-batch", "4194304"))
	if err != nil {
		t.Fatal(err)
	}
	req := new(eventv1.StreamRequest)
	const n = 8
	for i := range n {
		ev := &eventv1.Event{Id: fmt.Sprint("s-", i), Type: eventv1.Type_TYPE_HELLO, Metadata: map[string]string{"act": "fresh"}}
		if i%2 == 1 {
			ev.Metadata = nil // echoed: keeps its id and time
			ev.Time = timestamppb.New(before.Add(-time.Hour))
		}
		req.Batch = append(req.Batch, &eventv1.StreamRequest{Event: ev})
	}
	if err := ss.Send(req); err != nil {
		t.Fatal(err)
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for {
		msg, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		answers := []*eventv1.StreamResponse{msg}
		if len(msg.Batch) > 0 {
			answers = msg.Batch
		}
		for _, a := range answers {
			seen++
			ev := a.GetResponse().GetEvent()
			var i int
			if _, err := fmt.Sscanf(a.GetId(), "s-%d", &i); err != nil {
				t.Fatalf("answer for id %q", a.GetId())
			}
			if i%2 == 0 {
				check(t, "Stream "+a.GetId(), a.GetId(), ev)
			} else if ev.GetId() != a.GetId() || !ev.GetTime().AsTime().Equal(before.Add(-time.Hour)) {
				t.Errorf("Stream %s: echo id %q time %v, want its own", a.GetId(), ev.GetId(), ev.GetTime().AsTime())
			}
		}
	}
	if seen != n {
		t.Errorf("%d answers, want %d", seen, n)
	}
}
