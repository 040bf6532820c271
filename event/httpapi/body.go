package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/eventproc/eventproc/internal/eventmetrics"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultBodyReadTimeout is the body read timeout when
// Options.BodyReadTimeout is 0.
const DefaultBodyReadTimeout = 10 * time.Second

// requestBody is a request body with the handler's limits: its size
// (Options.MaxBodyBytes) and how long each read may wait for data
// (Options.BodyReadTimeout). It remembers which limit cut it off, for
// gatewayError. Like any request body, it is read by one goroutine.
type requestBody struct {
	io.ReadCloser // http.MaxBytesReader over the client's body
	// rc sets the read deadline; nil when the ResponseWriter has none
	// (httptest.ResponseRecorder).
	rc       *http.ResponseController
	timeout  time.Duration
	by       time.Time // the whole body must have come by then
	done     bool      // read to the end: no deadline any more
	exceeded bool      // longer than MaxBodyBytes
	timedOut bool      // a read waited longer than timeout
	// decoded is set once the body was decoded as an event: the backend
	// gets it, and counts its answer.
	decoded bool
}

// limitBody replaces r.Body, when there is one, with a requestBody. w must
// be the server's ResponseWriter.
//
// A body that is expected (a Content-Length, or chunked) must start within
// the timeout even when the handler does not read it: on HTTP/1.1 the
// server reads what is left of it before writing the answer. A request
// without a body (every GET, so SSE and NDJSON subscriptions) gets no
// deadline at all.
func (h *Handler) limitBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	b := &requestBody{ReadCloser: http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes), timeout: h.opts.BodyReadTimeout,
		by: time.Now().Add(wholeBodyReads * h.opts.BodyReadTimeout)}
	if rc := http.NewResponseController(w); rc.SetReadDeadline(time.Time{}) == nil {
		b.rc = rc
		if r.ContentLength != 0 {
			b.setDeadline()
		}
	}
	r.Body = b
}

// wholeBodyReads is how many read timeouts the whole body may take: a
// client that trickles a byte now and then, each within the timeout, is
// cut off all the same.
const wholeBodyReads = 6

// setDeadline gives the next read of the body the timeout, or what is
// left of the whole body's time if that is less.
func (b *requestBody) setDeadline() {
	// Works on HTTP/1.1 (the connection's deadline) and HTTP/2 (a timer
	// per stream that ends its body with os.ErrDeadlineExceeded).
	d := time.Now().Add(b.timeout)
	if d.After(b.by) {
		d = b.by
	}
	_ = b.rc.SetReadDeadline(d)
}

// Read reads from the body, giving each read the timeout. Once the body
// is read, the deadline is cleared, so that it cannot cut off the request
// while its answer is awaited (on HTTP/1.1 the server then reads the
// connection to notice a client that goes away). After a timeout it stays:
// on HTTP/1.1 the server's attempt to read the rest of the body before
// answering then fails at once, and it closes the connection after the
// answer; on HTTP/2 the stream is reset once the handler returns.
func (b *requestBody) Read(p []byte) (int, error) {
	if b.rc != nil && !b.done {
		b.setDeadline()
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if b.rc != nil && !b.done {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		b.done = true
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
	default:
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			b.exceeded = true
		}
	}
	return n, err
}

// Reasons a request was cut off, the values of the reason label of
// eventproc_http_requests_cut_total.
const (
	cutBodyTooLarge    = "body_too_large"
	cutBodyReadTimeout = "body_read_timeout"
)

// newCutCounter returns eventproc_http_requests_cut_total, registered with
// reg when it is not nil; handlers that share a registry share the counter.
func newCutCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventproc_http_requests_cut_total",
		Help: "HTTP requests cut off before they were served, by reason (body_too_large, body_read_timeout).",
	}, []string{"reason"})
	for _, reason := range []string{cutBodyTooLarge, cutBodyReadTimeout} {
		c.WithLabelValues(reason) // shown as 0 until the first one
	}
	return eventmetrics.Register(reg, c)
}

// bodyError returns the error that says why r's body was cut off, and
// counts it; nil when it was not.
func (h *Handler) bodyError(r *http.Request) error {
	b, ok := r.Body.(*requestBody)
	switch {
	case !ok:
		return nil
	case b.exceeded:
		h.cut.WithLabelValues(cutBodyTooLarge).Inc()
		return h.errBodyTooLarge()
	case b.timedOut:
		h.cut.WithLabelValues(cutBodyReadTimeout).Inc()
		// DEADLINE_EXCEEDED, not CANCELLED: a time limit ran out, and the
		// client did not cancel anything. The event was never routed, so it
		// can be sent again.
		msg := fmt.Sprintf("request body: nothing received for %v (the server's body read timeout)", b.timeout)
		if !time.Now().Before(b.by) {
			msg = fmt.Sprintf("request body: not complete within %v (%d times the server's body read timeout)",
				wholeBodyReads*b.timeout, wholeBodyReads)
		}
		return &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestTimeout, Err: status.Error(codes.DeadlineExceeded, msg)}
	}
	return nil
}
