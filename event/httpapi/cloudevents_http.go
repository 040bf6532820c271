package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
)

// isCloudEvent reports whether r posts CloudEvents: a ce-specversion
// header (binary mode) or a CloudEvents media type. It allocates nothing,
// so the plain JSON path pays two map lookups for it.
func isCloudEvent(r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
		return false
	}
	if len(r.Header["Ce-Specversion"]) > 0 {
		return true
	}
	ct := r.Header["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(strings.TrimSpace(ct[0]), "application/cloudevents")
}

// cloudEvent serves POST /v1/events for CloudEvents, in front of the
// gateway: the binary mode carries attributes in headers and any data as
// the body, and a batch holds many events, neither of which the Send
// method's body mapping can express. Every event still takes the one path
// to the backend's Send, with the context the gateway would give it
// (deadline from Grpc-Timeout, trace context), and errors go through the
// gateway's error handler. Replies come back in the request's mode.
func (h *Handler) cloudEvent(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	structured := err == nil && mt == mimeCloudEvent
	batch := err == nil && mt == mimeCloudEventBatch
	if !structured && !batch && strings.HasPrefix(mt, "application/cloudevents") {
		h.writeError(w, r, status.Errorf(codes.InvalidArgument,
			"unsupported CloudEvents format %q: want %s, %s or the binary mode (ce- headers)", mt, mimeCloudEvent, mimeCloudEventBatch))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeError(w, r, err) // the body limits: 413, 408
		return
	}
	ctx, err := runtime.AnnotateIncomingContext(r.Context(), h.mux, r, eventv1.SinkService_Send_FullMethodName,
		runtime.WithHTTPPathPattern("/v1/events"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if batch {
		h.cloudEventBatch(ctx, w, r, body)
		return
	}
	var ev *eventv1.Event
	if structured {
		ev, err = h.ce.fromStructured(body)
	} else {
		ev, err = h.ce.fromBinary(r.Header, body)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp, err := h.backend.Send(withDedupKey(ctx, ev, false), &eventv1.SendRequest{Event: ev})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch o := resp.GetOutcome(); o {
	case eventv1.Outcome_OUTCOME_CONSUMED:
		w.WriteHeader(http.StatusNoContent)
	case eventv1.Outcome_OUTCOME_ACCEPTED, eventv1.Outcome_OUTCOME_STORED:
		writeJSON(w, http.StatusAccepted,
			acceptedBody(o == eventv1.Outcome_OUTCOME_STORED, resp.GetId(), resp.GetSequence(), resp.GetDuplicate()))
	default:
		if structured {
			b, err := h.ce.structured(resp.GetEvent(), nil)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			w.Header().Set("Content-Type", mimeCloudEvent)
			_, _ = w.Write(b)
			return
		}
		if err := h.ce.writeBinary(w, resp.GetEvent()); err != nil {
			h.writeError(w, r, err)
		}
	}
}

// ceBatchParallel bounds the events of one batch in flight at once.
const ceBatchParallel = 16

// ceResult is the answer to one event of a batch: its HTTP status, and the
// reply (200) or the error.
type ceResult struct {
	Status int             `json:"status"`
	Event  json.RawMessage `json:"event,omitempty"`
	// Accepted is a 202's body: the event's id (and where a durable route
	// stored it).
	Accepted json.RawMessage `json:"accepted,omitempty"`
	Error    json.RawMessage `json:"error,omitempty"`
}

// cloudEventBatch sends the events of a batch, up to ceBatchParallel at
// once, and answers 200 with a JSON array of their results, in order:
//
//	[{"status":200,"event":{...CloudEvent...}},
//	 {"status":204},
//	 {"status":400,"error":{"code":3,"message":"...","details":[]}}]
func (h *Handler) cloudEventBatch(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte) {
	evs, errs, err := h.ce.fromBatch(body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	results := make([]ceResult, len(evs))
	sem := make(chan struct{}, ceBatchParallel)
	var wg sync.WaitGroup
	for i, ev := range evs {
		if errs[i] != nil {
			results[i] = h.ceError(errs[i])
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = h.ceSend(ctx, ev)
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, results)
}

// withDedupKey gives a CloudEvent the idempotency key of its source and
// id, which CloudEvents producers keep unique, so that a durable route
// stores a CloudEvent sent again once (the key is ignored elsewhere). An
// Idempotency-Key header wins, except in a batch, whose events each need
// their own key.
func withDedupKey(ctx context.Context, ev *eventv1.Event, batch bool) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if !batch && len(md.Get(protocol.IdempotencyKey)) > 0 {
		return ctx
	}
	sum := sha256.Sum256([]byte(ev.GetMetadata()[CloudEventMetadataPrefix+"source"] + "\x00" + ev.GetId()))
	md = md.Copy()
	md.Set(protocol.IdempotencyKey, "ce:"+hex.EncodeToString(sum[:]))
	return metadata.NewIncomingContext(ctx, md)
}

// ceSend sends one event of a batch.
func (h *Handler) ceSend(ctx context.Context, ev *eventv1.Event) ceResult {
	resp, err := h.backend.Send(withDedupKey(ctx, ev, true), &eventv1.SendRequest{Event: ev})
	if err != nil {
		return h.ceError(err)
	}
	switch o := resp.GetOutcome(); o {
	case eventv1.Outcome_OUTCOME_CONSUMED:
		return ceResult{Status: http.StatusNoContent}
	case eventv1.Outcome_OUTCOME_ACCEPTED, eventv1.Outcome_OUTCOME_STORED:
		b, err := json.Marshal(acceptedBody(o == eventv1.Outcome_OUTCOME_STORED, resp.GetId(), resp.GetSequence(), resp.GetDuplicate()))
		if err != nil {
			return h.ceError(err)
		}
		return ceResult{Status: http.StatusAccepted, Accepted: b}
	}
	b, err := h.ce.structured(resp.GetEvent(), nil)
	if err != nil {
		return h.ceError(err)
	}
	return ceResult{Status: http.StatusOK, Event: b}
}

// ceError is the result of an event of a batch that failed: the HTTP
// status of its gRPC code, and the error as the API writes errors.
func (h *Handler) ceError(err error) ceResult {
	st := status.Convert(err)
	b, jerr := errorJSON(st)
	if jerr != nil {
		b, _ = errorJSON(status.New(st.Code(), strings.ToValidUTF8(st.Message(), "\uFFFD")))
	}
	return ceResult{Status: runtime.HTTPStatusFromCode(st.Code()), Error: b}
}
