package eventjson

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
	"github.com/eventproc/eventproc/internal/wire"
)

// AppendWire appends the JSON of the Event encoded in enc to b: what
// MarshalAppend writes for the event proto.Unmarshal decodes from enc, and
// proto.Unmarshal's error when it cannot.
//
// The sink relays a processor's reply as the bytes the processor sent;
// AppendWire turns them into JSON without building the Event. It reads
// the encoding protobuf encoders write — Event's fields in order, each at
// most once, with the wire types of their declaration — and leaves
// anything else (a field repeated, so merged; fields out of order; anything
// MarshalAppend would leave to protojson) to proto.Unmarshal and
// MarshalAppend.
func AppendWire(b, enc []byte) ([]byte, error) {
	if out, ok := appendWireEvent(b, enc); ok {
		return out, nil
	}
	ev := new(eventv1.Event)
	if err := proto.Unmarshal(enc, ev); err != nil {
		return b, err
	}
	return MarshalAppend(b[:len(b):len(b)], ev)
}

// Field numbers of Event and the well-known types it uses.
const (
	eventID       = 1
	eventType     = 2
	eventPayload  = 3
	eventData     = 4
	eventMetadata = 5
	eventTime     = 6

	valueNull   = 1
	valueNumber = 2
	valueString = 3
	valueBool   = 4
	valueStruct = 5
	valueList   = 6

	entryKey   = 1 // map entries, and the Struct's fields entries
	entryValue = 2

	structFields = 1
	listValues   = 1

	timestampSeconds = 1
	timestampNanos   = 2
)

// str views a field's bytes as a string for the time of a call, without
// copying them.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// entry is a map entry: key and value as encoded.
type entry struct{ key, value []byte }

func compareEntries(a, b entry) int { return bytes.Compare(a.key, b.key) }

// readFields calls f with each field of the encoded message b whose number
// is from lo to hi, in order, and skips the others, as protojson skips
// unknown fields. It returns false when b is malformed, when such a field
// is neither varint, fixed64 nor length-delimited, or when f returns false.
func readFields(b []byte, lo, hi protowire.Number, f func(wire.Field) bool) bool {
	for len(b) > 0 {
		fl, rest, err := wire.Next(b)
		if err != nil {
			return false
		}
		b = rest
		if fl.Num < lo || fl.Num > hi {
			continue
		}
		switch fl.Type {
		case protowire.VarintType, protowire.Fixed64Type, protowire.BytesType:
		default:
			return false
		}
		if !f(fl) {
			return false
		}
	}
	return true
}

