// Package eventjson encodes and decodes an [eventv1.Event] as JSON, the
// same JSON that protojson writes and reads, without protobuf reflection
// (see docs/design.md, JSON without reflection).
//
// The output is what protojson.MarshalOptions{} produces, byte for byte
// once protojson's deliberately unstable whitespace is removed
// (FuzzEquivalence checks it). Anything protojson would reject (invalid
// UTF-8, a Value with no kind or a NaN number, a Timestamp out of range) or
// that this package does not write itself is left to protojson: [Marshal]
// falls back to it, so its errors are protojson's.
package eventjson

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// Marshal returns ev as JSON, as protojson.MarshalOptions{}.Marshal would.
func Marshal(ev *eventv1.Event) ([]byte, error) {
	// Room for a typical reply, so that it is written in one allocation.
	return MarshalAppend(make([]byte, 0, 128+len(ev.GetId())+len(ev.GetData())*4/3), ev)
}

// MarshalAppend appends ev as JSON to b, as
// protojson.MarshalOptions{}.MarshalAppend would.
func MarshalAppend(b []byte, ev *eventv1.Event) ([]byte, error) {
	if out, ok := appendEvent(b, ev); ok {
		return out, nil
	}
	return protojson.MarshalOptions{}.MarshalAppend(b[:len(b):len(b)], ev)
}

// maxDepth bounds the payload nesting written here; deeper goes to protojson.
const maxDepth = 64

// appendEvent appends ev to b; false means it met something it leaves to
// protojson, and what it appended must be discarded.
func appendEvent(b []byte, ev *eventv1.Event) ([]byte, bool) {
	if ev == nil {
		return append(b, "{}"...), true
	}
	b = append(b, '{')
	ok := true
	if id := ev.GetId(); id != "" {
		b = appendName(b, `"id":`)
		if b, ok = appendString(b, id); !ok {
			return b, false
		}
	}
	if t := ev.GetType(); t != 0 {
		b = appendName(b, `"type":`)
		b = appendType(b, t)
	}
	if p := ev.GetPayload(); p != nil {
		b = appendName(b, `"payload":`)
		if b, ok = appendValue(b, p, 0); !ok {
			return b, false
		}
	}
	if d := ev.GetData(); len(d) > 0 {
		b = appendName(b, `"data":`)
		b = appendBytes(b, d)
	}
	if md := ev.GetMetadata(); len(md) > 0 {
		b = appendName(b, `"metadata":`)
		if b, ok = appendMap(b, md, 0, appendMapString); !ok {
			return b, false
		}
	}
	if ts := ev.GetTime(); ts != nil {
		b = appendName(b, `"time":`)
		if b, ok = appendTimestamp(b, ts); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendName appends a member's name, after a comma unless it is the first.
func appendName(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return append(b, name...)
}

// appendType appends an event type's name, or its number if it has none.
func appendType(b []byte, t eventv1.Type) []byte {
	if name, known := eventv1.Type_name[int32(t)]; known {
		b = append(b, '"')
		b = append(b, name...)
		return append(b, '"')
	}
	return strconv.AppendInt(b, int64(t), 10)
}

// appendBytes appends a bytes field: padded standard base64.
func appendBytes(b, d []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, d)
	return append(b, '"')
}

// appendValue appends a google.protobuf.Value as protojson writes it.
func appendValue(b []byte, v *structpb.Value, depth int) ([]byte, bool) {
	if depth > maxDepth {
		return b, false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return append(b, "null"...), true
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(b, k.BoolValue), true
	case *structpb.Value_NumberValue:
		return appendNumber(b, k.NumberValue)
	case *structpb.Value_StringValue:
		return appendString(b, k.StringValue)
	case *structpb.Value_StructValue:
		if k.StructValue == nil {
			return b, false
		}
		return appendMap(b, k.StructValue.GetFields(), depth+1, appendValue)
	case *structpb.Value_ListValue:
		if k.ListValue == nil {
			return b, false
		}
		b = append(b, '[')
		for i, e := range k.ListValue.GetValues() {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendValue(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false // no kind: protojson's error
}

// appendNumber appends a Value's number as protojson does (its appendFloat,
// after encoding/json); NaN and infinities are protojson's errors.
func appendNumber(b []byte, n float64) ([]byte, bool) {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(n); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, n, format, -1, 64)
	if format == 'e' {
		// e-07 → e-7, as encoding/json and protojson write it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendMap appends a map (or a Struct's fields), keys sorted, with value.
func appendMap[V any](b []byte, m map[string]V, depth int, value func([]byte, V, int) ([]byte, bool)) ([]byte, bool) {
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendString(b, k); !ok {
			return b, false
		}
		if b, ok = value(append(b, ':'), m[k], depth); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendMapString appends a map's string value.
func appendMapString(b []byte, v string, _ int) ([]byte, bool) { return appendString(b, v) }

// Timestamp bounds protojson accepts: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minSeconds = -62135596800
	maxSeconds = 253402300799
)

// appendTimestamp appends a Timestamp in RFC 3339, UTC, with 0, 3, 6 or 9
// fractional digits, as protojson does.
func appendTimestamp(b []byte, ts *timestamppb.Timestamp) ([]byte, bool) {
	return appendTime(b, ts.GetSeconds(), int64(ts.GetNanos()))
}

// appendTime is appendTimestamp given the fields.
func appendTime(b []byte, secs, nanos int64) ([]byte, bool) {
	if secs < minSeconds || secs > maxSeconds || nanos < 0 || nanos > 999_999_999 {
		return b, false
	}
	b = append(b, '"')
	b = time.Unix(secs, 0).UTC().AppendFormat(b, "2006-01-02T15:04:05")
	if nanos != 0 {
		digits := 9
		switch {
		case nanos%1_000_000 == 0:
			nanos, digits = nanos/1_000_000, 3
		case nanos%1_000 == 0:
			nanos, digits = nanos/1_000, 6
		}
		b = append(b, ".000000000"[:digits+1]...)
		for i := len(b) - 1; nanos > 0; i-- {
			b[i] = byte('0' + nanos%10)
			nanos /= 10
		}
	}
	return append(b, `Z"`...), true
}

// appendString appends s as a JSON string, escaping only '"', '\\' and
// control characters, as protojson does. Invalid UTF-8 is protojson's error.
func appendString(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, false
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}
