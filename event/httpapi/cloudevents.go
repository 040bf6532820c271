package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// This file maps CloudEvents (v1.0) to and from events: the attributes,
// the type names and the data. cloudevents_http.go serves them.
//
//	CloudEvents             Event
//	id                      id
//	type                    type, through ceTypes
//	time                    time
//	data (JSON)             payload
//	data_base64, or a       data
//	  binary non-JSON body
//	any other attribute     metadata["ce-" + name]: source, subject,
//	  (specversion aside)     datacontenttype, dataschema, extensions
//
// On the way out every "ce-" metadata key becomes an attribute again,
// source defaults to DefaultCloudEventSource, and metadata without the
// prefix is not written (CloudEvents names allow only a-z and 0-9).

// CloudEventMetadataPrefix prefixes the metadata keys that hold the
// attributes of a CloudEvent that Event has no field for (source, subject,
// datacontenttype, dataschema, extensions): ce-source, ce-subject, ….
const CloudEventMetadataPrefix = "ce-"

// DefaultCloudEventSource is the source of the CloudEvents the sink writes
// for events without a ce-source in their metadata.
const DefaultCloudEventSource = "/eventproc"

// The CloudEvents media types (the JSON event format).
const (
	mimeCloudEvent      = "application/cloudevents+json"
	mimeCloudEventBatch = "application/cloudevents-batch+json"
)

// ceTypes maps CloudEvents types to event types and back. Built once in
// New, read-only after.
type ceTypes struct {
	in  map[string]eventv1.Type
	out map[eventv1.Type]string
}

// newCETypes maps every type to its name in names, or else to its enum
// name (TYPE_HELLO).
func newCETypes(names map[eventv1.Type]string) (ceTypes, error) {
	c := ceTypes{in: map[string]eventv1.Type{}, out: map[eventv1.Type]string{}}
	for n, name := range eventv1.Type_name {
		t := eventv1.Type(n)
		if t == eventv1.Type_TYPE_UNSPECIFIED {
			continue
		}
		if mapped, ok := names[t]; ok {
			name = mapped
		}
		c.out[t] = name
	}
	for t := range names {
		if _, ok := c.out[t]; !ok {
			return c, fmt.Errorf("CloudEventTypes: %v is not an event type", t)
		}
	}
	for t, name := range c.out {
		if name == "" {
			return c, fmt.Errorf("CloudEventTypes: empty CloudEvents type for %v", t)
		}
		if prev, dup := c.in[name]; dup {
			return c, fmt.Errorf("CloudEventTypes: %v and %v are both the CloudEvents type %q", min(prev, t), max(prev, t), name)
		}
		c.in[name] = t
	}
	return c, nil
}

// lookup returns the event type of a CloudEvents type; an unmapped one is
// INVALID_ARGUMENT, naming it.
func (c ceTypes) lookup(name string) (eventv1.Type, error) {
	if t, ok := c.in[name]; ok {
		return t, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "CloudEvents type %q is not mapped to an event type (known: %s)",
		name, strings.Join(slices.Sorted(maps.Keys(c.in)), ", "))
}

// name is the CloudEvents type of t.
func (c ceTypes) name(t eventv1.Type) string {
	if n, ok := c.out[t]; ok {
		return n
	}
	return t.String()
}

// ceAttrs is a CloudEvent's context attributes, by name, as strings.
type ceAttrs map[string]string

// ceData is the data of a CloudEvent: JSON, or bytes with no JSON meaning.
type ceData struct {
	json  []byte // a JSON value, when set
	bytes []byte
}

