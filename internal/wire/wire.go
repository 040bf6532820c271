// Package wire reads encoded protobuf messages field by field, and checks
// them, failing exactly where proto.Unmarshal would, without allocating.
//
// The sink uses it to relay events and replies as bytes (event/sink), and
// internal/vtcodec to restore the checks its generated code lacks.
package wire

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxDepth is protobuf-go's default recursion limit for decoding.
const MaxDepth = 10000

var (
	// ErrInvalidUTF8 is Check's error for a string field that is not UTF-8.
	ErrInvalidUTF8 = errors.New("string field contains invalid UTF-8")
	// ErrFieldNumber is Next's error for a field number out of range.
	ErrFieldNumber = errors.New("invalid field number")
	// ErrDepth is Check's error for nesting deeper than MaxDepth.
	ErrDepth = errors.New("exceeded maximum recursion depth")
)

// Field is one field of an encoded message.
type Field struct {
	Num   protowire.Number
	Type  protowire.Type
	Bytes []byte // the value of a length-delimited field; aliases the input
	Int   uint64 // the value of a varint, fixed32 or fixed64 field
}

// Next returns the field at the start of b and the rest of b. It fails where
// proto.Unmarshal would: a malformed tag or value, a field number too large.
func Next(b []byte) (Field, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return Field{}, nil, protowire.ParseError(n)
	}
	if num > protowire.MaxValidNumber {
		return Field{}, nil, ErrFieldNumber
	}
	b = b[n:]
	fld := Field{Num: num, Type: typ}
	switch typ {
	case protowire.BytesType:
		fld.Bytes, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		fld.Int, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		fld.Int, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(b)
		fld.Int = uint64(v)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return Field{}, nil, protowire.ParseError(n)
	}
	return fld, b[n:], nil
}

// Check reports whether proto.Unmarshal would reject b as an encoded md:
// malformed wire data, invalid UTF-8 in a string field, nesting deeper
// than protobuf's limit, or a packed repeated field whose values are cut
// short. It allocates nothing. Fields of an unexpected wire type pass, as
// unknown fields do in protobuf.
func Check(b []byte, md protoreflect.MessageDescriptor) error {
	return check(b, md, 0, false)
}

// CheckAt is Check for a message depth levels below the top of what a
// decoder reads (depth counts against MaxDepth).
func CheckAt(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	return check(b, md, depth, false)
}

// CheckVisit is CheckAt, and also calls visit, in order, with each checked
// top-level field md declares, if encoded with its (unpacked) wire type:
// what a decoder reads into the fields, a scalar's last occurrence winning.
func CheckVisit(b []byte, md protoreflect.MessageDescriptor, depth int, visit func(Field)) error {
	return planFor(md).check(b, depth, false, visit)
}

// CheckStrict is Check, and also fails on a known field of the wrong wire
// type (an unknown field to proto.Unmarshal), which decoders that ignore
// wire types in places (vtprotobuf's map entries) need ruled out.
func CheckStrict(b []byte, md protoreflect.MessageDescriptor) error {
	return check(b, md, 0, true)
}

// ErrWireType is CheckStrict's error for a known field of the wrong type.
var ErrWireType = errors.New("field of an unexpected wire type")

func check(b []byte, md protoreflect.MessageDescriptor, depth int, strict bool) error {
	return planFor(md).check(b, depth, strict, nil)
}

// A plan is what check needs of a message descriptor, by field number,
// without the descriptor's map and interface calls.
type plan struct {
	small []fieldPlan // by field number, for numbers below len(small)
	large map[protowire.Number]*fieldPlan
}

type fieldPlan struct {
	known bool
	kind  protoreflect.Kind
	wire  protowire.Type // of one value, unpacked
	list  bool
	msg   *plan // for messages (and map entries)
	// name is the field's full name in errors (a map entry's, the map's).
	name protoreflect.FullName
}

func (p *plan) field(n protowire.Number) *fieldPlan {
	if int(n) < len(p.small) {
		if f := &p.small[n]; f.known {
			return f
		}
		return nil
	}
	return p.large[n]
}

var (
	plansMu sync.Mutex
	plans   atomic.Pointer[map[protoreflect.MessageDescriptor]*plan]
)

