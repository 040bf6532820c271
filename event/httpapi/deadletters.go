package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Dead letters of durable routes, when the backend keeps them
// ([DeadLetterBackend]; *sink.Sink does):
//
//	GET  /v1/deadletters?type=hello[&after=SEQ][&limit=N]
//	POST /v1/deadletters:replay  {"type":"hello","sequences":[1,2]}
//
// Both need the replay:<type> scope when authentication is on (the
// backend asks sink.ActionReplay).

// Paths of the dead-letter endpoints.
const (
	deadLettersPath = "/v1/deadletters"
	replayPath      = "/v1/deadletters:replay"
)

// DeadLetterBackend is a [Backend] that keeps dead letters; *sink.Sink is
// one. Errors are gRPC status errors.
type DeadLetterBackend interface {
	DeadLetters(ctx context.Context, t eventv1.Type, after uint64, limit int) ([]sink.DeadLetter, error)
	ReplayDeadLetters(ctx context.Context, t eventv1.Type, sequences []uint64) ([]sink.Replayed, error)
}

// deadLetterJSON is one dead letter in a listing.
type deadLetterJSON struct {
	Sequence       uint64          `json:"sequence"`
	Code           string          `json:"code"`
	Reason         string          `json:"reason"`
	Deliveries     int             `json:"deliveries"`
	Accepted       time.Time       `json:"accepted"`
	DeadAt         time.Time       `json:"dead_at"`
	StoredSequence uint64          `json:"stored_sequence"`
	Event          json.RawMessage `json:"event"`
}

// listDeadLetters answers GET /v1/deadletters.
func (h *Handler) listDeadLetters(b DeadLetterBackend, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t, err := sink.ParseType(q.Get("type"))
	if err != nil {
		h.writeError(w, r, status.Errorf(codes.InvalidArgument, "type: %v", err))
		return
	}
	var after uint64
	var limit int
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			h.writeError(w, r, status.Errorf(codes.InvalidArgument, "after %q is not a sequence", v))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			h.writeError(w, r, status.Errorf(codes.InvalidArgument, "limit %q is not a positive number", v))
			return
		}
	}
	list, err := b.DeadLetters(r.Context(), t, after, limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := struct {
		Type        string           `json:"type"`
		DeadLetters []deadLetterJSON `json:"deadletters"`
		// Next is the after of the next page; 0 when this one is empty.
		Next uint64 `json:"next"`
	}{Type: t.String(), DeadLetters: make([]deadLetterJSON, 0, len(list))}
	for _, d := range list {
		ev := json.RawMessage("null")
		if d.Event != nil {
			if b, err := protojson.Marshal(d.Event); err == nil {
				ev = b
			}
		}
		out.DeadLetters = append(out.DeadLetters, deadLetterJSON{Sequence: d.Sequence, Code: d.Code.String(),
			Reason: d.Reason, Deliveries: d.Deliveries, Accepted: d.Accepted, DeadAt: d.DeadAt,
			StoredSequence: d.StoredSequence, Event: ev})
		out.Next = d.Sequence
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// replayDeadLetters answers POST /v1/deadletters:replay.
func (h *Handler) replayDeadLetters(b DeadLetterBackend, w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type      string   `json:"type"`
		Sequences []uint64 `json:"sequences"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.writeError(w, r, status.Errorf(codes.InvalidArgument, "body: want {\"type\":\"…\",\"sequences\":[…]}: %v", err))
		return
	}
	t, err := sink.ParseType(req.Type)
	if err != nil {
		h.writeError(w, r, status.Errorf(codes.InvalidArgument, "type: %v", err))
		return
	}
	done, err := b.ReplayDeadLetters(r.Context(), t, req.Sequences)
	if err != nil && len(done) == 0 {
		h.writeError(w, r, err)
		return
	}
	type replayed struct {
		DeadSequence uint64 `json:"dead_sequence"`
		Sequence     uint64 `json:"sequence"`
		Duplicate    bool   `json:"duplicate"`
	}
	out := struct {
		Replayed []replayed `json:"replayed"`
		// Error is why the replay stopped before the end, if it did.
		Error string `json:"error,omitempty"`
	}{Replayed: make([]replayed, 0, len(done))}
	for _, d := range done {
		out.Replayed = append(out.Replayed, replayed{d.DeadSequence, d.Sequence, d.Duplicate})
	}
	if err != nil {
		out.Error = status.Convert(err).Message()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
