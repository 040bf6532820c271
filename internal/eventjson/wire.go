package eventjson

import (
	"bytes"
	"math"
	"slices"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/eventproc/eventproc/event/v1"
)

// AppendWire appends the JSON of the Event encoded in wire to b: what
// MarshalAppend writes for the event proto.Unmarshal decodes from wire, and
// proto.Unmarshal's error when it cannot.
//
// The sink relays a processor's reply as the bytes the processor sent;
// AppendWire turns them into JSON without building the Event. It reads
// the encoding protobuf encoders write — Event's fields in order, each at
// most once, with the wire types of their declaration — and leaves
// anything else (a field repeated, so merged; fields out of order; anything
// MarshalAppend would leave to protojson) to proto.Unmarshal and
// MarshalAppend.
func AppendWire(b, wire []byte) ([]byte, error) {
	if out, ok := appendWireEvent(b, wire); ok {
		return out, nil
	}
	ev := new(eventv1.Event)
	if err := proto.Unmarshal(wire, ev); err != nil {
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

// consumeTag is protowire.ConsumeTag, failing (n < 0) on field numbers
// beyond the largest valid one, as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && !num.IsValid() {
		return 0, 0, -1
	}
	return num, typ, n
}

// entry is a map entry: key and value as encoded.
type entry struct{ key, value []byte }

func compareEntries(a, b entry) int { return bytes.Compare(a.key, b.key) }

