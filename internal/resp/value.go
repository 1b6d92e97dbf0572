// Package resp reads and writes the Redis serialization protocol, RESP2 and RESP3.
//
// The Reader and Writer are built for throughput: both buffer their I/O, the
// Writer appends arguments to its buffer without allocating, ReadCommand
// returns arguments that share one reusable arena, and a bulk string larger
// than the buffer is moved between the connection and its destination without
// passing through the buffer.
package resp

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the type of a RESP value: the byte that starts it on the wire.
type Kind byte

// The RESP2 kinds.
const (
	SimpleString Kind = '+'
	Error        Kind = '-'
	Integer      Kind = ':'
	BulkString   Kind = '$'
	Array        Kind = '*'
)

// The kinds RESP3 adds.
const (
	Null           Kind = '_'
	Boolean        Kind = '#'
	Double         Kind = ','
	BigNumber      Kind = '('
	BulkError      Kind = '!'
	VerbatimString Kind = '='
	Map            Kind = '%'
	Attribute      Kind = '|'
	Set            Kind = '~'
	Push           Kind = '>'
)

// String names the kind for messages.
func (k Kind) String() string {
	switch k {
	case SimpleString:
		return "simple string"
	case Error:
		return "error"
	case Integer:
		return "integer"
	case BulkString:
		return "bulk string"
	case Array:
		return "array"
	case Null:
		return "null"
	case Boolean:
		return "boolean"
	case Double:
		return "double"
	case BigNumber:
		return "big number"
	case BulkError:
		return "bulk error"
	case VerbatimString:
		return "verbatim string"
	case Map:
		return "map"
	case Attribute:
		return "attribute"
	case Set:
		return "set"
	case Push:
		return "push"
	}
	return fmt.Sprintf("kind %q", byte(k))
}

// Value is one RESP value of any kind.
//
// Which fields are used depends on Kind:
//   - SimpleString, Error, BulkString, BulkError, BigNumber: Str;
//   - VerbatimString: Str and Format (the three-letter format, such as "txt");
//   - Double: Float, and Str with the text as it came on the wire (so that
//     it round-trips exactly); the Writer formats Float when Str is empty;
//   - Integer: Int; Boolean: Int is 1 for true, 0 for false;
//   - Array, Set, Push: Elems; Map and Attribute: Elems as key, value, key, value;
//   - Null: nothing. RESP2's null bulk string ($-1) and null array (*-1) keep
//     their kind with IsNull set, so that they are written back the same way.
//
// Attrs holds the RESP3 attribute that preceded the value on the wire, if any,
// as key, value pairs.
type Value struct {
	Kind   Kind
	IsNull bool
	Str    []byte
	Int    int64
	Float  float64
	Format string
	Elems  []Value
	Attrs  []Value
}

// Nil reports whether v is a null of either protocol version.
func (v Value) Nil() bool { return v.IsNull || v.Kind == Null }

// Err returns the reply as an error when it is an error or bulk error, else nil.
func (v Value) Err() error {
	if v.Kind == Error || v.Kind == BulkError {
		return &RedisError{Msg: string(v.Str)}
	}
	return nil
}

// Text returns the value as a string for the kinds that carry text or a
// number, and "" for aggregates and nulls.
func (v Value) Text() string {
	switch v.Kind {
	case Integer:
		return strconv.FormatInt(v.Int, 10)
	case Boolean:
		if v.Int != 0 {
			return "true"
		}
		return "false"
	case Double:
		if len(v.Str) > 0 {
			return string(v.Str)
		}
		return formatDouble(v.Float)
	}
	return string(v.Str)
}

// Equal reports whether two values are the same, kind for kind. Doubles are
// compared by their wire text when both have one, else by value.
func (v Value) Equal(o Value) bool {
	if v.Kind != o.Kind || v.IsNull != o.IsNull || v.Int != o.Int || v.Format != o.Format ||
		len(v.Elems) != len(o.Elems) || len(v.Attrs) != len(o.Attrs) {
		return false
	}
	if v.Kind == Double {
		if v.Text() != o.Text() {
			return false
		}
	} else if !bytes.Equal(v.Str, o.Str) {
		return false
	}
	for i := range v.Elems {
		if !v.Elems[i].Equal(o.Elems[i]) {
			return false
		}
	}
	for i := range v.Attrs {
		if !v.Attrs[i].Equal(o.Attrs[i]) {
			return false
		}
	}
	return true
}

// String renders the value for logs and test failures, in the style of redis-cli.
func (v Value) String() string {
	var b bytes.Buffer
	v.format(&b)
	return b.String()
}

func (v Value) format(b *bytes.Buffer) {
	if v.Nil() {
		b.WriteString("(nil)")
		return
	}
	switch v.Kind {
	case Error, BulkError:
		b.WriteString("(error) ")
		b.Write(v.Str)
	case Integer:
		b.WriteString("(integer) ")
		b.WriteString(v.Text())
	case Boolean, Double, BigNumber:
		b.WriteString(v.Text())
	case Array, Set, Push, Map, Attribute:
		open, close := "[", "]"
		switch v.Kind {
		case Set:
			open, close = "~{", "}"
		case Push:
			open = ">["
		case Map, Attribute:
			open, close = "{", "}"
		}
		b.WriteString(open)
		for i, e := range v.Elems {
			if i > 0 {
				if (v.Kind == Map || v.Kind == Attribute) && i%2 == 1 {
					b.WriteString(": ")
				} else {
					b.WriteString(", ")
				}
			}
			e.format(b)
		}
		b.WriteString(close)
	default:
		b.WriteString(strconv.Quote(string(v.Str)))
	}
}

// RedisError is an error reply from a server.
type RedisError struct {
	Msg string
}

func (e *RedisError) Error() string { return e.Msg }

// Code returns the first word of the error, such as "ERR", "WRONGPASS" or
// "MOVED", by which Redis classifies its errors.
func (e *RedisError) Code() string {
	if i := strings.IndexByte(e.Msg, ' '); i >= 0 {
		return e.Msg[:i]
	}
	return e.Msg
}
