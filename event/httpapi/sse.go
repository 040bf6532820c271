package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventjson"
)

// sseRetry is the reconnection delay, in milliseconds, suggested to
// EventSource clients at the start of every stream.
const sseRetry = 2000

// sseStream writes a subscription as Server-Sent Events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html):
//
//	retry: 2000                          once, first
//
//	event: missed                        only when events were missed just
//	data: {"missed":3}                   before the next one
//
//	id: 42                               the event's sequence number
//	event: TYPE_HELLO                    its type
//	data: {"id":"...","type":"TYPE_HELLO","payload":...}
//
//	: heartbeat                          every --sse-heartbeat
//
//	event: error                         last, when the sink ends the stream
//	data: {"code":14,"message":"sink is shutting down","details":[]}
//
// An EventSource reconnecting after a dropped connection sends the last id
// it saw as Last-Event-ID and so resumes where it left off. The missed event
// has no id, so it does not move that resume point.
type sseStream struct {
	w   io.Writer
	buf []byte // reused for every event
}

func newSSEStream(w io.Writer) *sseStream { return &sseStream{w: w} }

func (s *sseStream) header(h http.Header) {
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
}

func (s *sseStream) open() error {
	_, err := io.WriteString(s.w, "retry: "+strconv.Itoa(sseRetry)+"\n\n")
	return err
}

func (s *sseStream) event(resp *eventv1.SubscribeResponse) error {
	b := s.buf[:0]
	if n := resp.GetMissed(); n > 0 {
		b = append(b, "event: missed\ndata: {\"missed\":"...)
		b = strconv.AppendUint(b, n, 10)
		b = append(b, "}\n\n"...)
	}
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, resp.GetSequence(), 10)
	b = append(b, "\nevent: "...)
	b = append(b, resp.GetEvent().GetType().String()...)
	b = append(b, '\n')
	data, err := eventjson.Marshal(resp.GetEvent())
	if err != nil {
		return err
	}
	b = appendData(b, data)
	s.buf = b
	_, err = s.w.Write(b)
	return err
}

func (s *sseStream) heartbeat() error {
	_, err := io.WriteString(s.w, ": heartbeat\n\n")
	return err
}

func (s *sseStream) fail(st *status.Status) error {
	data, err := errorJSON(st)
	if err != nil {
		return err
	}
	_, err = s.w.Write(appendData([]byte("event: error\n"), data))
	return err
}

// appendData appends data as the data field of an event and the blank line
// that ends the event. Compact JSON has no line breaks; should data have
// any, each line gets a data field of its own, which the client joins back
// with "\n".
func appendData(b, data []byte) []byte {
	for {
		line, rest, more := bytes.Cut(data, []byte("\n"))
		b = append(b, "data: "...)
		b = append(b, bytes.TrimSuffix(line, []byte("\r"))...)
		b = append(b, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(b, '\n')
}

// errorJSON renders st as the API's error bodies are rendered:
// {"code":N,"message":"...","details":[]}.
func errorJSON(st *status.Status) ([]byte, error) {
	return protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st.Proto())
}
