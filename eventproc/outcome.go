package main

import (
	"context"
	"net/http"

	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// forwardOutcome is a gateway forward-response option that picks the HTTP
// status of a Send answer from its outcome: REPLIED is 200 with the reply
// event as body; CONSUMED is 204 and ACCEPTED 202, both with an empty body.
//
// The gateway hands the option its own wrapper of *eventv1.SendResponse (the
// one that selects response_body), so look for the method rather than the
// type.
func forwardOutcome(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	o, ok := m.(interface{ GetOutcome() eventv1.Outcome })
	if !ok {
		return nil
	}
	switch o.GetOutcome() {
	case eventv1.Outcome_OUTCOME_CONSUMED:
		writeEmpty(w, http.StatusNoContent)
	case eventv1.Outcome_OUTCOME_ACCEPTED:
		writeEmpty(w, http.StatusAccepted)
	}
	return nil
}

// writeEmpty sends status with no body; the body the gateway writes next is
// discarded.
func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Del("Content-Type")
	if d, ok := w.(interface{ discardBody() }); ok {
		d.discardBody()
	}
	w.WriteHeader(status)
}

// responseWriter records the status of a response and can swallow its body.
type responseWriter struct {
	http.ResponseWriter
	status  int
	discard bool
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
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets [http.ResponseController] reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) discardBody() { w.discard = true }
