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
)

// backend is what the HTTP API needs of the sink.
type backend interface {
	eventv1.SinkServiceServer
	subscriber
	Status() []sink.RouteStatus
	// Dispatch is Send with the reply event decoded: the gateway encodes
	// it as JSON, while the sink's gRPC Send relays it as the processor's
	// bytes (see [sink.Sink.Send]).
	Dispatch(ctx context.Context, ev *eventv1.Event) (*eventv1.SendResponse, error)
}

// gatewayService is the SinkService the gateway calls in-process: Send
// goes through Dispatch, which hands back a decoded reply for JSON.
type gatewayService struct{ backend }

func (g gatewayService) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return g.Dispatch(ctx, req.GetEvent())
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
	allow   map[string]string // path → the methods it serves, for 405s
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
			"/v1/events":           http.MethodPost,
			"/v1/events:subscribe": http.MethodGet,
			"/healthz":             http.MethodGet,
			"/readyz":              http.MethodGet,
			typesPath:              http.MethodGet,
		},
	}
	a.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, eventMarshaler{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithErrorHandler(a.gatewayError),
		runtime.WithRoutingErrorHandler(a.routingError),
		runtime.WithForwardResponseOption(forwardOutcome),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		// No method or path games: POST /v1/events is the only way to send.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	// In-process: HTTP requests call the sink directly, without a gRPC hop.
	if err := eventv1.RegisterSinkServiceHandlerServer(context.Background(), a.mux, gatewayService{b}); err != nil {
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
func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.ContentLength > a.maxBody {
		a.writeError(w, r, errBodyTooLarge(a.maxBody))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Bodies without a Content-Length (chunked) are cut off at the limit;
		// gatewayError turns the resulting decode error into a 413.
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, a.maxBody)}
	}
	rw := &responseWriter{ResponseWriter: w}
	if v := r.Header.Get("Request-Timeout"); v != "" {
		d, err := parseTimeout(v)
		if err != nil || d <= 0 {
			a.writeError(rw, r, status.Errorf(codes.InvalidArgument,
				"invalid Request-Timeout %q: want a positive duration such as 500ms or 2s, or a number of seconds", v))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	a.mux.ServeHTTP(rw, r)
	if a.log.Enabled(r.Context(), slog.LevelDebug) {
		a.log.Debug("http request", "method", r.Method, "path", r.URL.Path,
			"status", rw.status, "duration", time.Since(start))
	}
}

// incomingHeader picks the HTTP headers passed to the sink as gRPC
// metadata: the gateway's defaults plus the W3C trace context, which the
// sink forwards to the processor with each event.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Traceparent":
		return "traceparent", true
	case "Tracestate":
		return "tracestate", true
	}
	return runtime.DefaultHeaderMatcher(key)
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
// whether it was.
type limitedBody struct {
	io.ReadCloser
	exceeded atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.exceeded.Store(true)
	}
	return n, err
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
// RawMessage, then protojson).
func (m eventMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
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
		if err := m.UnmarshalOptions.Unmarshal(buf.Bytes(), msg); err != nil {
			return errBadJSON(err)
		}
		return nil
	})
}

// bodyBuffers holds buffers for request bodies; buffers that grew past
// maxPooledBody are left to the garbage collector.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 64 << 10
