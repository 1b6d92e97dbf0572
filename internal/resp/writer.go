package resp

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// Writer writes RESP through its own buffer. Write methods record the first
// error and do nothing after it; Flush and Err return that error. Nothing is
// sent until Flush, or until the buffer fills.
type Writer struct {
	wr  io.Writer
	buf []byte // len is the data waiting to be sent; cap never changes
	err error
	n   int64 // bytes handed to wr
}

// NewWriter returns a Writer with a buffer of DefaultBufferSize.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultBufferSize) }

// NewWriterSize returns a Writer with a buffer of at least size bytes.
func NewWriterSize(w io.Writer, size int) *Writer {
	if size < 64 {
		size = 64
	}
	return &Writer{wr: w, buf: make([]byte, 0, size)}
}

// Reset discards buffered data and any error and writes to w from now on.
func (w *Writer) Reset(wr io.Writer) { w.wr, w.buf, w.err, w.n = wr, w.buf[:0], nil, 0 }

// Buffered returns the number of bytes waiting in the buffer.
func (w *Writer) Buffered() int { return len(w.buf) }

// Written returns the number of bytes sent to the underlying writer so far.
func (w *Writer) Written() int64 { return w.n }

// Err returns the first error met, if any.
func (w *Writer) Err() error { return w.err }

// Flush sends the buffered bytes.
func (w *Writer) Flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	n, err := w.wr.Write(w.buf)
	w.n += int64(n)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	w.err = err
	w.buf = w.buf[:0]
	return err
}

// room makes sure n more bytes fit in the buffer (n must not exceed its size).
func (w *Writer) room(n int) bool {
	if cap(w.buf)-len(w.buf) < n {
		w.Flush()
	}
	return w.err == nil
}

// header writes a type byte, a number and CRLF.
func (w *Writer) header(k Kind, n int64) {
	if !w.room(24) {
		return
	}
	w.buf = append(w.buf, byte(k))
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, '\r', '\n')
}

// line writes a type byte, text and CRLF; text longer than the buffer is streamed.
func (w *Writer) line(k Kind, s string) {
	if !w.room(1) {
		return
	}
	w.buf = append(w.buf, byte(k))
	w.bodyString(s)
}

// body writes b and CRLF.
func (w *Writer) body(b []byte) {
	w.WriteRaw(b)
	if w.room(2) {
		w.buf = append(w.buf, '\r', '\n')
	}
}

// bodyString is body for a string, copied through the buffer in pieces so
// that no []byte conversion is allocated.
func (w *Writer) bodyString(s string) {
	for w.err == nil {
		free := cap(w.buf) - len(w.buf)
		if len(s) <= free {
			w.buf = append(w.buf, s...)
			break
		}
		w.buf = append(w.buf, s[:free]...)
		s = s[free:]
		w.Flush()
	}
	if w.room(2) {
		w.buf = append(w.buf, '\r', '\n')
	}
}

// WriteArrayHeader starts an array of n elements; the elements follow.
func (w *Writer) WriteArrayHeader(n int) { w.header(Array, int64(n)) }

// WriteBulk writes a bulk string.
func (w *Writer) WriteBulk(b []byte) {
	w.header(BulkString, int64(len(b)))
	w.body(b)
}

// WriteBulkString writes a bulk string from a string.
func (w *Writer) WriteBulkString(s string) {
	w.header(BulkString, int64(len(s)))
	w.bodyString(s)
}

// WriteBulkInt writes an integer as a bulk string, as commands carry numbers.
func (w *Writer) WriteBulkInt(i int64) {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], i, 10)
	if !w.room(len(d) + 8) {
		return
	}
	w.buf = append(w.buf, byte(BulkString))
	w.buf = strconv.AppendInt(w.buf, int64(len(d)), 10)
	w.buf = append(w.buf, '\r', '\n')
	w.buf = append(w.buf, d...)
	w.buf = append(w.buf, '\r', '\n')
}

