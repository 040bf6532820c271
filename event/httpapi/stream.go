package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/eventjson"
)

// streamWriteTimeout bounds each write to a subscriber, so that a client
// that takes no bytes cannot hold its handler (and shutdown) forever.
const streamWriteTimeout = 10 * time.Second

// eventWriter writes a subscription to an HTTP response, flushing each
// write; only the subscribe handler's goroutine uses it. Clients that
// accept text/event-stream get Server-Sent Events:
//
//	retry: 2000                          once, first
//
//	event: missed                        only when events were missed just
//	data: {"missed":3}                   before the next one
//
//	event: reset                         only first, when the Last-Event-ID
//	data: {"reset":true}                 belongs to another history (shared
//	                                     pub/sub: its stream was recreated)
//
//	id: 42                               the event's sequence number, or
//	                                     EPOCH-42 with shared pub/sub
//	event: TYPE_HELLO                    its type
//	data: {"id":"...","type":"TYPE_HELLO","payload":...}
//
//	: heartbeat                          every Options.Heartbeat
//
//	event: error                         last, when the sink ends the stream
//	data: {"code":14,"message":"sink is shutting down","details":[]}
//
// The missed event has no id, so it does not move the resume point an
// EventSource sends as Last-Event-ID. Other clients get newline-delimited
// JSON in grpc-gateway's format for server streams, a SubscribeResponse in
// protobuf's JSON mapping (64-bit numbers are strings) per line, and no
// heartbeats:
//
//	{"result":{"event":{...},"sequence":"42"}}
//	{"result":{"event":{...},"sequence":"45","missed":"2"}}
//	{"error":{"code":14,"message":"sink is shutting down","details":[]}}
//
// With format=cloudevents (ce set) each event is a CloudEvent in the JSON
// format instead: in SSE the data of a block named by its CloudEvents type,
// in NDJSON a line of its own with the extension attributes sequence (the
// sequence number, a string), after a loss missed (a number), with shared
// pub/sub lasteventid (EPOCH-SEQUENCE), and after a reset historyreset:
//
//	{"specversion":"1.0","id":"...","type":"TYPE_HELLO",...,"sequence":"45","missed":2}
type eventWriter struct {
	sse bool
	ce  *ceTypes // CloudEvents, when set
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte // reused for every event
}

func newEventWriter(w http.ResponseWriter, sse bool) *eventWriter {
	return &eventWriter{sse: sse, w: w, rc: http.NewResponseController(w)}
}

// open writes the response headers and what comes before the first event.
func (e *eventWriter) open() error {
	h := e.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	if e.sse {
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx not to buffer the stream
	h.Set("X-Content-Type-Options", "nosniff")
	e.w.WriteHeader(http.StatusOK)
	if e.sse {
		return e.write([]byte("retry: 2000\n\n"))
	}
	return e.write(nil)
}

// event writes one published event.
func (e *eventWriter) event(resp *eventv1.SubscribeResponse) error {
	b := e.buf[:0]
	var err error
	if e.sse {
		if resp.GetHistoryReset() {
			b = append(b, "event: reset\ndata: {\"reset\":true}\n\n"...)
		}
		if n := resp.GetMissed(); n > 0 {
			b = append(b, "event: missed\ndata: {\"missed\":"...)
			b = strconv.AppendUint(b, n, 10)
			b = append(b, "}\n\n"...)
		}
		b = append(b, "id: "...)
		if id := resp.GetLastEventId(); id != "" {
			b = append(b, id...)
		} else {
			b = strconv.AppendUint(b, resp.GetSequence(), 10)
		}
		b = append(b, "\nevent: "...)
		var data []byte
		if e.ce != nil {
			b = append(b, e.ce.name(resp.GetEvent().GetType())...)
			data, err = e.ce.structured(resp.GetEvent(), nil)
		} else {
			b = append(b, resp.GetEvent().GetType().String()...)
			data, err = eventjson.Marshal(resp.GetEvent())
		}
		if err != nil {
			return err
		}
		b = append(b, '\n')
		b = appendData(b, data)
	} else if e.ce != nil {
		extra := map[string]any{"sequence": strconv.FormatUint(resp.GetSequence(), 10)}
		if n := resp.GetMissed(); n > 0 {
			extra["missed"] = n
		}
		if id := resp.GetLastEventId(); id != "" {
			extra["lasteventid"] = id
		}
		if resp.GetHistoryReset() {
			extra["historyreset"] = true
		}
		data, err := e.ce.structured(resp.GetEvent(), extra)
		if err != nil {
			return err
		}
		b = append(append(b, data...), '\n')
	} else {
		b = append(b, `{"result":`...)
		if b, err = (protojson.MarshalOptions{}).MarshalAppend(b, resp); err != nil {
			return err
		}
		b = append(b, "}\n"...)
	}
	e.buf = b
	return e.write(b)
}

// heartbeat writes an SSE comment that keeps an idle stream open.
func (e *eventWriter) heartbeat() error { return e.write([]byte(": heartbeat\n\n")) }

// fail writes the error that ends the stream.
func (e *eventWriter) fail(st *status.Status) error {
	data, err := errorJSON(st)
	if err != nil {
		return err
	}
	if e.sse {
		return e.write(appendData([]byte("event: error\n"), data))
	}
	return e.write(append(append([]byte(`{"error":`), data...), "}\n"...))
}

// write writes b and flushes it under a deadline (if the writer supports
// one), cleared afterwards: one left to expire while idle would fail the
// response's end.
func (e *eventWriter) write(b []byte) error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := e.w.Write(b)
	if err == nil {
		err = e.rc.Flush()
	}
	_ = e.rc.SetWriteDeadline(time.Time{})
	return err
}

// appendData appends data as an event's data field and the blank line that
// ends the event; each line of data gets a data field of its own.
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

// errorJSON renders st as the API's error bodies: {"code":N,...,"details":[]}.
func errorJSON(st *status.Status) ([]byte, error) {
	return protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st.Proto())
}