// appendWireEvent appends the event in wire, false if it leaves it to
// proto.Unmarshal. Fields may come in any order, as Unmarshal reads them:
// the last of a repeated scalar wins, and metadata entries are gathered
// wherever they are (the echo processor appends one after the others).
// A message field (payload, time) repeated is merged by Unmarshal and
// left to it.
func appendWireEvent(b, wire []byte) ([]byte, bool) {
	var (
		id, payload, data, ts []byte
		typ                   int32
		hasPayload, hasTime   bool
		metaBuf               [8]entry
		metadata              = metaBuf[:0]
	)
	for len(wire) > 0 {
		num, wt, n := consumeTag(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if num < eventID || num > eventTime {
			// An unknown field: skipped, as protojson skips it.
			if n = protowire.ConsumeFieldValue(num, wt, wire); n < 0 {
				return b, false
			}
			wire = wire[n:]
			continue
		}
		if num == eventType {
			if wt != protowire.VarintType {
				return b, false
			}
			v, n := protowire.ConsumeVarint(wire)
			if n < 0 {
				return b, false
			}
			wire = wire[n:]
			typ = int32(v)
			continue
		}
		if wt != protowire.BytesType {
			return b, false
		}
		v, n := protowire.ConsumeBytes(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		switch num {
		case eventID:
			if !utf8.Valid(v) {
				return b, false // Unmarshal checks every occurrence
			}
			id = v
		case eventPayload:
			if hasPayload {
				return b, false
			}
			payload, hasPayload = v, true
		case eventData:
			data = v
		case eventMetadata:
			e, ok := readEntry(v)
			if !ok {
				return b, false
			}
			metadata = append(metadata, e)
		case eventTime:
			if hasTime {
				return b, false
			}
			ts, hasTime = v, true
		}
	}

	b = append(b, '{')
	sep := func() {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
	}
	ok := true
	if len(id) > 0 {
		b = append(b, `"id":`...)
		if b, ok = appendString(b, str(id)); !ok {
			return b, false
		}
	}
	if typ != 0 {
		sep()
		b = appendType(append(b, `"type":`...), eventv1.Type(typ))
	}
	if hasPayload {
		sep()
		if b, ok = appendWireValue(append(b, `"payload":`...), payload, 0); !ok {
			return b, false
		}
	}
	if len(data) > 0 {
		sep()
		b = appendBytes(append(b, `"data":`...), data)
	}
	if len(metadata) > 0 {
		sep()
		if b, ok = appendEntries(append(b, `"metadata":`...), metadata, appendWireString, 0); !ok {
			return b, false
		}
	}
	if hasTime {
		sep()
		if b, ok = appendWireTimestamp(append(b, `"time":`...), ts); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// readEntry reads a map entry: its key and value, each at most once, both
// length-delimited. A missing one is empty.
func readEntry(b []byte) (entry, bool) {
	var e entry
	var seen [entryValue + 1]bool
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return e, false
		}
		b = b[n:]
		if num != entryKey && num != entryValue {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return e, false
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType || seen[num] {
			return e, false
		}
		seen[num] = true
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return e, false
		}
		b = b[n:]
		if num == entryKey {
			e.key = v
		} else {
			e.value = v
		}
		// A Struct entry's missing value is a Value without a kind, which
		// protojson rejects; appendWireValue finds it empty and says so.
	}
	return e, true
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
		b = append(b, ':')
		if b, ok = value(b, e.value, depth); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendWireString appends a map's string value.
func appendWireString(b, v []byte, _ int) ([]byte, bool) { return appendString(b, str(v)) }

// appendWireValue appends an encoded google.protobuf.Value: one of its kinds,
// set once.
func appendWireValue(b, wire []byte, depth int) ([]byte, bool) {
	if depth > maxDepth {
		return b, false
	}
	var (
		kind protowire.Number
		typ  protowire.Type
		val  []byte // length-delimited kinds
		num  uint64 // varint and fixed64 kinds
	)
	for len(wire) > 0 {
		f, t, n := consumeTag(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if f < valueNull || f > valueList {
			if n = protowire.ConsumeFieldValue(f, t, wire); n < 0 {
				return b, false
			}
			wire = wire[n:]
			continue
		}
		if kind != 0 {
			return b, false // a second kind, or the same twice: merged
		}
		kind, typ = f, t
		switch t {
		case protowire.VarintType:
			num, n = protowire.ConsumeVarint(wire)
		case protowire.Fixed64Type:
			num, n = protowire.ConsumeFixed64(wire)
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(wire)
		default:
			return b, false
		}
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
	}
	switch {
	case kind == valueNull && typ == protowire.VarintType:
		return append(b, "null"...), true
	case kind == valueNumber && typ == protowire.Fixed64Type:
		return appendNumber(b, math.Float64frombits(num))
	case kind == valueString && typ == protowire.BytesType:
		return appendString(b, str(val))
	case kind == valueBool && typ == protowire.VarintType:
		if num != 0 {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case kind == valueStruct && typ == protowire.BytesType:
		return appendWireStruct(b, val, depth+1)
	case kind == valueList && typ == protowire.BytesType:
		return appendWireList(b, val, depth+1)
	}
	return b, false // no kind (protojson's error), or a kind of the wrong wire type
}

// appendWireStruct appends an encoded google.protobuf.Struct.
func appendWireStruct(b, wire []byte, depth int) ([]byte, bool) {
	var buf [16]entry
	fields := buf[:0]
	for len(wire) > 0 {
		f, t, n := consumeTag(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if f != structFields {
			if n = protowire.ConsumeFieldValue(f, t, wire); n < 0 {
				return b, false
			}
			wire = wire[n:]
			continue
		}
		if t != protowire.BytesType {
			return b, false
		}
		v, n := protowire.ConsumeBytes(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		e, ok := readEntry(v)
		if !ok {
			return b, false
		}
		fields = append(fields, e)
	}
	return appendEntries(b, fields, appendWireValue, depth)
}

// appendWireList appends an encoded google.protobuf.ListValue.
func appendWireList(b, wire []byte, depth int) ([]byte, bool) {
	b = append(b, '[')
	first := true
	for len(wire) > 0 {
		f, t, n := consumeTag(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if f != listValues {
			if n = protowire.ConsumeFieldValue(f, t, wire); n < 0 {
				return b, false
			}
			wire = wire[n:]
			continue
		}
		if t != protowire.BytesType {
			return b, false
		}
		v, n := protowire.ConsumeBytes(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if !first {
			b = append(b, ',')
		}
		first = false
		var ok bool
		if b, ok = appendWireValue(b, v, depth); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// appendWireTimestamp appends the time field of an event: an encoded
// google.protobuf.Timestamp, each of its fields at most once.
func appendWireTimestamp(b, wire []byte) ([]byte, bool) {
	var (
		secs, nanos int64
		seen        [timestampNanos + 1]bool
	)
	for len(wire) > 0 {
		f, t, n := consumeTag(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if f != timestampSeconds && f != timestampNanos {
			if n = protowire.ConsumeFieldValue(f, t, wire); n < 0 {
				return b, false
			}
			wire = wire[n:]
			continue
		}
		if t != protowire.VarintType || seen[f] {
			return b, false
		}
		seen[f] = true
		v, n := protowire.ConsumeVarint(wire)
		if n < 0 {
			return b, false
		}
		wire = wire[n:]
		if f == timestampSeconds {
			secs = int64(v)
		} else {
			nanos = int64(int32(v))
		}
	}
	return appendTime(b, secs, nanos)
}
