// Package protocol defines what the sink, the processor SDK and the Go
// client must agree on beyond the messages of event/v1: the headers of
// their streams and the size of batches.
//
// Both ends of a ProcessorService.Process stream, and of a
// SinkService.Stream, may send several messages as one (the batch field of
// ProcessRequest, ProcessResponse, StreamRequest and StreamResponse). Each
// end says in its headers ([BatchHeader]) that it reads batches and how
// large a message it reads; the other end then sends what waits at once as
// one message, of at most [MaxBatch] entries and no larger than that.
package protocol

import (
	"strconv"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

const (
	// BatchHeader is the header (gRPC metadata key) with which an end of a
	// stream says that it reads batches; its value is the largest message,
	// in bytes, it reads.
	BatchHeader = "eventproc-batch"
	// SinkIDHeader is the header with which a sink names itself when it
	// opens a Process stream. A sink opens several streams to each
	// processor; a processor publishes each event on only one stream of
	// each sink.
	SinkIDHeader = "eventproc-sink-id"
	// MaxBatch bounds the entries of one batch message.
	MaxBatch = 64
	// MaxRecvBytes is the largest message a processor served by the SDK
	// and the Go client read: gRPC's default. They announce it in
	// BatchHeader.
	MaxRecvBytes = 4 << 20
)

// BatchLimit returns the value of BatchHeader in md: the largest batch
// message the peer reads, or 0 when it does not read batches.
func BatchLimit(md metadata.MD) int {
	if v := md.Get(BatchHeader); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// Batch is the batch field of one of the protocol's messages.
type Batch struct{ tagSize int }

// The batch fields, read from the descriptors of event/v1.
var (
	ProcessRequestBatch  = batchOf((*eventv1.ProcessRequest)(nil))
	ProcessResponseBatch = batchOf((*eventv1.ProcessResponse)(nil))
	StreamRequestBatch   = batchOf((*eventv1.StreamRequest)(nil))
	StreamResponseBatch  = batchOf((*eventv1.StreamResponse)(nil))
)

func batchOf(m protoreflect.ProtoMessage) Batch {
	fd := m.ProtoReflect().Descriptor().Fields().ByName("batch")
	return Batch{tagSize: protowire.SizeTag(fd.Number())}
}

// EntrySize is the size an encoded message of n bytes takes as an entry of
// the batch field.
func (b Batch) EntrySize(n int) int { return b.tagSize + protowire.SizeBytes(n) }

// ErrorDomain is the domain of the google.rpc.ErrorInfo details of
// eventproc's errors. In the processor protocol their reasons are the names
// of eventv1.ErrorReason; a sink's UNAUTHENTICATED errors carry one of the
// Reason… constants.
const ErrorDomain = "eventproc"

// The reasons of a sink's UNAUTHENTICATED errors: no credential was sent
// (HTTP's WWW-Authenticate challenge then has no error attribute), or the
// one sent was not accepted (error="invalid_token").
const (
	ReasonCredentialMissing = "CREDENTIAL_MISSING"
	ReasonCredentialInvalid = "CREDENTIAL_INVALID"
)

// ReasonIdempotencyKeyReused is the reason of a sink's FAILED_PRECONDITION
// for an idempotency key sent again with a different event (HTTP 422).
const ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

// IdempotencyKey is the gRPC metadata key (and, as Idempotency-Key, the
// HTTP header) of a request's idempotency key.
const IdempotencyKey = "idempotency-key"

var drainingReason = eventv1.ErrorReason_ERROR_REASON_PROCESSOR_DRAINING.String()

// Draining returns the status with which a processor that is shutting down
// answers an event it did not handle: UNAVAILABLE, with the ErrorInfo of
// reason ERROR_REASON_PROCESSOR_DRAINING. The sink sends such an event to
// another processor and no more events on that stream.
func Draining(msg string) *status.Status {
	st, err := status.New(codes.Unavailable, msg).WithDetails(&errdetails.ErrorInfo{Reason: drainingReason, Domain: ErrorDomain})
	if err != nil {
		panic(err) // an ErrorInfo always marshals
	}
	return st
}

// IsDraining reports whether st is a Draining status.
func IsDraining(st *spb.Status) bool {
	if codes.Code(st.GetCode()) != codes.Unavailable {
		return false
	}
	for _, d := range st.GetDetails() {
		var info errdetails.ErrorInfo
		if d.MessageIs(&info) && d.UnmarshalTo(&info) == nil && info.GetReason() == drainingReason && info.GetDomain() == ErrorDomain {
			return true
		}
	}
	return false
}

// RetryLater is RESOURCE_EXHAUSTED with msg and a RetryInfo of wait,
// rounded to whole seconds and at least one (HTTP's Retry-After, which the
// HTTP front sets from it, counts whole seconds).
func RetryLater(msg string, wait time.Duration) error {
	wait = max(time.Second, wait.Round(time.Second))
	st, err := status.New(codes.ResourceExhausted, msg+"; retry after "+wait.String()).
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	if err != nil {
		panic(err) // a RetryInfo always marshals
	}
	return st.Err()
}
