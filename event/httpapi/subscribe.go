package httpapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// subscribeRequest is a parsed GET /v1/events:subscribe.
type subscribeRequest struct {
	types       []eventv1.Type
	lastEventID string
	sse         bool // the client accepts text/event-stream
	cloudEvents bool // format=cloudevents
}

// parseSubscribeRequest reads the query
//
//	types=TYPE_HELLO&types=goodbye   (repeatable, or comma-separated; names
//	                                  with or without TYPE_, any case)
//	last_event_id=N                  (also lastEventId; the Last-Event-ID
//	                                  header wins over it)
//	format=cloudevents               events as CloudEvents (JSON format);
//	                                  format=json (the default) as events
//
// and the Accept header. Errors are INVALID_ARGUMENT status errors.
func parseSubscribeRequest(r *http.Request) (subscribeRequest, error) {
	var req subscribeRequest
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return req, status.Errorf(codes.InvalidArgument, "malformed query string: %v", err)
	}
	for key, vals := range q {
		switch key {
		case "types":
			for _, v := range vals {
				for name := range strings.SplitSeq(v, ",") {
					if strings.TrimSpace(name) == "" {
						continue
					}
					t, err := sink.ParseType(name)
					if err != nil {
						return req, status.Errorf(codes.InvalidArgument, "types: %s", withoutSentinel(err))
					}
					req.types = append(req.types, t)
				}
			}
		case "last_event_id", "lastEventId":
			req.lastEventID = strings.TrimSpace(vals[len(vals)-1])
		case "format":
			switch f := strings.ToLower(strings.TrimSpace(vals[len(vals)-1])); f {
			case "", "json":
			case "cloudevents":
				req.cloudEvents = true
			default:
				return req, status.Errorf(codes.InvalidArgument, "format %q: want json or cloudevents", f)
			}
		case "ticket": // Options.Authenticate's
		default:
			return req, status.Errorf(codes.InvalidArgument,
				"unknown query parameter %q (want types and optionally last_event_id and format)", key)
		}
	}
	if len(req.types) == 0 {
		return req, status.Error(codes.InvalidArgument,
			"no types: say which events to receive, e.g. ?types=TYPE_HELLO&types=TYPE_GOODBYE or ?types=hello,goodbye")
	}
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		req.lastEventID = id
	}
	req.sse = acceptsEventStream(r.Header.Values("Accept"))
	return req, nil
}

// acceptsEventStream reports whether Accept lists text/event-stream with a
// q above 0. Wildcards do not count: their clients get NDJSON.
func acceptsEventStream(accept []string) bool {
	for _, header := range accept {
		for part := range strings.SplitSeq(header, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/event-stream" {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue // q=0: explicitly not acceptable
			}
			return true
		}
	}
	return false
}

// subscribe serves GET /v1/events:subscribe (the in-process gateway cannot
// serve server streams) until the client goes away, the subscription ends
// or Shutdown is called. Errors before the stream starts are ordinary JSON
// error responses; later ones end the stream in its format.
func (h *Handler) subscribe(w http.ResponseWriter, r *http.Request) {
	req, err := parseSubscribeRequest(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Ends with the request, or with errShuttingDown at Shutdown.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	defer context.AfterFunc(h.stopping, func() { cancel(context.Cause(h.stopping)) })()
	sub, err := h.backend.SubscribeEvents(ctx, req.types, req.lastEventID)
	if err != nil {
		if ctx.Err() != nil {
			err = causeStatus(ctx)
		}
		h.writeError(w, r, err)
		return
	}
	defer sub.Close()

	out, heartbeat := newEventWriter(w, req.sse), time.Duration(0)
	if req.cloudEvents {
		out.ce = &h.ce
	}
	if req.sse {
		heartbeat = h.opts.Heartbeat
	}
	if err := out.open(); err != nil {
		return
	}
	log := h.opts.Logger
	log.Debug("http subscription started", "types", req.types, "last_event_id", req.lastEventID, "sse", req.sse,
		"cloudevents", req.cloudEvents)
	beat := newBeat(ctx, heartbeat)
	defer beat.stop()
	for {
		resp, err := sub.Next(beat.ctx)
		switch {
		case err == nil:
			err = out.event(resp)
		case ctx.Err() == nil && beat.ctx.Err() != nil: // heartbeat due
			beat.reset()
			err = out.heartbeat()
		default: // the end: say why, unless the client went away
			if ctx.Err() != nil {
				err = causeStatus(ctx)
			}
			st := status.Convert(sink.SubscriptionError(err))
			log.Debug("http subscription ended", "code", st.Code().String(), "err", st.Message())
			if st.Code() != codes.Canceled {
				_ = out.fail(st)
			}
			return
		}
		if err != nil {
			log.Debug("http subscription: write failed; client gone", "err", err)
			return
		}
	}
}

// beat is the context a subscription waits for events with: the stream's,
// or with a heartbeat interval a child of it that ends when the next
// heartbeat is due (one per interval, not per event).
type beat struct {
	parent context.Context
	every  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

func newBeat(parent context.Context, every time.Duration) *beat {
	b := &beat{parent: parent, every: every, ctx: parent, cancel: func() {}}
	b.reset()
	return b
}

// reset starts the next interval.
func (b *beat) reset() {
	if b.every > 0 {
		b.cancel()
		b.ctx, b.cancel = context.WithTimeout(b.parent, b.every)
	}
}

func (b *beat) stop() { b.cancel() }

// causeStatus returns why ctx ended as a status error: the status it was
// cancelled with (errShuttingDown), or that of its context error.
func causeStatus(ctx context.Context) error {
	cause := context.Cause(ctx)
	if _, ok := status.FromError(cause); ok {
		return cause
	}
	if errors.Is(cause, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "subscription ended at the deadline the client asked for (Request-Timeout)")
	}
	return status.FromContextError(ctx.Err()).Err()
}
