package httpapi

import (
	"io"
	"net/http"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// ndjsonStream writes a subscription as newline-delimited JSON in
// grpc-gateway's format for server-streaming calls: one object per line,
//
//	{"result":{"event":{...},"sequence":"42"}}
//	{"result":{"event":{...},"sequence":"45","missed":"2"}}
//	{"error":{"code":14,"message":"sink is shutting down","details":[]}}
//
// where result is a SubscribeResponse in protobuf's JSON mapping (64-bit
// numbers are strings), and error, the last line, is why the sink ended the
// stream. NDJSON has no comments, so there are no heartbeats.
type ndjsonStream struct {
	w   io.Writer
	buf []byte // reused for every event
}

func newNDJSONStream(w io.Writer) *ndjsonStream { return &ndjsonStream{w: w} }

func (s *ndjsonStream) header(h http.Header) {
	h.Set("Content-Type", "application/x-ndjson")
}

func (s *ndjsonStream) open() error { return nil }

func (s *ndjsonStream) event(resp *eventv1.SubscribeResponse) error {
	b := append(s.buf[:0], `{"result":`...)
	b, err := protojson.MarshalOptions{}.MarshalAppend(b, resp)
	if err != nil {
		return err
	}
	b = append(b, "}\n"...)
	s.buf = b
	_, err = s.w.Write(b)
	return err
}

func (s *ndjsonStream) heartbeat() error { return nil }

func (s *ndjsonStream) fail(st *status.Status) error {
	data, err := errorJSON(st)
	if err != nil {
		return err
	}
	b := append([]byte(`{"error":`), data...)
	_, err = s.w.Write(append(b, "}\n"...))
	return err
}