// toEvent builds the event of a CloudEvent; errors are INVALID_ARGUMENT.
func (c ceTypes) toEvent(attrs ceAttrs, data ceData) (*eventv1.Event, error) {
	if v, ok := attrs["specversion"]; !ok {
		return nil, status.Error(codes.InvalidArgument, "CloudEvent without specversion: want 1.0")
	} else if v != "1.0" {
		return nil, status.Errorf(codes.InvalidArgument, "CloudEvents specversion %q is not supported: want 1.0", v)
	}
	for _, name := range []string{"id", "source", "type"} {
		if attrs[name] == "" {
			return nil, status.Errorf(codes.InvalidArgument, "CloudEvent without %s: id, source, type and specversion are required", name)
		}
	}
	t, err := c.lookup(attrs["type"])
	if err != nil {
		return nil, err
	}
	ev := &eventv1.Event{Id: attrs["id"], Type: t, Metadata: make(map[string]string, len(attrs))}
	for name, v := range attrs {
		switch name {
		case "specversion", "id", "type":
		case "time":
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "CloudEvents time %q is not an RFC 3339 timestamp", v)
			}
			ev.Time = timestamppb.New(tm)
		default:
			if !validAttrName(name) {
				return nil, status.Errorf(codes.InvalidArgument, "CloudEvents attribute name %q: want lower-case letters and digits", name)
			}
			ev.Metadata[CloudEventMetadataPrefix+name] = v
		}
	}
	switch {
	case data.json != nil:
		ev.Payload = new(structpb.Value)
		if err := protojson.Unmarshal(data.json, ev.Payload); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "CloudEvent data is not valid JSON: %s",
				strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0"))
		}
	case data.bytes != nil:
		ev.Data = data.bytes
	}
	return ev, nil
}

// validAttrName reports whether name is a CloudEvents attribute name:
// lower-case ASCII letters and digits.
func validAttrName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isJSONType reports whether a media type is JSON: application/json,
// text/json or any type with the +json suffix.
func isJSONType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"))
}

// binaryData is the data of a binary-mode CloudEvent's body: JSON when its
// content type says so, text as a JSON string, anything else bytes.
func binaryData(contentType string, body []byte) ceData {
	switch {
	case len(body) == 0:
		return ceData{}
	case isJSONType(contentType):
		return ceData{json: body}
	case strings.HasPrefix(contentType, "text/") && utf8.Valid(body):
		b, _ := json.Marshal(string(body))
		return ceData{json: b}
	}
	return ceData{bytes: body}
}

// fromBinary reads a binary-mode CloudEvent: attributes from ce- headers,
// the body as data. Values are percent-decoded, as the HTTP binding asks;
// one that does not decode is taken as is (sdk-go, for one, sends
// values unencoded).
func (c ceTypes) fromBinary(h http.Header, body []byte) (*eventv1.Event, error) {
	attrs := ceAttrs{}
	for key, vals := range h {
		name, ok := strings.CutPrefix(strings.ToLower(key), "ce-")
		if !ok || len(vals) == 0 {
			continue
		}
		v, err := url.PathUnescape(vals[0])
		if err != nil || !utf8.ValidString(v) {
			v = vals[0]
		}
		attrs[name] = v
	}
	ct := h.Get("Content-Type")
	if ct != "" {
		attrs["datacontenttype"] = ct
	}
	return c.toEvent(attrs, binaryData(ct, body))
}

// fromStructured reads a CloudEvent in the JSON format.
func (c ceTypes) fromStructured(b []byte) (*eventv1.Event, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil || members == nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid CloudEvent JSON: want an object (%v)", err)
	}
	attrs, data := ceAttrs{}, ceData{}
	for name, raw := range members {
		if string(raw) == "null" {
			continue // absent
		}
		switch name {
		case "data":
			data.json = raw
			continue
		case "data_base64":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, status.Error(codes.InvalidArgument, "CloudEvents data_base64: want a base64 string")
			}
			d, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "CloudEvents data_base64: %v", err)
			}
			data.bytes = d
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "CloudEvents attribute %q: %v", name, err)
		}
		switch v := v.(type) {
		case string:
			attrs[name] = v
		case bool, float64: // extensions may be booleans and integers
			attrs[name] = string(raw)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "CloudEvents attribute %q: want a string, number or boolean", name)
		}
	}
	if data.json != nil && data.bytes != nil {
		return nil, status.Error(codes.InvalidArgument, "CloudEvent with both data and data_base64")
	}
	return c.toEvent(attrs, data)
}

