package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventjson"
)

// eventMarshaler is the gateway's marshaler: protojson's JSON for events,
// written and read by package eventjson, with a stricter decoder.
type eventMarshaler struct {
	*runtime.JSONPb
}

// Marshal implements [runtime.Marshaler]. The gateway hands it a Send
// answer's event: the reply, or nil (consumed, accepted) for no body.
func (m eventMarshaler) Marshal(v any) ([]byte, error) {
	ev, ok := v.(*eventv1.Event)
	if !ok {
		return m.JSONPb.Marshal(v)
	}
	if ev == nil {
		return nil, nil
	}
	b, err := eventjson.Marshal(ev)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "processor's reply event cannot be written as JSON: %v", err)
	}
	return b, nil
}

// NewDecoder implements [runtime.Marshaler]. Its decoder reads the whole
// (bounded) body and decodes it once as an event: an empty body is an
// error, and so is anything after the event.
func (m eventMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		ev, ok := v.(**eventv1.Event) // the request body is SendRequest.event
		if !ok {
			return fmt.Errorf("cannot decode JSON into %T", v)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err // a read error, or the body limit (gatewayError answers 413)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return errors.New(`empty request body: want a JSON event such as {"type":"TYPE_HELLO"}`)
		}
		*ev = new(eventv1.Event)
		if err := eventjson.Unmarshal(b, *ev, m.UnmarshalOptions); err != nil {
			return errBadJSON(err)
		}
		if rb, ok := r.(*requestBody); ok {
			rb.decoded = true
		}
		return nil
	})
}

// outcomeField is SendResponse.outcome.
var outcomeField = (&eventv1.SendResponse{}).ProtoReflect().Descriptor().Fields().ByName("outcome")

// forwardOutcome is a gateway forward-response option that picks the HTTP
// status of a Send answer from its outcome: REPLIED is 200 with the reply
// event as body; CONSUMED is 204 without a body; ACCEPTED (broadcast) and
// STORED (durable) are 202 with the event's id (and for STORED, where it
// was stored) as JSON. It reads
// the outcome through reflection, whatever Go type the gateway hands it.
func forwardOutcome(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	msg := m.ProtoReflect()
	if msg.Descriptor().FullName() != outcomeField.ContainingMessage().FullName() {
		return nil
	}
	empty := func(code int) {
		w.Header().Del("Content-Type")
		w.WriteHeader(code)
	}
	switch eventv1.Outcome(msg.Get(outcomeField).Enum()) {
	case eventv1.Outcome_OUTCOME_CONSUMED:
		empty(http.StatusNoContent)
	case eventv1.Outcome_OUTCOME_ACCEPTED, eventv1.Outcome_OUTCOME_STORED:
		// The body is written here: the gateway writes only the event
		// (response_body), which these answers do not have.
		body, err := json.Marshal(acceptedBody(
			eventv1.Outcome(msg.Get(outcomeField).Enum()) == eventv1.Outcome_OUTCOME_STORED,
			msg.Get(storedFields.ByName("id")).String(),
			msg.Get(storedFields.ByName("sequence")).Uint(),
			msg.Get(storedFields.ByName("duplicate")).Bool()))
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(append(body, '\n'))
	}
	return nil
}

// storedFields are SendResponse's fields.
var storedFields = outcomeField.ContainingMessage().Fields()

// acceptedBody is the body of a 202: {"id":"…"} from a broadcast route,
// {"id":"…","sequence":N,"duplicate":false} for a stored event.
func acceptedBody(stored bool, id string, sequence uint64, duplicate bool) any {
	if !stored {
		return struct {
			ID string `json:"id"`
		}{id}
	}
	return storedBody{ID: id, Sequence: sequence, Duplicate: duplicate}
}

// storedBody is the body of a 202 for a stored event.
type storedBody struct {
	ID        string `json:"id"`
	Sequence  uint64 `json:"sequence"`
	Duplicate bool   `json:"duplicate"`
}

// errorMarshaler renders error bodies, compact: protojson varies its
// spacing from build to build on purpose, and an error body should read
// the same every time (the README quotes them). Unlike the API's
// marshaler it emits unpopulated fields, so "details" is always there.
var errorMarshaler = compactJSON{&runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true}}}

// compactJSON is a marshaler whose output has no insignificant spaces.
type compactJSON struct {
	*runtime.JSONPb
}

// Marshal implements [runtime.Marshaler].
func (m compactJSON) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return b, nil
	}
	return out.Bytes(), nil
}
