package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// This file rebuilds the sink binary's HTTP front (eventproc/http.go,
// package main, not importable) closely enough to profile it in-process:
// the same gateway options, marshaler, decoder, body limit and response
// wrapper on the hot path of POST /v1/events. Health, readiness and the
// error-mapping details it leaves out are off the hot path.

// gatewayHandler is the in-process HTTP front of a SinkServiceServer.
type gatewayHandler struct {
	mux     *runtime.ServeMux
	maxBody int64
}

// newGatewayHandler registers srv in-process on a grpc-gateway mux
// configured as eventproc configures its own.
func newGatewayHandler(srv eventv1.SinkServiceServer, maxBody int64) (*gatewayHandler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, eventMarshaler{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithForwardResponseOption(forwardOutcome),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	)
	if err := eventv1.RegisterSinkServiceHandlerServer(context.Background(), mux, srv); err != nil {
		return nil, err
	}
	return &gatewayHandler{mux: mux, maxBody: maxBody}, nil
}

// ServeHTTP implements [http.Handler] as eventproc's httpAPI does: bound
// the body, wrap the response writer, hand over to the gateway mux.
func (g *gatewayHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > g.maxBody {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	}
	rw := &responseWriter{ResponseWriter: w}
	g.mux.ServeHTTP(rw, r)
}

// incomingHeader passes the W3C trace headers on, as eventproc does.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Traceparent":
		return "traceparent", true
	case "Tracestate":
		return "tracestate", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// eventMarshaler is eventproc's: protojson, with a decoder that rejects
// empty bodies and trailing data.
type eventMarshaler struct {
	*runtime.JSONPb
}

// NewDecoder implements [runtime.Marshaler].
func (m eventMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return eventDecoder{d: d, inner: runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.UnmarshalOptions}}
}

type eventDecoder struct {
	d     *json.Decoder
	inner runtime.DecoderWrapper
}

func (e eventDecoder) Decode(v any) error {
	if err := e.inner.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty request body")
		}
		return fmt.Errorf("invalid JSON event: %w", err)
	}
	if _, err := e.d.Token(); !errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "unexpected data after the event object")
	}
	return nil
}

// forwardOutcome picks the HTTP status from the Send outcome, as eventproc
// does.
func forwardOutcome(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	o, ok := m.(interface{ GetOutcome() eventv1.Outcome })
	if !ok {
		return nil
	}
	switch o.GetOutcome() {
	case eventv1.Outcome_OUTCOME_CONSUMED:
		w.WriteHeader(http.StatusNoContent)
	case eventv1.Outcome_OUTCOME_ACCEPTED:
		w.WriteHeader(http.StatusAccepted)
	}
	return nil
}

// responseWriter records the status of a response, as eventproc's does.
type responseWriter struct {
	http.ResponseWriter
	status int
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets [http.ResponseController] reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// directHandler is the least an HTTP front can do for POST /v1/events: read
// the body, decode it once with protojson, dispatch, encode the reply. It
// exists to measure what the gateway costs (serve-sink --rest direct); it
// maps every error to 400 or 503 without the gateway's details.
func directHandler(sk interface {
	Dispatch(context.Context, *eventv1.Event) (*eventv1.SendResponse, error)
}, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev := new(eventv1.Event)
		if err := protojson.Unmarshal(body, ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := sk.Dispatch(r.Context(), ev)
		if err != nil {
			http.Error(w, status.Convert(err).Message(), http.StatusServiceUnavailable)
			return
		}
		out, err := protojson.Marshal(resp.GetEvent())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}
