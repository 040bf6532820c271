package eventjson

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Unmarshal decodes the JSON event in b into ev, replacing what it held,
// as opts.Unmarshal does. It reads the events clients send (the fields id,
// type by name, payload, data and metadata; strings without \u escapes)
// itself, and leaves anything else, every input protojson rejects
// included, to opts.Unmarshal, so that what it accepts and its errors are
// protojson's (FuzzUnmarshal checks it).
func Unmarshal(b []byte, ev *eventv1.Event, opts protojson.UnmarshalOptions) error {
	ev.Reset()
	d := decoder{b: b}
	// A recursion limit below protojson's could reject what this reads.
	if opts.RecursionLimit == 0 || opts.RecursionLimit > 4*maxDepth {
		if d.event(ev) {
			return nil
		}
	}
	ev.Reset()
	return opts.Unmarshal(b, ev)
}

// decoder reads JSON from b; each method returns false when it meets
// something it leaves to protojson.
type decoder struct {
	b []byte
	i int
}

// skipSpace skips JSON whitespace.
func (d *decoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (d *decoder) peek() byte {
	d.skipSpace()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// consume consumes c, the next byte after whitespace.
func (d *decoder) consume(c byte) bool {
	if d.peek() != c {
		return false
	}
	d.i++
	return true
}

// object reads an object, calling member, which reads the value, per key.
func (d *decoder) object(member func(key string) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		key, ok := d.string()
		if !ok || !d.consume(':') || !member(key) {
			return false
		}
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// string reads a string of valid UTF-8, no control characters, no \u.
func (d *decoder) string() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	start := d.i
	escaped := false
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !escaped {
				return string(s), true
			}
			return unescape(s)
		case c == '\\':
			escaped = true
			d.i += 2
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			d.i += n
		}
	}
	return "", false
}

// unescape returns s with its two-character escapes replaced.
func unescape(s []byte) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			return "", false // \u, or not an escape
		}
	}
	return string(out), true
}

// The members of an event's JSON this decoder reads, to tell duplicates.
const (
	eventID = iota
	eventType
	eventPayload
	eventData
	eventMetadata
	eventMembers
)

// event reads a whole event: one object, no field twice, nothing after it.
func (d *decoder) event(ev *eventv1.Event) bool {
	var seen [eventMembers]bool
	ok := d.object(func(key string) bool {
		var f int
		switch key {
		case "id":
			f = eventID
		case "type":
			f = eventType
		case "payload":
			f = eventPayload
		case "data":
			f = eventData
		case "metadata":
			f = eventMetadata
		default:
			return false // time, unknown fields, duplicates: protojson's
		}
		if seen[f] {
			return false
		}
		seen[f] = true
		switch f {
		case eventID:
			id, ok := d.string()
			ev.Id = id
			return ok
		case eventType:
			name, ok := d.string()
			t, known := eventv1.Type_value[name]
			ev.Type = eventv1.Type(t)
			return ok && known
		case eventPayload:
			v, ok := d.value(0)
			ev.Payload = v
			return ok
		case eventData:
			s, ok := d.string()
			if !ok {
				return false
			}
			data, err := base64.StdEncoding.DecodeString(s)
			ev.Data = data
			return err == nil
		default: // eventMetadata
			md := make(map[string]string)
			ev.Metadata = md
			return d.object(func(k string) bool {
				if _, dup := md[k]; dup {
					return false
				}
				v, ok := d.string()
				md[k] = v
				return ok
			})
		}
	})
	d.skipSpace()
	return ok && d.i == len(d.b)
}

// value reads a google.protobuf.Value.
func (d *decoder) value(depth int) (*structpb.Value, bool) {
	if depth > maxDepth {
		return nil, false
	}
	switch c := d.peek(); {
	case c == '"':
		s, ok := d.string()
		return structpb.NewStringValue(s), ok
	case c == '{':
		fields := make(map[string]*structpb.Value)
		ok := d.object(func(k string) bool {
			if _, dup := fields[k]; dup {
				return false
			}
			v, ok := d.value(depth + 1)
			fields[k] = v
			return ok
		})
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), ok
	case c == '[':
		d.i++
		list := &structpb.ListValue{}
		if d.consume(']') {
			return structpb.NewListValue(list), true
		}
		for {
			v, ok := d.value(depth + 1)
			if !ok {
				return nil, false
			}
			list.Values = append(list.Values, v)
			if d.consume(']') {
				return structpb.NewListValue(list), true
			}
			if !d.consume(',') {
				return nil, false
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		n, ok := d.number()
		return structpb.NewNumberValue(n), ok
	}
	switch {
	case d.literal("true"):
		return structpb.NewBoolValue(true), true
	case d.literal("false"):
		return structpb.NewBoolValue(false), true
	case d.literal("null"):
		return structpb.NewNullValue(), true
	}
	return nil, false
}

// literal consumes lit when it comes next, followed by a delimiter.
func (d *decoder) literal(lit string) bool {
	end := d.i + len(lit)
	if end > len(d.b) || string(d.b[d.i:end]) != lit || end < len(d.b) && !delimiter(d.b[end]) {
		return false
	}
	d.i = end
	return true
}

// delimiter reports whether c may follow a number or literal.
func delimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ']', '}':
		return true
	}
	return false
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// that a float64 holds.
func (d *decoder) number() (float64, bool) {
	b, start := d.b, d.i
	i := start
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && !delimiter(b[i]) {
		return 0, false
	}
	n, err := strconv.ParseFloat(string(b[start:i]), 64)
	d.i = i
	return n, err == nil
}
