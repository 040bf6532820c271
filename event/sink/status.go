package sink

import "strings"

// RouteStatus describes the health of one route.
type RouteStatus struct {
	// Type is the route's event type name, e.g. "TYPE_HELLO".
	Type string `json:"type"`
	// Broadcast is true for broadcast routes.
	Broadcast bool `json:"broadcast,omitempty"`
	// Durable is true for durable routes.
	Durable bool `json:"durable,omitempty"`
	// Store is, for a durable or idempotent route, the state of the connection to its
	// store: "connected", "reconnecting", ….
	Store string `json:"store,omitempty"`
	// Ready is true when at least one target has a live stream or, for a
	// durable route, when its store is connected: events are stored while
	// no processor is up, and delivered once one is. With shared pub/sub
	// no route is ready until the sink has caught up with the stream.
	Ready bool `json:"ready"`
	// Targets lists the route's processor targets.
	Targets []TargetStatus `json:"targets"`
}

// TargetStatus describes the streams to one processor target.
type TargetStatus struct {
	// Target is the gRPC target as configured.
	Target string `json:"target"`
	// LiveStreams is how many of Streams are open.
	LiveStreams int `json:"live_streams"`
	// Streams is how many streams the sink keeps to the target.
	Streams int `json:"streams"`
	// Pending is the number of requests in flight to the target.
	Pending int64 `json:"pending"`
	// Addresses lists the addresses a dns:/// target resolved to.
	Addresses []string `json:"addresses,omitempty"`
	// LastError is the latest error connecting to the target or of one of
	// its streams (e.g. a certificate that does not verify), until a
	// stream is up again; for a dns:/// target, each address's, prefixed
	// with the address.
	LastError string `json:"last_error,omitempty"`
}

// Status reports every route's health, in the order routes were configured.
func (s *Sink) Status() []RouteStatus {
	out := make([]RouteStatus, 0, len(s.cfg.Routes))
	pubsubReady := s.sharedPubSubReady()
	for _, cr := range s.cfg.Routes {
		r := s.routes[cr.Type]
		rs := RouteStatus{Type: r.name, Broadcast: r.broadcast, Durable: r.durable}
		for _, t := range r.targets {
			pools := *t.pools.Load()
			ts := TargetStatus{Target: t.name, Streams: len(pools) * s.cfg.StreamsPerTarget, LiveStreams: t.live(), Pending: t.pending()}
			var errs []string
			for _, p := range pools {
				addr := strings.TrimPrefix(p.conn.Target(), "passthrough:///")
				if t.host != "" {
					ts.Addresses = append(ts.Addresses, addr)
				}
				switch err := p.lastError(); {
				case err == "":
				case t.host != "":
					errs = append(errs, addr+": "+err)
				default:
					errs = append(errs, err)
				}
			}
			ts.LastError = strings.Join(errs, "; ")
			rs.Ready = rs.Ready || ts.LiveStreams > 0
			rs.Targets = append(rs.Targets, ts)
		}
		if r.durable {
			rs.Ready, rs.Store = s.storeStatus()
		} else if r.idempotent {
			ok, state := s.storeStatus()
			rs.Ready, rs.Store = rs.Ready && ok, state
		}
		rs.Ready = rs.Ready && pubsubReady
		out = append(out, rs)
	}
	return out
}

// Ready reports whether every route has at least one live processor stream,
// or, for a durable route, a connected store; an idempotent route needs
// both.
func (s *Sink) Ready() bool {
	if !s.sharedPubSubReady() {
		return false
	}
	for _, r := range s.routes {
		if r.durable {
			if ok, _ := s.storeStatus(); !ok {
				return false
			}
			continue
		}
		if r.idempotent {
			if ok, _ := s.storeStatus(); !ok {
				return false
			}
		}
		live := false
		for _, t := range r.targets {
			if t.live() > 0 {
				live = true
				break
			}
		}
		if !live {
			return false
		}
	}
	return true
}
