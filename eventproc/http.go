package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventjson"
)

// backend is what the HTTP API needs of the sink.
type backend interface {
	eventv1.SinkServiceServer
	subscriber
	Status() []sink.RouteStatus
}

// httpAPI is the HTTP front: the grpc-gateway mux with SinkService
// registered in-process, the health endpoints, and the middleware that
// bounds bodies and deadlines.
type httpAPI struct {
	mux     *runtime.ServeMux
	backend backend
	ready   func() bool
	log     *slog.Logger
	maxBody int64
	errors  runtime.Marshaler
	// unmarshal decodes events, as the gateway's marshaler does.
	unmarshal protojson.UnmarshalOptions
	allow     map[string]string // path → the methods it serves, for 405s
	// streams ends HTTP subscriptions when it ends (at the start of
	// shutdown); heartbeat is the SSE heartbeat interval.
	streams   context.Context
	heartbeat time.Duration
}

// newHTTPAPI builds the HTTP handler. ready reports whether the sink can
// take traffic (/readyz); maxBody bounds request bodies.
func newHTTPAPI(b backend, ready func() bool, maxBody int64, log *slog.Logger) (*httpAPI, error) {
	a := &httpAPI{
		backend: b,
		ready:   ready,
		log:     log,
		maxBody: maxBody,
		errors:  errorMarshaler(),
		// server.go sets the real ones.
		streams:   context.Background(),
		heartbeat: defaultSSEHeartbeat,
		allow: map[string]string{
			sendPath:               http.MethodPost,
			"/v1/events:subscribe": http.MethodGet,
			"/healthz":             http.MethodGet,
			"/readyz":              http.MethodGet,
			typesPath:              http.MethodGet,
		},
	}
	events := eventMarshaler{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	a.unmarshal = events.UnmarshalOptions
	a.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, events),
		runtime.WithErrorHandler(a.gatewayError),
		runtime.WithRoutingErrorHandler(a.routingError),
		runtime.WithForwardResponseOption(forwardOutcome),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		// No method or path games: POST /v1/events is the only way to send.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	// In-process: HTTP requests call the sink directly, without a gRPC hop.
	if err := eventv1.RegisterSinkServiceHandlerServer(context.Background(), a.mux, b); err != nil {
		return nil, err
	}
	// Registered after the gateway's handlers, so these win: the gateway
	// answers server-streaming calls registered in-process with 501.
	for path, h := range map[string]runtime.HandlerFunc{
		subscribePath: a.subscribe,
		typesPath:     a.types,
		"/healthz":    a.healthz,
		"/readyz":     a.readyz,
	} {
		if err := a.mux.HandlePath(http.MethodGet, path, h); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	if err := a.mountConsole(); err != nil {
		return nil, err
	}
	return a, nil
}

// mount serves h at GET path, next to the API.
func (a *httpAPI) mount(path string, h http.Handler) error {
	a.allow[path] = http.MethodGet
	return a.mux.HandlePath(http.MethodGet, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP implements [http.Handler].
//
// Its frame is kept small, and the body of POST /v1/events is decoded here
// rather than in the gateway's decoder: the connection goroutine's stack
// is sized by the deepest call it ever makes and then kept while the
// request waits for its processor, so decoding at the bottom of the stack
// instead of under the gateway's frames keeps most connections at 8 KiB of
// stack rather than 16 (docs/performance.md).
func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > a.maxBody {
		a.writeError(w, r, errBodyTooLarge(a.maxBody))
		return
	}
	x := &exchange{rw: responseWriter{ResponseWriter: w}}
	if r.Body != nil && r.Body != http.NoBody {
		// Bodies without a Content-Length (chunked) are cut off at the limit;
		// gatewayError turns the resulting decode error into a 413.
		x.body.ReadCloser = http.MaxBytesReader(w, r.Body, a.maxBody)
		r.Body = &x.body
	}
	if len(r.Header["Request-Timeout"]) > 0 || a.log.Enabled(r.Context(), slog.LevelDebug) {
		a.serveSlow(x, r)
		return
	}
	x.decodeSend(r, a.unmarshal)
	a.mux.ServeHTTP(&x.rw, r)
}

// serveSlow serves r within the deadline of its Request-Timeout header
// (400 when that is not a positive duration), and logs it at debug level.
//
//go:noinline
func (a *httpAPI) serveSlow(x *exchange, r *http.Request) {
	start := time.Now()
	if v := r.Header.Get("Request-Timeout"); v != "" {
		d, err := parseTimeout(v)
		if err != nil || d <= 0 {
			a.writeError(&x.rw, r, status.Errorf(codes.InvalidArgument,
				"invalid Request-Timeout %q: want a positive duration such as 500ms or 2s, or a number of seconds", v))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	x.decodeSend(r, a.unmarshal)
	a.mux.ServeHTTP(&x.rw, r)
	a.logRequest(r, x.rw.status, start)
}

// logRequest logs a served request at debug level.
func (a *httpAPI) logRequest(r *http.Request, status int, start time.Time) {
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		a.log.Debug("http request", "method", r.Method, "path", r.URL.Path,
			"status", status, "duration", time.Since(start))
	}
}

// sendPath is where clients POST events.
const sendPath = "/v1/events"

// exchange is the per-request state of the HTTP front, in one allocation:
// the response writer and the bounded body.
type exchange struct {
	rw   responseWriter
	body limitedBody
}

// decodeSend decodes the body of a send before the gateway does (see
// [httpAPI.ServeHTTP]); the gateway's decoder hands the result over.
func (x *exchange) decodeSend(r *http.Request, u protojson.UnmarshalOptions) {
	if r.Body == &x.body && r.Method == http.MethodPost && r.URL.Path == sendPath {
		x.body.predecode(u)
	}
}

// incomingHeader picks the HTTP headers passed to the sink as gRPC
// metadata: the W3C trace context, which the sink forwards to the processor
// with each event, also in the gateway's Grpc-Metadata- form. Nothing in
// the sink reads any other incoming metadata, so the gateway's defaults
// (grpcgateway-user-agent, grpcgateway-content-type, …) are not built for
// every request. The gateway itself always adds authorization,
// x-forwarded-host and x-forwarded-for.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Traceparent", "Grpc-Metadata-Traceparent":
		return "traceparent", true
	case "Tracestate", "Grpc-Metadata-Tracestate":
		return "tracestate", true
	}
	return "", false
}

// healthz answers the liveness probe: the process is up.
func (a *httpAPI) healthz(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok")
}

// readiness is the /readyz body.
type readiness struct {
	Ready  bool               `json:"ready"`
	Routes []sink.RouteStatus `json:"routes"`
}

// readyz answers the readiness probe: 200 when every route has a live
// processor stream and the sink is not shutting down, else 503.
func (a *httpAPI) readyz(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	body := readiness{Ready: a.ready(), Routes: a.backend.Status()}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// limitedBody is a request body cut off at the size limit, remembering
// whether it was. For a send, it also carries the event [httpAPI.serve]
// decoded from it, which the gateway's decoder hands over.
type limitedBody struct {
	io.ReadCloser
	exceeded atomic.Bool
	decoded  bool // event and err are the result of reading the body
	event    *eventv1.Event
	err      error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.exceeded.Store(true)
	}
	return n, err
}

// predecode reads and decodes the body as an event, for [limitedBody.Decode].
//
//go:noinline
func (b *limitedBody) predecode(u protojson.UnmarshalOptions) {
	ev := new(eventv1.Event)
	b.err = readEvent(b, u, ev)
	if b.err == nil {
		b.event = ev
	}
	b.decoded = true
}

// Decode implements [runtime.Decoder] for a body decoded by predecode: it
// hands over the event, or the error reading or decoding it.
func (b *limitedBody) Decode(v any) error {
	if b.err != nil {
		return b.err
	}
	ev, ok := v.(**eventv1.Event)
	if !ok {
		return fmt.Errorf("cannot decode JSON into %T", v)
	}
	*ev, b.event = b.event, nil
	return nil
}

// eventMarshaler is the gateway's JSON marshaler (protojson) with a stricter
// decoder: error messages say the body is at fault, an empty body is an
// error, and nothing may follow the event.
type eventMarshaler struct {
	*runtime.JSONPb
}

// NewDecoder implements [runtime.Marshaler]. The decoder reads the whole
// body (already bounded by the body limit) into a pooled buffer and parses
// it once with protojson, which also rejects anything after the event: the
// gateway's default decoder parses every body twice (encoding/json into a
// RawMessage, then protojson). A send's body was already decoded this way
// by [httpAPI.serve]; its decoder hands the result over.
func (m eventMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	if b, ok := r.(*limitedBody); ok && b.decoded {
		return b
	}
	return runtime.DecoderFunc(func(v any) error {
		var msg proto.Message
		switch v := v.(type) {
		case **eventv1.Event: // the request body is SendRequest.event
			if *v == nil {
				*v = new(eventv1.Event)
			}
			msg = *v
		case proto.Message:
			msg = v
		default:
			return fmt.Errorf("cannot decode JSON into %T", v)
		}
		return readEvent(r, m.UnmarshalOptions, msg)
	})
}

// Marshal implements [runtime.Marshaler]. A send's answer arrives as
// [jsonBody], already written by relayedJSON; events are written by
// [eventjson], which writes what protojson would in a sixth of the time;
// other messages go to protojson straight into the returned slice (the
// embedded JSONPb copies it once more).
func (m eventMarshaler) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case *eventv1.Event:
		return eventjson.Marshal(v)
	}
	if msg, ok := v.(proto.Message); ok {
		return m.MarshalOptions.Marshal(msg)
	}
	return m.JSONPb.Marshal(v)
}

// readEvent reads r to its end into a pooled buffer and decodes it into
// msg with u.
func readEvent(r io.Reader, u protojson.UnmarshalOptions, msg proto.Message) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return err // a read error, or the body limit (gatewayError answers 413)
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return errors.New(`empty request body: want a JSON event such as {"type":"TYPE_HELLO"}`)
	}
	var err error
	if ev, ok := msg.(*eventv1.Event); ok {
		err = eventjson.Unmarshal(buf.Bytes(), ev, u) // protojson's result, faster
	} else {
		err = u.Unmarshal(buf.Bytes(), msg)
	}
	if err != nil {
		return errBadJSON(err)
	}
	return nil
}

// bodyBuffers holds buffers for request bodies; buffers that grew past
// maxPooledBody are left to the garbage collector.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 64 << 10
