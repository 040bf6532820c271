package main

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Metadata keys that change how echo answers one event.
const (
	metaDelay   = "delay"   // a Go duration to wait before answering
	metaError   = "error"   // a gRPC code name to fail with
	metaConsume = "consume" // "true" to consume, "false" to reply
	// metaProcessedBy is set in every reply to the processor's --name.
	metaProcessedBy = "processed_by"
)

// echo is proc's processor.Handler: it answers every event with the event
// itself, unless the event's metadata asks otherwise.
type echo struct {
	name    string // stamped into every reply as metadata processed_by
	consume bool   // consume events unless their metadata says consume=false
	// publish, when set, publishes a copy of every event received.
	publish func(context.Context, *eventv1.Event) error
	log     *slog.Logger
}

// Handle answers ev, after metadata delay: with metadata error's status,
// consumed, or ev itself stamped with metadata processed_by=<name>.
func (e *echo) Handle(ctx context.Context, ev *eventv1.Event) (*eventv1.Event, error) {
	if e.publish != nil {
		if err := e.publish(ctx, proto.CloneOf(ev)); err != nil {
			e.log.WarnContext(ctx, "proc: publish failed", "event_id", ev.GetId(), "err", err)
		}
	}
	md := ev.GetMetadata()
	if v, ok := md[metaDelay]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "proc: metadata %s=%q is not a duration", metaDelay, v)
		}
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
	if v, ok := md[metaError]; ok {
		code, err := parseCode(v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "proc: metadata %s=%q is not a gRPC code name", metaError, v)
		}
		if code != codes.OK {
			return nil, status.Errorf(code, "proc: failed as metadata %s=%s asks", metaError, v)
		}
	}
	consume := e.consume
	if v, ok := md[metaConsume]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "proc: metadata %s=%q is not a bool", metaConsume, v)
		}
		consume = b
	}
	if consume {
		return nil, nil
	}
	if ev.Metadata == nil {
		ev.Metadata = make(map[string]string, 1)
	}
	ev.Metadata[metaProcessedBy] = e.name
	return ev, nil
}

// Inline implements processor.Inliner: Handle returns at once unless the
// event asks for a delay or events are published (Publish may wait).
func (e *echo) Inline(ev *eventv1.Event) bool {
	if e.publish != nil {
		return false
	}
	_, delay := ev.GetMetadata()[metaDelay]
	return !delay
}

// sleep waits for d, or returns ctx's error when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseCode parses a gRPC code name such as "NOT_FOUND" (any case).
func parseCode(name string) (codes.Code, error) {
	var c codes.Code
	if strings.TrimSpace(name) != name || name == "" {
		return 0, strconv.ErrSyntax
	}
	err := c.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(name))))
	return c, err
}
