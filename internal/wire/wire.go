// Package wire reads encoded protobuf messages field by field, and checks
// them, failing exactly where proto.Unmarshal would, without allocating.
//
// The sink uses it to relay events and replies as bytes without decoding
// them (event/sink, relay.go), and internal/vtcodec to keep protobuf's
// checks when it decodes with generated code that lacks them.
package wire

import (
	"errors"
	"fmt"
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
	Num    protowire.Number
	Type   protowire.Type
	Bytes  []byte // the value of a length-delimited field; aliases the input
	Varint uint64 // the value of a varint field
}

// Next reads the field at the start of b, and returns it and the rest of
// b. It fails where proto.Unmarshal would: a malformed tag or value, or a
// field number out of range.
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
		fld.Varint, n = protowire.ConsumeVarint(b)
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
// short. It allocates nothing. Fields of an unexpected wire type are
// unknown fields to protobuf and pass, as they do there. It is tested
// against proto.Unmarshal on every message of event/v1.
func Check(b []byte, md protoreflect.MessageDescriptor) error {
	return check(b, md, 0, false)
}

// CheckStrict is Check, and also fails on a known field of the wrong wire
// type, which proto.Unmarshal keeps as an unknown field; code that decodes
// without looking at wire types everywhere (vtprotobuf's map entries)
// needs that ruled out first.
func CheckStrict(b []byte, md protoreflect.MessageDescriptor) error {
	return check(b, md, 0, true)
}

// ErrWireType is CheckStrict's error for a known field of the wrong wire
// type.
var ErrWireType = errors.New("field of an unexpected wire type")

func check(b []byte, md protoreflect.MessageDescriptor, depth int, strict bool) error {
	if depth > MaxDepth {
		return ErrDepth
	}
	fields := md.Fields()
	for len(b) > 0 {
		fld, rest, err := Next(b)
		if err != nil {
			return err
		}
		b = rest
		if fld.Type != protowire.BytesType && !strict {
			continue
		}
		fd := fields.ByNumber(fld.Num)
		if fd == nil {
			continue
		}
		if want := wireType(fd.Kind()); fld.Type != want {
			if strict && (fld.Type != protowire.BytesType || !fd.IsList() || want == protowire.BytesType) {
				return fmt.Errorf("%s: %w", fd.FullName(), ErrWireType)
			}
			if fld.Type != protowire.BytesType {
				continue
			}
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(fld.Bytes) {
				return fmt.Errorf("%s: %w", fd.FullName(), ErrInvalidUTF8)
			}
		case protoreflect.MessageKind:
			if err := check(fld.Bytes, fd.Message(), depth+1, strict); err != nil {
				return err
			}
		default:
			if fd.IsList() {
				if err := checkPacked(fld.Bytes, fd.Kind()); err != nil {
					return err
				}
			}
		}
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