// appendWireEvent appends the event in enc, false if it leaves it to
// proto.Unmarshal. Fields may come in any order, as Unmarshal reads them:
// the last of a repeated scalar wins, and metadata entries are gathered
// wherever they are (the echo processor appends one after the others).
// A message field (payload, time) repeated is merged by Unmarshal and
// left to it.
func appendWireEvent(b, enc []byte) ([]byte, bool) {
	var (
		id, data, payload, ts []byte
		typ                   int32
		hasPayload, hasTime   bool
		metaBuf               [8]entry
		metadata              = metaBuf[:0]
	)
	read := readFields(enc, eventID, eventTime, func(f wire.Field) bool {
		if f.Num == eventType {
			typ = int32(f.Int)
			return f.Type == protowire.VarintType
		}
		if f.Type != protowire.BytesType {
			return false
		}
		switch f.Num {
		case eventID:
			id = f.Bytes
			return utf8.Valid(f.Bytes) // Unmarshal checks every occurrence
		case eventData:
			data = f.Bytes
		case eventMetadata:
			e, ok := readEntry(f.Bytes)
			metadata = append(metadata, e)
			return ok
		case eventPayload:
			if hasPayload {
				return false
			}
			payload, hasPayload = f.Bytes, true
		case eventTime:
			if hasTime {
				return false
			}
			ts, hasTime = f.Bytes, true
		}
		return true
	})
	if !read {
		return b, false
	}

	b = append(b, '{')
	ok := true
	if len(id) > 0 {
		b = appendName(b, `"id":`)
		if b, ok = appendString(b, str(id)); !ok {
			return b, false
		}
	}
	if typ != 0 {
		b = appendName(b, `"type":`)
		b = appendType(b, eventv1.Type(typ))
	}
	if hasPayload {
		b = appendName(b, `"payload":`)
		if b, ok = appendWireValue(b, payload, 0); !ok {
			return b, false
		}
	}
	if len(data) > 0 {
		b = appendName(b, `"data":`)
		b = appendBytes(b, data)
	}
	if len(metadata) > 0 {
		b = appendName(b, `"metadata":`)
		if b, ok = appendEntries(b, metadata, appendWireString, 0); !ok {
			return b, false
		}
	}
	if hasTime {
		b = appendName(b, `"time":`)
		if b, ok = appendWireTimestamp(b, ts); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// readEntry reads a map entry: its key and value, each at most once, both
// length-delimited. A missing one is empty. (A Struct entry's missing value
// is a Value without a kind, which protojson rejects: appendWireValue finds
// it empty and says so.)
func readEntry(b []byte) (entry, bool) {
	var (
		e    entry
		seen [entryValue + 1]bool
	)
	ok := readFields(b, entryKey, entryValue, func(f wire.Field) bool {
		if f.Type != protowire.BytesType || seen[f.Num] {
			return false
		}
		seen[f.Num] = true
		if f.Num == entryKey {
			e.key = f.Bytes
		} else {
			e.value = f.Bytes
		}
		return true
	})
	return e, ok
}

// appendEntries appends map entries, sorted by key, writing each value with
// value. Repeated keys (the last one wins in Unmarshal) are left to it.
func appendEntries(b []byte, entries []entry, value func([]byte, []byte, int) ([]byte, bool), depth int) ([]byte, bool) {
	slices.SortFunc(entries, compareEntries)
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			if bytes.Equal(entries[i-1].key, e.key) {
				return b, false
			}
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendString(b, str(e.key)); !ok {
			return b, false
		}
		if b, ok = value(append(b, ':'), e.value, depth); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendWireString appends a map's string value.
func appendWireString(b, v []byte, _ int) ([]byte, bool) { return appendString(b, str(v)) }

// appendWireValue appends an encoded google.protobuf.Value: one of its kinds,
// set once.
func appendWireValue(b, enc []byte, depth int) ([]byte, bool) {
	if depth > maxDepth {
		return b, false
	}
	var kind wire.Field
	read := readFields(enc, valueNull, valueList, func(f wire.Field) bool {
		if kind.Num != 0 {
			return false // a second kind, or the same twice: merged
		}
		kind = f
		return true
	})
	if !read {
		return b, false
	}
	switch {
	case kind.Num == valueNull && kind.Type == protowire.VarintType:
		return append(b, "null"...), true
	case kind.Num == valueNumber && kind.Type == protowire.Fixed64Type:
		return appendNumber(b, math.Float64frombits(kind.Int))
	case kind.Num == valueString && kind.Type == protowire.BytesType:
		return appendString(b, str(kind.Bytes))
	case kind.Num == valueBool && kind.Type == protowire.VarintType:
		return strconv.AppendBool(b, kind.Int != 0), true
	case kind.Num == valueStruct && kind.Type == protowire.BytesType:
		return appendWireStruct(b, kind.Bytes, depth+1)
	case kind.Num == valueList && kind.Type == protowire.BytesType:
		return appendWireList(b, kind.Bytes, depth+1)
	}
	return b, false // no kind (protojson's error), or a kind of the wrong wire type
}

// appendWireStruct appends an encoded google.protobuf.Struct.
func appendWireStruct(b, enc []byte, depth int) ([]byte, bool) {
	var buf [16]entry
	fields := buf[:0]
	read := readFields(enc, structFields, structFields, func(f wire.Field) bool {
		if f.Type != protowire.BytesType {
			return false
		}
		e, ok := readEntry(f.Bytes)
		fields = append(fields, e)
		return ok
	})
	if !read {
		return b, false
	}
	return appendEntries(b, fields, appendWireValue, depth)
}

// appendWireList appends an encoded google.protobuf.ListValue.
func appendWireList(b, enc []byte, depth int) ([]byte, bool) {
	b = append(b, '[')
	read := readFields(enc, listValues, listValues, func(f wire.Field) bool {
		if f.Type != protowire.BytesType {
			return false
		}
		if b[len(b)-1] != '[' {
			b = append(b, ',')
		}
		var ok bool
		b, ok = appendWireValue(b, f.Bytes, depth)
		return ok
	})
	if !read {
		return b, false
	}
	return append(b, ']'), true
}

// appendWireTimestamp appends an encoded google.protobuf.Timestamp, each of
// its fields at most once.
func appendWireTimestamp(b, enc []byte) ([]byte, bool) {
	var (
		secs, nanos int64
		seen        [timestampNanos + 1]bool
	)
	read := readFields(enc, timestampSeconds, timestampNanos, func(f wire.Field) bool {
		if f.Type != protowire.VarintType || seen[f.Num] {
			return false
		}
		seen[f.Num] = true
		if f.Num == timestampSeconds {
			secs = int64(f.Int)
		} else {
			nanos = int64(int32(f.Int))
		}
		return true
	})
	if !read {
		return b, false
	}
	return appendTime(b, secs, nanos)
}
