package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	relayv1 "github.com/eventproc/eventproc/internal/relay/v1"
)

// Idempotency keys on request/response routes (docs/design.md,
// "Idempotency keys on request/response routes"): the first request with a
// key claims it in the KV bucket of idempotency keys with kv.Create, which
// only one caller can win, before its event is sent; once a processor
// answered it with a reply or "consumed", that answer replaces the claim
// and is given to every retry with the key until the bucket's TTL removes
// it. A retry that finds the claim still pending polls until the answer is
// there, the claim is released (it then claims the key itself), or its own
// deadline (ABORTED: still in progress). A failed first attempt releases
// the key, so that a retry reaches a processor again.

// Bounds of the poll of a retry waiting for a pending claim.
const (
	claimPollMin = 5 * time.Millisecond
	claimPollMax = 100 * time.Millisecond
)

// claimGrace is how long after its claimant's deadline a pending claim is
// taken over by a retry: the claimant's sink stopped before it could
// release it.
const claimGrace = 2 * time.Second

// settleTimeout bounds recording an answer, or releasing a key, after the
// processor answered (whether or not the caller still waits).
const settleTimeout = 5 * time.Second

// claimRecord is the value of a request/response route's key in the
// bucket: the hash of the event that claimed it and either when its
// claimant gives up (pending) or the answer (done).
type claimRecord struct {
	hash  string
	done  bool
	until time.Time // pending: the claimant's deadline
	resp  []byte    // done: the encoded relayv1.SendResponse
}

// encode writes r as "HASH p UNIXNANO" (pending) or "HASH d\n" and the
// answer (done).
func (r claimRecord) encode() []byte {
	if !r.done {
		return fmt.Appendf(nil, "%s p %d", r.hash, r.until.UnixNano())
	}
	b := make([]byte, 0, len(r.hash)+3+len(r.resp))
	b = append(append(b, r.hash...), " d\n"...)
	return append(b, r.resp...)
}

// decodeClaim reads what claimRecord.encode wrote.
func decodeClaim(b []byte) (claimRecord, error) {
	var r claimRecord
	head, body, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(head)
	switch {
	case len(fields) == 2 && string(fields[1]) == "d":
		r.hash, r.done, r.resp = string(fields[0]), true, body
		return r, nil
	case len(fields) == 3 && string(fields[1]) == "p":
		ns, err := strconv.ParseInt(string(fields[2]), 10, 64)
		if err != nil {
			break
		}
		r.hash, r.until = string(fields[0]), time.Unix(0, ns)
		return r, nil
	}
	return r, errors.New("unreadable idempotency record")
}

// sendIdempotent sends the event of sub, which carries an idempotency key
// on a request/response route, unless a request with the key was answered
// already: that answer is sub's. It runs on the caller's goroutine.
func (s *Sink) sendIdempotent(sub *submission) {
	kvp := s.kv.Load()
	if kvp == nil {
		sub.finish(answer{err: status.Errorf(codes.Unavailable, "idempotency store is not set up yet; retry later")})
		return
	}
	if st := s.cfg.Durable.Conn.Status(); st != nats.CONNECTED {
		sub.finish(answer{err: status.Errorf(codes.Unavailable, "idempotency store unavailable (NATS connection %s); retry later", st)})
		return
	}
	kv := *kvp
	ctx, cancel := context.WithDeadline(sub.ctx, sub.deadline)
	rev, replay, err := s.claimReply(ctx, kv, sub)
	cancel()
	switch {
	case err != nil:
		sub.finish(answer{err: err})
		return
	case replay != nil:
		sub.finish(*replay)
		return
	}
	// sub holds the key: send its event, and take its answer here first.
	to, got := sub.to, make(waiter, 1)
	sub.to = got
	sub.first = call{sub: sub}
	sub.send(&sub.first)
	var a answer
	select {
	case a = <-got:
	case <-sub.ctx.Done():
		sub.abandon(sub.ctx.Err())
		a = <-got
	}
	s.settleReply(kv, sub, rev, a)
	to.receive(sub, a) // sub.finish counted it already
}

