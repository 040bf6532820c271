package processor

import (
	"cmp"
	"context"
	"slices"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/protocol"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// SinkIDMetadataKey is the gRPC metadata key by which a sink names itself
// on its Process streams, so that Publish sends each event once per sink.
// Streams without it count as separate sinks.
const SinkIDMetadataKey = protocol.SinkIDHeader

// Publish sends ev to every connected sink, once per sink, on its newest
// live stream (a ProcessResponse with id 0). An event without an id is
// given one first, the same for every sink, so that sinks sharing pub/sub
// store it once. It may be called from any
// goroutine, handlers included; ev must not be modified afterwards. It
// returns once ev is queued for each sink. It fails with UNAVAILABLE when no
// sink is connected, and with ctx's status when ctx ends first (some sinks
// may then have ev and others not).
func (s *Server) Publish(ctx context.Context, ev *eventv1.Event) error {
	if ev == nil {
		return status.Error(codes.InvalidArgument, "processor: Publish of a nil event")
	}
	groups := s.sinkGroups()
	if ev.GetId() == "" && len(groups) > 1 {
		ev = proto.CloneOf(ev)
		ev.Id = s.ids.Next()
	}
	sent := 0
	for _, group := range groups {
		ok, err := publishOnce(ctx, group, ev)
		if err != nil {
			return err
		}
		if ok {
			sent++
		}
	}
	if sent == 0 {
		return status.Error(codes.Unavailable, "processor: no sink connected")
	}
	return nil
}

// publishOnce queues ev on the first stream of group that is still live.
// It reports false when none is, and fails when ctx ends first.
func publishOnce(ctx context.Context, group []*stream, ev *eventv1.Event) (bool, error) {
	for _, st := range group {
		resp := &eventv1.ProcessResponse{Result: &eventv1.ProcessResponse_Publish{Publish: ev}}
		st.queued.Add(1) // see stream.enqueue
		select {
		case st.out <- resp:
			return true, nil
		case <-st.ctx.Done():
			st.queued.Add(-1) // closed meanwhile: try the sink's next stream
		case <-ctx.Done():
			st.queued.Add(-1)
			return false, status.FromContextError(ctx.Err()).Err()
		}
	}
	return false, nil
}

// sinkGroups returns the live streams by sink, newest first in each group.
func (s *Server) sinkGroups() [][]*stream {
	type entry struct {
		st  *stream
		seq uint64
	}
	s.mu.Lock()
	bySink := make(map[string][]entry)
	var groups [][]*stream
	for st, seq := range s.streams {
		if st.sinkID == "" {
			groups = append(groups, []*stream{st})
			continue
		}
		bySink[st.sinkID] = append(bySink[st.sinkID], entry{st, seq})
	}
	s.mu.Unlock()
	for _, entries := range bySink {
		slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(b.seq, a.seq) })
		group := make([]*stream, len(entries))
		for i, e := range entries {
			group[i] = e.st
		}
		groups = append(groups, group)
	}
	return groups
}

// addStream makes st a target for Publish.
func (s *Server) addStream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSeq++
	s.streams[st] = s.nextSeq
}

// removeStream withdraws st from Publish.
func (s *Server) removeStream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.streams, st)
}
