package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/pubsub"
	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventmetrics"
	"github.com/eventproc/eventproc/internal/protocol"
)

// Backend is the sink as the HTTP API uses it; [*sink.Sink] is one. Its
// methods are called from many goroutines at once.
type Backend interface {
	// Send routes an event and waits for its answer: a reply (Event set
	// when the outcome is REPLIED) or a gRPC status error.
	Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error)
	// SubscribeEvents subscribes to the events processors publish; errors
	// are gRPC status errors. The subscription ends with ctx.
	SubscribeEvents(ctx context.Context, types []eventv1.Type, lastEventID string) (*pubsub.Subscription, error)
	// Status reports the health of every route, in a stable order.
	Status() []sink.RouteStatus
}

const (
	// DefaultMaxBodyBytes is the body limit when Options.MaxBodyBytes is 0.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultHeartbeat is the SSE heartbeat when Options.Heartbeat is 0.
	DefaultHeartbeat = 15 * time.Second
)

// Options configure a [Handler]. The zero value is ready to use.
type Options struct {
	// MaxBodyBytes bounds request bodies: larger ones are answered 413,
	// with or without a Content-Length. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// BodyReadTimeout is how long each read of a request body may wait
	// for data: a body that stalls longer is cut off, answered 408 with
	// DEADLINE_EXCEEDED, and its connection (HTTP/1.1) or stream (HTTP/2)
	// closed. Requests without a body, subscriptions among them, have no
	// such limit. Zero means DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// Heartbeat is the interval of comments that keep idle Server-Sent
	// Events streams open through proxies. Zero means DefaultHeartbeat.
	Heartbeat time.Duration
	// Metrics, when set, is served at GET /metrics.
	Metrics http.Handler
	// Stats, when set, is the registry of the sink's metrics (its
	// Config.Metrics): GET /v1/stats answers a JSON snapshot of them, which
	// the console charts. When authentication is on, it needs what /metrics
	// needs ((*auth.Authenticator).HTTP asks for the read:metrics scope).
	Stats prometheus.Gatherer
	// MetricsRegisterer, when set, gets the handler's metrics:
	// eventproc_http_requests_cut_total{reason}, the requests cut off by
	// the body limits (body_too_large, body_read_timeout), and
	// eventproc_events_total{type="unknown",code}, the answers to POST
	// /v1/events given before the backend got an event (a body that is not
	// a valid event, too large or too slow, a refused credential). With
	// the registry of a [sink.Sink], that counter is the sink's own, which
	// counts every other answer.
	MetricsRegisterer prometheus.Registerer
	// Logger gets debug logs of requests and subscriptions; nil discards.
	Logger *slog.Logger
	// Authenticate, when set, authenticates every request but those of
	// /healthz, /readyz, /openapi.json and the console's own files. It returns the context
	// to serve the request with, carrying the caller's identity (which the
	// backend's authorization reads), or a status error to answer:
	// UNAUTHENTICATED is 401 with a WWW-Authenticate challenge,
	// PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429 with a Retry-After
	// from its RetryInfo. (*auth.Authenticator).HTTP is one.
	Authenticate func(r *http.Request) (context.Context, error)
	// IssueTicket, when set, serves POST /v1/tickets: it mints a
	// single-use ticket for the caller behind ctx, which a browser's
	// EventSource (it cannot send headers) presents as ?ticket= on GET
	// /v1/events:subscribe. (*auth.Authenticator).IssueTicket is one.
	IssueTicket func(ctx context.Context) (ticket string, expires time.Time, err error)
	// CloudEventTypes names the CloudEvents type of event types; a type
	// not in it is known by its enum name (TYPE_HELLO). A CloudEvent of a
	// type that maps to no event type is answered 400.
	CloudEventTypes map[eventv1.Type]string
}

// Handler serves the sink's HTTP API (see the package comment). It is safe
// for concurrent use.
type Handler struct {
	mux     *runtime.ServeMux
	backend Backend
	opts    Options
	cut     *prometheus.CounterVec // requests cut off, by reason
	events  *prometheus.CounterVec // eventproc_events_total
	allow   map[string]string      // path → the method it serves, for 405s
	public  map[string]bool        // paths served without Authenticate
	ce      ceTypes                // CloudEvents type names
	// stopping ends when Shutdown is called, with errShuttingDown.
	stopping context.Context
	stop     context.CancelCauseFunc
}

