package auth

import (
	"fmt"
	"strings"

	"github.com/eventproc/eventproc/event/sink"
	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Scopes is what a credential allows: sending and subscribing to event
// types, listing and replaying their dead letters, and reading /metrics.
//
// A scope is "send:<type>", "subscribe:<type>" or "replay:<type>", <type>
// named as in a route (hello, TYPE_HELLO, any case) or "*" for every type,
// or "read:metrics".
type Scopes struct {
	send, subscribe, replay typeSet
	// Metrics allows GET /metrics.
	Metrics bool
}

// typeSet is a set of event types, or all of them.
type typeSet struct {
	all   bool
	types map[eventv1.Type]bool
}

func (s typeSet) has(t eventv1.Type) bool { return s.all || s.types[t] }

func (s *typeSet) add(t eventv1.Type) {
	if s.types == nil {
		s.types = make(map[eventv1.Type]bool)
	}
	s.types[t] = true
}

// allScopes allows everything: the scopes of callers when authentication
// is off.
var allScopes = Scopes{send: typeSet{all: true}, subscribe: typeSet{all: true}, replay: typeSet{all: true}, Metrics: true}

// MetricsScope allows GET /metrics.
const MetricsScope = "read:metrics"

// ParseScopes reads a list of scopes. Scopes it does not know are an
// error when strict (an API key file) and ignored otherwise (a token's
// claim, which may hold scopes meant for other services).
func ParseScopes(list []string, strict bool) (Scopes, error) {
	var s Scopes
	for _, scope := range list {
		if scope == MetricsScope {
			s.Metrics = true
			continue
		}
		action, name, ok := strings.Cut(scope, ":")
		var set *typeSet
		switch action {
		case "send":
			set = &s.send
		case "subscribe":
			set = &s.subscribe
		case "replay":
			set = &s.replay
		}
		if !ok || set == nil {
			if strict {
				return s, fmt.Errorf("unknown scope %q (want send:<type>, subscribe:<type>, replay:<type> or %s; <type> may be *)", scope, MetricsScope)
			}
			continue
		}
		if name == "*" {
			set.all = true
			continue
		}
		t, err := sink.ParseType(name)
		if err != nil {
			if strict {
				return s, fmt.Errorf("scope %q: unknown event type %q", scope, name)
			}
			continue
		}
		set.add(t)
	}
	return s, nil
}

// Allows reports whether s allows action on events of type t.
func (s Scopes) Allows(action sink.Action, t eventv1.Type) bool {
	switch action {
	case sink.ActionSend:
		return s.send.has(t)
	case sink.ActionSubscribe:
		return s.subscribe.has(t)
	case sink.ActionReplay:
		return s.replay.has(t)
	}
	return false
}
