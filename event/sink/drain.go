package sink

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// errorDomain is the domain of the ErrorInfo details of the processor
// protocol (see eventv1.ErrorReason).
const errorDomain = "eventproc"

var drainingReason = eventv1.ErrorReason_ERROR_REASON_PROCESSOR_DRAINING.String()

// isDraining reports whether a processor's error answer says it is shutting
// down and did not handle the event.
func isDraining(st *spb.Status) bool {
	if codes.Code(st.GetCode()) != codes.Unavailable {
		return false
	}
	for _, d := range st.GetDetails() {
		var info errdetails.ErrorInfo
		if d.MessageIs(&info) && d.UnmarshalTo(&info) == nil &&
			info.GetReason() == drainingReason && info.GetDomain() == errorDomain {
			return true
		}
	}
	return false
}