// New returns the HTTP API of backend. It starts no goroutines.
func New(backend Backend, opts Options) (*Handler, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cut, err := newCutCounter(opts.MetricsRegisterer)
	if err != nil {
		return nil, err
	}
	ce, err := newCETypes(opts.CloudEventTypes)
	if err != nil {
		return nil, err
	}
	events, err := eventmetrics.Events(opts.MetricsRegisterer)
	if err != nil {
		return nil, err
	}
	h := &Handler{backend: backend, opts: opts, cut: cut, events: events, ce: ce, allow: map[string]string{sendPath: http.MethodPost}}
	h.stopping, h.stop = context.WithCancelCause(context.Background())
	h.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, eventMarshaler{&runtime.JSONPb{}}),
		runtime.WithErrorHandler(h.gatewayError),
		runtime.WithRoutingErrorHandler(h.routingError),
		runtime.WithForwardResponseOption(forwardOutcome),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		// No method or path games: POST /v1/events is the only way to send.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	// In-process: a request calls the backend directly, without a gRPC hop.
	if err := eventv1.RegisterSinkServiceHandlerServer(context.Background(), h.mux, gatewayServer{backend: backend}); err != nil {
		return nil, err
	}
	// Registered after the gateway's handlers, so these win: the gateway
	// answers server-streaming calls registered in-process with 501.
	paths := map[string]http.HandlerFunc{
		"/v1/events:subscribe": h.subscribe,
		"/v1/types":            h.types,
		"/healthz":             healthz,
		"/readyz":              h.readyz,
		openapiPath:            serveOpenAPI,
	}
	if opts.Metrics != nil {
		paths["/metrics"] = opts.Metrics.ServeHTTP
	}
	if opts.Stats != nil {
		paths[statsPath] = h.stats
	}
	h.public = map[string]bool{"/healthz": true, "/readyz": true, openapiPath: true}
	if err := consolePaths(paths, h.public); err != nil {
		return nil, err
	}
	if opts.IssueTicket != nil {
		h.allow[ticketsPath] = http.MethodPost
		if err := h.mux.HandlePath(http.MethodPost, ticketsPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			h.ticket(w, r)
		}); err != nil {
			return nil, fmt.Errorf("POST %s: %w", ticketsPath, err)
		}
	}
	if dl, ok := backend.(DeadLetterBackend); ok {
		paths[deadLettersPath] = func(w http.ResponseWriter, r *http.Request) { h.listDeadLetters(dl, w, r) }
		h.allow[replayPath] = http.MethodPost
		if err := h.mux.HandlePath(http.MethodPost, replayPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			h.replayDeadLetters(dl, w, r)
		}); err != nil {
			return nil, fmt.Errorf("POST %s: %w", replayPath, err)
		}
	}
	for path, fn := range paths {
		h.allow[path] = http.MethodGet
		if err := h.mux.HandlePath(http.MethodGet, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			fn(w, r)
		}); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	return h, nil
}

// gatewayServer is the backend for the gateway; only Send is called.
type gatewayServer struct {
	eventv1.UnimplementedSinkServiceServer
	backend Backend
}

func (s gatewayServer) Send(ctx context.Context, req *eventv1.SendRequest) (*eventv1.SendResponse, error) {
	return s.backend.Send(ctx, req)
}

// Shutdown starts the handler's shutdown: /readyz answers 503, and live
// subscriptions end with an UNAVAILABLE error event or line so that they do
// not hold up [http.Server.Shutdown]; other requests are served as before.
// Call it at shutdown (or via [http.Server.RegisterOnShutdown]); idempotent.
func (h *Handler) Shutdown() { h.stop(errShuttingDown) }

// errShuttingDown ends HTTP subscriptions at shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "sink is shutting down")

// ServeHTTP implements [http.Handler]: it bounds the body, applies a
// Request-Timeout header as the deadline, and calls the gateway's mux.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Bodies without a Content-Length (chunked) are cut off at the limit,
	// and bodies that stall at the read timeout; gatewayError turns the read
	// error into a 413 or 408.
	h.limitBody(w, r)
	if h.opts.Logger.Enabled(r.Context(), slog.LevelDebug) {
		sw := &statusWriter{ResponseWriter: w}
		defer func(start time.Time) {
			h.opts.Logger.Debug("http request", "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "duration", time.Since(start))
		}(time.Now())
		w = sw
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		h.cut.WithLabelValues(cutBodyTooLarge).Inc()
		h.writeError(w, r, h.errBodyTooLarge())
		return
	}
	if h.opts.Authenticate != nil && !h.public[r.URL.Path] {
		ctx, err := h.opts.Authenticate(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		r = r.WithContext(ctx)
	}
	if v := r.Header.Get("Request-Timeout"); v != "" {
		d, err := parseTimeout(v)
		if err != nil || d <= 0 {
			h.writeError(w, r, status.Errorf(codes.InvalidArgument,
				"invalid Request-Timeout %q: want a positive duration such as 500ms or 2s, or a number of seconds", v))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if isCloudEvent(r) {
		h.cloudEvent(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// statusWriter records the status of a response, for the debug log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets [http.ResponseController] reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// incomingHeader passes only the W3C trace context and Idempotency-Key
// (also in Grpc-Metadata- form) to the backend as gRPC metadata: nothing
// reads other metadata.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Traceparent", "Grpc-Metadata-Traceparent":
		return "traceparent", true
	case "Tracestate", "Grpc-Metadata-Tracestate":
		return "tracestate", true
	case "Idempotency-Key", "Grpc-Metadata-Idempotency-Key":
		return protocol.IdempotencyKey, true
	}
	return "", false
}

// ticketsPath mints tickets (Options.IssueTicket).
const ticketsPath = "/v1/tickets"

// ticket serves POST /v1/tickets: {"ticket": "…", "expires_at": "…"}.
func (h *Handler) ticket(w http.ResponseWriter, r *http.Request) {
	t, expires, err := h.opts.IssueTicket(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Ticket    string    `json:"ticket"`
		ExpiresAt time.Time `json:"expires_at"`
	}{t, expires.UTC()})
}

// healthz answers the liveness probe: the process is up.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok")
}

// readyz answers the readiness probe, {"ready":bool,"routes":[...]}: 200
// when every route has a live stream and Shutdown was not called, else 503.
func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	routes := h.backend.Status()
	ready := h.stopping.Err() == nil
	for _, r := range routes {
		ready = ready && r.Ready
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, struct {
		Ready  bool               `json:"ready"`
		Routes []sink.RouteStatus `json:"routes"`
	}{ready, routes})
}

// writeJSON answers with code and v as JSON, not to be cached.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// parseTimeout parses a Request-Timeout: a Go duration or seconds.
func parseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("duration %q out of range", v)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}
