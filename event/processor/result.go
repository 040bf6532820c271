package processor

import (
	"context"
	"errors"
	"runtime/debug"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handle runs the handler for r and turns its outcome, or its panic, into
// the answer for the sink.
func (s *Server) handle(r *request) (resp *eventv1.ProcessResponse) {
	id, ev := r.id, r.ev
	ctx, span := startSpan(r, ev)
	defer func() { endSpan(span, resp) }()
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "processor: handler panicked",
				"request_id", id, "event_id", ev.GetId(), "panic", p, "stack", string(debug.Stack()))
			resp = errorResponse(id, status.New(codes.Internal, "processor: handler panicked"))
		}
	}()
	reply, err := s.handler.Handle(ctx, ev)
	switch {
	case err != nil:
		return errorResponse(id, errorStatus(err))
	case reply == nil:
		r.consumed.Consumed = true
		r.resp.Id, r.resp.Result = id, &r.consumed
	default:
		r.reply.Reply = reply
		r.resp.Id, r.resp.Result = id, &r.reply
	}
	return &r.resp
}

// errorStatus maps a handler error to the status sent for its event:
// a status error (also wrapped) keeps its status, a context error becomes
// DEADLINE_EXCEEDED or CANCELED, anything else UNKNOWN with err's text.
// A status claiming OK becomes UNKNOWN, since it still reports a failure.
func errorStatus(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.OK {
			return status.New(codes.Unknown, err.Error())
		}
		return st
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err)
	}
	return status.New(codes.Unknown, err.Error())
}

// errorResponse answers request id with st.
func errorResponse(id uint64, st *status.Status) *eventv1.ProcessResponse {
	return &eventv1.ProcessResponse{Id: id, Result: &eventv1.ProcessResponse_Error{Error: st.Proto()}}
}