// planFor returns md's plan, building it (and its messages') on first use.
func planFor(md protoreflect.MessageDescriptor) *plan {
	if m := plans.Load(); m != nil {
		if p := (*m)[md]; p != nil {
			return p
		}
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	old := plans.Load()
	next := make(map[protoreflect.MessageDescriptor]*plan)
	if old != nil {
		if p := (*old)[md]; p != nil {
			return p
		}
		maps.Copy(next, *old)
	}
	p := buildPlan(md, next)
	plans.Store(&next)
	return p
}

// maxSmall bounds the field numbers a plan keeps in a slice.
const maxSmall = 64

func buildPlan(md protoreflect.MessageDescriptor, built map[protoreflect.MessageDescriptor]*plan) *plan {
	if p := built[md]; p != nil {
		return p
	}
	p := new(plan)
	built[md] = p // before the fields: messages may hold themselves
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		f := fieldPlan{known: true, kind: fd.Kind(), wire: wireType(fd.Kind()), list: fd.IsList(), name: fd.FullName()}
		if parent, ok := md.Parent().(protoreflect.MessageDescriptor); ok && md.IsMapEntry() {
			for j := range parent.Fields().Len() {
				if mf := parent.Fields().Get(j); mf.Message() == md {
					f.name = mf.FullName() // the map's
				}
			}
		}
		if fd.Message() != nil {
			f.msg = buildPlan(fd.Message(), built)
		}
		if n := fd.Number(); n < maxSmall {
			if int(n) >= len(p.small) {
				p.small = append(p.small, make([]fieldPlan, int(n)+1-len(p.small))...)
			}
			p.small[n] = f
		} else {
			if p.large == nil {
				p.large = make(map[protowire.Number]*fieldPlan)
			}
			p.large[n] = &f
		}
	}
	return p
}

func (p *plan) check(b []byte, depth int, strict bool, visit func(Field)) error {
	if depth > MaxDepth {
		return ErrDepth
	}
	for len(b) > 0 {
		var fld Field
		// The usual case inline: a one-byte tag of a length-delimited
		// field whose length takes one byte.
		if len(b) >= 2 && b[0] < 0x80 && b[0]&7 == byte(protowire.BytesType) && b[0] >= 8 && b[1] < 0x80 && int(b[1]) <= len(b)-2 {
			fld = Field{Num: protowire.Number(b[0] >> 3), Type: protowire.BytesType, Bytes: b[2 : 2+int(b[1])]}
			b = b[2+int(b[1]):]
		} else if !strict && visit == nil && len(b) >= 2 && b[0] < 0x80 && b[0]&7 == byte(protowire.VarintType) && b[0] >= 8 && b[1] < 0x80 {
			b = b[2:] // a one-byte varint field: nothing to check
			continue
		} else {
			var err error
			if fld, b, err = Next(b); err != nil {
				return err
			}
			if fld.Type != protowire.BytesType && !strict && visit == nil {
				continue
			}
		}
		f := p.field(fld.Num)
		if f == nil {
			continue
		}
		if fld.Type != f.wire {
			if strict && (fld.Type != protowire.BytesType || !f.list || f.wire == protowire.BytesType) {
				return fmt.Errorf("%s: %w", f.name, ErrWireType)
			}
			if fld.Type != protowire.BytesType {
				continue
			}
		}
		switch f.kind {
		case protoreflect.StringKind:
			if !utf8.Valid(fld.Bytes) {
				return fmt.Errorf("%s: %w", f.name, ErrInvalidUTF8)
			}
		case protoreflect.MessageKind:
			if err := f.msg.check(fld.Bytes, depth+1, strict, nil); err != nil {
				return err
			}
		default:
			if f.list && fld.Type == protowire.BytesType {
				if err := checkPacked(fld.Bytes, f.kind); err != nil {
					return err
				}
			}
		}
		if visit != nil && fld.Type == f.wire {
			visit(fld)
		}
	}
	return nil
}

// checkPacked checks the values of a packed repeated scalar of kind k.
func checkPacked(b []byte, k protoreflect.Kind) error {
	var size int // of a fixed-size value; 0 for varints
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		size = 4
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		size = 8
	case protoreflect.BytesKind, protoreflect.GroupKind:
		return nil // not packable
	}
	if size > 0 {
		if len(b)%size != 0 {
			return protowire.ParseError(-1)
		}
		return nil
	}
	for len(b) > 0 {
		_, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// wireType is the wire type of a field of kind k, unpacked.
func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	default:
		return protowire.VarintType
	}
}