// claimReply claims sub's key (returning the claim's revision), or returns
// the answer a request with the key was given, or an error: the key was
// used with another event (FAILED_PRECONDITION), a request with it is
// still in progress at ctx's deadline (ABORTED), or the store failed.
func (s *Sink) claimReply(ctx context.Context, kv jetstream.KeyValue, sub *submission) (uint64, *answer, error) {
	idem := sub.idem
	pending := claimRecord{hash: idem.hash, until: sub.deadline}.encode()
	poll := claimPollMin
	for {
		rev, err := kv.Create(ctx, idem.key, pending)
		if err == nil {
			return rev, nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, nil, idempotencyStoreError(ctx, sub.typ, err)
		}
		e, err := kv.Get(ctx, idem.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released or expired since: claim it
		}
		if err != nil {
			return 0, nil, idempotencyStoreError(ctx, sub.typ, err)
		}
		rec, err := decodeClaim(e.Value())
		if err != nil {
			return 0, nil, status.Errorf(codes.Internal, "idempotency key of %s: %v", sub.typ, err)
		}
		if rec.hash != idem.hash {
			return 0, nil, errKeyReused()
		}
		if rec.done {
			a, err := replayedAnswer(rec.resp)
			return 0, a, err
		}
		if time.Now().After(rec.until.Add(claimGrace)) {
			// Its claimant is gone; of the retries, one takes it over.
			if rev, err := kv.Update(ctx, idem.key, pending, e.Revision()); err == nil {
				return rev, nil, nil
			}
		}
		if !sleep(ctx, poll) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, nil, status.Errorf(codes.Aborted,
					"a request with this idempotency key is still in progress; retry later")
			}
			return 0, nil, status.FromContextError(ctx.Err()).Err()
		}
		poll = min(2*poll, claimPollMax)
	}
}

// settleReply keeps a's answer under sub's key, claimed at revision rev,
// when a processor replied or consumed the event; otherwise, or when it
// cannot be kept, it releases the key, so that a retry is sent again.
func (s *Sink) settleReply(kv jetstream.KeyValue, sub *submission, rev uint64, a answer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sub.ctx), settleTimeout)
	defer cancel()
	key := sub.idem.key
	if a.code() == codes.OK {
		out, err := sendResponse(a)
		if err == nil {
			var b []byte
			if b, err = out.MarshalVT(); err == nil {
				_, err = kv.Update(ctx, key, claimRecord{hash: sub.idem.hash, done: true, resp: b}.encode(), rev)
			}
		}
		if err == nil {
			return
		}
		s.cfg.Logger.Warn("idempotency: answer not kept; a retry will be sent again", "type", sub.typ.String(), "err", err)
	}
	if err := kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		// Expired or taken over already; or kept until the bucket's TTL.
		s.cfg.Logger.Debug("idempotency: key not released", "type", sub.typ.String(), "err", err)
	}
}

// replayedAnswer is the answer kept as an encoded relayv1.SendResponse.
func replayedAnswer(b []byte) (*answer, error) {
	var r relayv1.SendResponse
	if err := r.UnmarshalVT(b); err != nil {
		return nil, status.Errorf(codes.Internal, "kept answer does not decode: %v", err)
	}
	switch r.GetOutcome() {
	case eventv1.Outcome_OUTCOME_REPLIED:
		return &answer{resp: &relayv1.ProcessResponse{Result: &relayv1.ProcessResponse_Reply{Reply: r.GetEvent()}}}, nil
	case eventv1.Outcome_OUTCOME_CONSUMED:
		return &answer{resp: &relayv1.ProcessResponse{Result: &relayv1.ProcessResponse_Consumed{Consumed: true}}}, nil
	}
	return nil, status.Errorf(codes.Internal, "kept answer has outcome %s", r.GetOutcome())
}

// idempotencyStoreError is storeError in the words of idempotency keys.
func idempotencyStoreError(ctx context.Context, t eventv1.Type, err error) error {
	if ctx.Err() != nil {
		return storeError(ctx, t, err)
	}
	return status.Errorf(codes.Unavailable, "idempotency store unavailable for %s: %v; retry later", t, err)
}
