package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
	"github.com/eventproc/eventproc/internal/vtcodec"
)

// Idempotency keys on durable routes (docs/design.md, "Idempotency keys"):
// the key names the event in JetStream's deduplication window
// (Nats-Msg-Id), and a KV bucket with the same lifetime keeps, per key, a
// hash of the event as the client sent it and the id the sink gave it.
// Request/response routes keep their answers in the same bucket
// (idempotent.go): a key is per type, and a type's route is one kind or
// the other.

// idempotencyBucket is the KV bucket of keys seen.
const idempotencyBucket = "eventproc_idempotency"

// maxIdempotencyKey bounds the length of a key.
const maxIdempotencyKey = 256

// idempotency is a request's key, as stored, and its event's hash.
type idempotency struct {
	key  string // hex SHA-256 of type and key: a valid KV key and message id
	hash string // hex SHA-256 of the event as sent, deterministically encoded
}

// readIdempotencyKey reads the idempotency key of a synchronous request
// (REST, unary Send) to a durable or idempotent route and hashes its event b, as the
// client sent it. It returns nil without a key.
func readIdempotencyKey(ctx context.Context, t eventv1.Type, b []byte) (*idempotency, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	keys := md.Get(protocol.IdempotencyKey)
	if len(keys) == 0 {
		return nil, nil
	}
	if len(keys) > 1 {
		return nil, errBadKey()
	}
	return newIdempotency(t, keys[0], b)
}

// newIdempotency checks key, the idempotency key of event b of type t, and
// hashes b as the client sent it.
func newIdempotency(t eventv1.Type, key string, b []byte) (*idempotency, error) {
	if key == "" || len(key) > maxIdempotencyKey {
		return nil, errBadKey()
	}
	ev := new(eventv1.Event)
	if err := vtcodec.Unmarshal(b, ev); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err)
	}
	// The same event is the same type, payload, metadata and time: not the
	// same id, which a client library may give each retry afresh (a
	// duplicate is answered with the first event's id). Deterministic: the
	// same event hashes the same whatever its map order.
	ev.Id = ""
	canon, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid event: %v", err)
	}
	k := sha256.Sum256([]byte(t.String() + "\x00" + key))
	h := sha256.Sum256(canon)
	return &idempotency{key: hex.EncodeToString(k[:]), hash: hex.EncodeToString(h[:])}, nil
}

// errBadKey is the error for a malformed idempotency key.
func errBadKey() error {
	return status.Errorf(codes.InvalidArgument, "idempotency key must be one value of 1 to %d bytes", maxIdempotencyKey)
}

// errKeyReused is the error for a key sent again with another event.
func errKeyReused() error {
	st, _ := status.New(codes.FailedPrecondition, "idempotency key already used with a different event").
		WithDetails(&errdetails.ErrorInfo{Reason: protocol.ReasonIdempotencyKeyReused, Domain: protocol.ErrorDomain})
	return st.Err()
}

// claim records sub's key, or finds the event that claimed it first: the
// same event (sub then takes its id, so a retry is answered as the first
// request was) or another one (FAILED_PRECONDITION).
func (s *Sink) claim(ctx context.Context, sub *submission) error {
	kv := s.kv.Load()
	if kv == nil {
		return status.Errorf(codes.Unavailable, "durable store is not set up yet; retry later")
	}
	idem := sub.idem
	for range 2 { // a key that expires between Create and Get is claimed again
		_, err := (*kv).Create(ctx, idem.key, []byte(idem.hash+" "+sub.id))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return storeError(ctx, sub.typ, err)
		}
		e, err := (*kv).Get(ctx, idem.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return storeError(ctx, sub.typ, err)
		}
		hash, id, _ := strings.Cut(string(e.Value()), " ")
		if hash != idem.hash {
			return errKeyReused()
		}
		if id != sub.id {
			// The first request's id: should its event never have been
			// stored, this one is stored as it would have been. A Stream's
			// client still knows it by its own.
			fill, _ := (&relayv1.EventHeader{Id: id}).MarshalVT()
			sub.event, sub.asked, sub.id = append(sub.event[:len(sub.event):len(sub.event)], fill...), sub.id, id
		}
		return nil
	}
	return status.Errorf(codes.Unavailable, "idempotency key could not be recorded; retry later")
}