// fromBatch reads a batch in the JSON format: one event or error per
// element, in order. Only a body that is not a JSON array is an error.
func (c ceTypes) fromBatch(b []byte) ([]*eventv1.Event, []error, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "invalid CloudEvents batch: want a JSON array of events (%v)", err)
	}
	if len(elems) == 0 {
		return nil, nil, status.Error(codes.InvalidArgument, "empty CloudEvents batch")
	}
	evs, errs := make([]*eventv1.Event, len(elems)), make([]error, len(elems))
	for i, raw := range elems {
		evs[i], errs[i] = c.fromStructured(raw)
	}
	return evs, errs, nil
}

// attrs returns the attributes of ev as a CloudEvent, and its data:
// payload as JSON (preferred), else data as bytes.
func (c ceTypes) attrs(ev *eventv1.Event) (ceAttrs, ceData, error) {
	attrs := ceAttrs{"specversion": "1.0", "id": ev.GetId(), "type": c.name(ev.GetType()), "source": DefaultCloudEventSource}
	for k, v := range ev.GetMetadata() {
		name, ok := strings.CutPrefix(k, CloudEventMetadataPrefix)
		if !ok || !validAttrName(name) {
			continue
		}
		switch name {
		case "specversion", "id", "type", "time", "data", "data_base64":
		default:
			attrs[name] = v
		}
	}
	if ev.GetTime() != nil {
		attrs["time"] = ev.GetTime().AsTime().Format(time.RFC3339Nano)
	}
	var data ceData
	switch {
	case ev.GetPayload() != nil:
		b, err := protojson.Marshal(ev.GetPayload())
		if err != nil {
			return nil, data, status.Errorf(codes.Internal, "event payload cannot be written as JSON: %v", err)
		}
		data.json = b
		_, isString := ev.GetPayload().GetKind().(*structpb.Value_StringValue)
		if ct := attrs["datacontenttype"]; ct == "" || !isJSONType(ct) && !isString {
			attrs["datacontenttype"] = "application/json"
		}
	case len(ev.GetData()) > 0:
		data.bytes = ev.GetData()
		if attrs["datacontenttype"] == "" {
			attrs["datacontenttype"] = "application/octet-stream"
		}
	default:
		delete(attrs, "datacontenttype")
	}
	return attrs, data, nil
}

// structured returns ev in the CloudEvents JSON format, with extra
// attributes (sequence, missed) when given.
func (c ceTypes) structured(ev *eventv1.Event, extra map[string]any) ([]byte, error) {
	obj, err := c.object(ev)
	if err != nil {
		return nil, err
	}
	maps.Copy(obj, extra)
	return json.Marshal(obj)
}

// object is ev as the members of a CloudEvents JSON object.
func (c ceTypes) object(ev *eventv1.Event) (map[string]any, error) {
	attrs, data, err := c.attrs(ev)
	if err != nil {
		return nil, err
	}
	obj := make(map[string]any, len(attrs)+1)
	for k, v := range attrs {
		obj[k] = v
	}
	switch {
	case data.json != nil:
		obj["data"] = json.RawMessage(data.json)
	case data.bytes != nil:
		obj["data_base64"] = base64.StdEncoding.EncodeToString(data.bytes)
	}
	return obj, nil
}

// writeBinary writes ev as a binary-mode CloudEvent: attributes in ce-
// headers, data as the body (a string payload of a non-JSON content type
// as its text).
func (c ceTypes) writeBinary(w http.ResponseWriter, ev *eventv1.Event) error {
	attrs, data, err := c.attrs(ev)
	if err != nil {
		return err
	}
	h := w.Header()
	body := data.bytes
	if data.json != nil {
		body = data.json
		if ct := attrs["datacontenttype"]; !isJSONType(ct) {
			body = []byte(ev.GetPayload().GetStringValue())
		}
	}
	for name, v := range attrs {
		if name == "datacontenttype" {
			h.Set("Content-Type", v)
			continue
		}
		h.Set("ce-"+name, percentEncode(v))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(body)
	return err
}

// percentEncode encodes a header value as the CloudEvents HTTP binding
// asks: space, '"', '%' and everything outside printable ASCII as %XX of
// its UTF-8 bytes.
func percentEncode(v string) string {
	clean := true
	for i := range len(v) {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	var b strings.Builder
	for i := range len(v) {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