// WriteCommand writes a command as an array of bulk strings.
func (w *Writer) WriteCommand(args ...[]byte) {
	w.WriteArrayHeader(len(args))
	for _, a := range args {
		w.WriteBulk(a)
	}
}

// WriteCommandStrings writes a command given as strings.
func (w *Writer) WriteCommandStrings(args ...string) {
	w.WriteArrayHeader(len(args))
	for _, a := range args {
		w.WriteBulkString(a)
	}
}

// WriteSimpleString writes a simple string such as "OK". It must not contain CR or LF.
func (w *Writer) WriteSimpleString(s string) { w.line(SimpleString, s) }

// WriteError writes an error reply such as "ERR unknown command". It must not contain CR or LF.
func (w *Writer) WriteError(msg string) { w.line(Error, msg) }

// WriteInt writes an integer reply.
func (w *Writer) WriteInt(i int64) { w.header(Integer, i) }

// WriteNullBulk writes RESP2's null bulk string ($-1), the nil of RESP2 replies.
func (w *Writer) WriteNullBulk() { w.header(BulkString, -1) }

// WriteRaw writes bytes as they are: for protocol peers in tests and for the
// unframed parts of replication (an RDB payload).
func (w *Writer) WriteRaw(b []byte) {
	if w.err != nil {
		return
	}
	if len(b) > cap(w.buf)-len(w.buf) && len(b) >= cap(w.buf)/2 {
		// Too big to be worth a copy: send what is buffered, then b itself.
		if w.Flush() != nil {
			return
		}
		n, err := w.wr.Write(b)
		w.n += int64(n)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		w.err = err
		return
	}
	if w.room(len(b)) {
		w.buf = append(w.buf, b...)
	}
}

// WriteValue writes any value, with its attribute first when it has one.
func (w *Writer) WriteValue(v Value) {
	if len(v.Attrs) > 0 {
		w.header(Attribute, int64(len(v.Attrs)/2))
		for _, a := range v.Attrs {
			w.WriteValue(a)
		}
	}
	switch v.Kind {
	case SimpleString, Error:
		w.line(v.Kind, string(v.Str))
	case Integer:
		w.header(Integer, v.Int)
	case BigNumber:
		w.line(BigNumber, string(v.Str))
	case Double:
		if len(v.Str) > 0 {
			w.line(Double, string(v.Str))
		} else {
			w.line(Double, formatDouble(v.Float))
		}
	case Boolean:
		if v.Int != 0 {
			w.line(Boolean, "t")
		} else {
			w.line(Boolean, "f")
		}
	case Null:
		w.line(Null, "")
	case BulkString, BulkError:
		if v.IsNull {
			w.header(v.Kind, -1)
			return
		}
		w.header(v.Kind, int64(len(v.Str)))
		w.body(v.Str)
	case VerbatimString:
		if len(v.Format) != 3 {
			w.fail(fmt.Errorf("resp: verbatim string format %q is not three bytes", v.Format))
			return
		}
		w.header(VerbatimString, int64(len(v.Format)+1+len(v.Str)))
		if w.room(4) {
			w.buf = append(w.buf, v.Format...)
			w.buf = append(w.buf, ':')
		}
		w.body(v.Str)
	case Array, Set, Push, Map, Attribute:
		if v.IsNull {
			w.header(v.Kind, -1)
			return
		}
		n := len(v.Elems)
		if v.Kind == Map || v.Kind == Attribute {
			n /= 2
		}
		w.header(v.Kind, int64(n))
		for _, e := range v.Elems {
			w.WriteValue(e)
		}
	default:
		// Writing nothing would leave an enclosing array a value short.
		w.fail(fmt.Errorf("resp: cannot write a value of %s", v.Kind))
	}
}

// fail records err as the writer's error unless one is already recorded.
func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// formatDouble writes a float the way RESP3 spells it.
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
