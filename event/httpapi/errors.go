package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/sink"
	"github.com/eventproc/eventproc/internal/eventmetrics"
	"github.com/eventproc/eventproc/internal/protocol"
)

// gatewayError is the mux's error handler (runtime.WithErrorHandler), and
// the one place where errors become HTTP responses.
func (h *Handler) gatewayError(ctx context.Context, mux *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	// The gateway reports a body cut off by a limit as malformed input;
	// say what really happened.
	if berr := h.bodyError(r); berr != nil {
		err = berr
	} else if st, ok := status.FromError(err); ok && !utf8.ValidString(st.Message()) {
		// It quotes the client's bytes, which protojson cannot write (500).
		p := st.Proto()
		p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
		err = status.FromProto(p).Err()
	}
	st := status.Convert(unwrapHTTPStatus(err))
	if r.Method == http.MethodPost && r.URL.Path == sendPath && !decoded(r) {
		// Answered before the backend saw an event, which counts its own.
		h.events.WithLabelValues(eventmetrics.TypeUnknown, st.Code().String()).Inc()
	}
	switch st.Code() {
	case codes.Unauthenticated:
		// The gateway would put the message in WWW-Authenticate.
		w = &challengeWriter{ResponseWriter: w, challenge: challenge(st)}
	case codes.ResourceExhausted:
		if d := retryDelay(st); d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
		}
	case codes.FailedPrecondition:
		if hasReason(st, protocol.ReasonIdempotencyKeyReused) {
			err = &runtime.HTTPStatusError{HTTPStatus: http.StatusUnprocessableEntity, Err: st.Err()}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, errorMarshaler, w, r, err)
}

// sendPath is where events are sent (POST).
const sendPath = "/v1/events"

// decoded reports whether r's body was decoded as an event.
func decoded(r *http.Request) bool {
	b, ok := r.Body.(*requestBody)
	return ok && b.decoded
}

func unwrapHTTPStatus(err error) error {
	if e, ok := errors.AsType[*runtime.HTTPStatusError](err); ok {
		return e.Err
	}
	return err
}

// challenge is the WWW-Authenticate header of an UNAUTHENTICATED answer
// (RFC 6750): error="invalid_token" when a credential was sent.
func challenge(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == protocol.ErrorDomain &&
			info.GetReason() == protocol.ReasonCredentialMissing {
			return "Bearer"
		}
	}
	return `Bearer error="invalid_token"`
}

// hasReason reports whether st carries an eventproc ErrorInfo of reason.
func hasReason(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == protocol.ErrorDomain && info.GetReason() == reason {
			return true
		}
	}
	return false
}

// retryDelay is the delay of a status's RetryInfo, or 0.
func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// challengeWriter sets WWW-Authenticate as the status is written.
type challengeWriter struct {
	http.ResponseWriter
	challenge string
}

func (w *challengeWriter) WriteHeader(code int) {
	w.Header().Set("WWW-Authenticate", w.challenge)
	w.ResponseWriter.WriteHeader(code)
}

// writeError writes err as the response to r.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	h.gatewayError(r.Context(), h.mux, nil, w, r, err)
}

// routingError is the mux's routing error handler
// (runtime.WithRoutingErrorHandler). The gateway's default answers a wrong
// method with 501; HTTP wants 405 and an Allow header.
func (h *Handler) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch allow := h.allow[r.URL.Path]; httpStatus {
	case http.StatusMethodNotAllowed:
		if allow != "" {
			w.Header().Set("Allow", allow)
		}
		err = &runtime.HTTPStatusError{
			HTTPStatus: http.StatusMethodNotAllowed,
			Err:        status.Errorf(codes.Unimplemented, "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow),
		}
	case http.StatusNotFound:
		err = status.Errorf(codes.NotFound, "no such path: %s", r.URL.Path)
	case http.StatusBadRequest:
		err = status.Errorf(codes.InvalidArgument, "malformed request path %q", r.URL.Path)
	default:
		err = &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(codes.Unknown, http.StatusText(httpStatus))}
	}
	h.gatewayError(ctx, mux, m, w, r, err)
}

// errBodyTooLarge is HTTP 413 with RESOURCE_EXHAUSTED, gRPC's code for it.
func (h *Handler) errBodyTooLarge() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        status.Errorf(codes.ResourceExhausted, "request body is larger than the limit of %d bytes", h.opts.MaxBodyBytes),
	}
}

// errBadJSON is the error for a body that is not a valid event, without
// protobuf's "proto: " prefix (whose space is at times a no-break space).
func errBadJSON(err error) error {
	msg := strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0")
	return fmt.Errorf("invalid JSON event: %s", msg)
}

// withoutSentinel drops the sink's "invalid sink config: " error prefix.
func withoutSentinel(err error) string {
	return strings.Replace(err.Error(), sink.ErrInvalidConfig.Error()+": ", "", 1)
}
