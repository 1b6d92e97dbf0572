package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// DefaultBufferSize is the buffer size of NewReader and NewWriter.
const DefaultBufferSize = 64 << 10

// DefaultMaxBulkLen is the largest bulk string a Reader accepts unless told
// otherwise: Redis's own default proto-max-bulk-len.
const DefaultMaxBulkLen = 512 << 20

const (
	// maxDepth bounds the nesting of aggregates; Redis nests a handful of levels.
	maxDepth = 128
	// maxLineLen bounds a header or simple-string line.
	maxLineLen = 1 << 20
	// maxAggregateLen bounds an aggregate's announced element count, so that
	// a corrupt header fails clearly instead of looping for hours.
	maxAggregateLen = 1 << 32
	// arenaKeep is the largest argument arena kept between commands; a
	// bigger one, grown by one huge command, is dropped so memory goes back.
	arenaKeep = 1 << 20
)

// ErrProtocol is matched (errors.Is) by every error about malformed input.
var ErrProtocol = errors.New("resp: protocol error")

// ProtocolError describes malformed input and where it was found.
type ProtocolError struct {
	Offset int64 // bytes consumed before the offending value
	Msg    string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("resp: protocol error at byte %d: %s", e.Offset, e.Msg)
}

// Is makes errors.Is(err, ErrProtocol) true.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// Reader reads RESP values from a stream through its own buffer.
//
// Slices returned by ReadCommand and ReadLine are valid only until the next
// call on the Reader; values returned by ReadValue own their memory.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int
	err  error // sticky error from rd, returned once the buffer is drained
	base int64 // bytes taken from rd so far

	// MaxBulkLen is the largest bulk string accepted (DefaultMaxBulkLen).
	MaxBulkLen int64

	args  [][]byte
	arena []byte
	slab  []byte // carved into the small strings of ReadValue's values
}

// NewReader returns a Reader with a buffer of DefaultBufferSize.
func NewReader(rd io.Reader) *Reader { return NewReaderSize(rd, DefaultBufferSize) }

// NewReaderSize returns a Reader with a buffer of at least size bytes.
func NewReaderSize(rd io.Reader, size int) *Reader {
	if size < 64 {
		size = 64
	}
	return &Reader{rd: rd, buf: make([]byte, size), MaxBulkLen: DefaultMaxBulkLen}
}

// Reset discards buffered data and reads from rd from now on; the offset restarts at 0.
func (r *Reader) Reset(rd io.Reader) {
	r.rd, r.r, r.w, r.err, r.base = rd, 0, 0, nil, 0
}

// Offset returns the number of bytes consumed so far: read from the stream
// and handed to the caller. The replication receiver counts offsets with it.
func (r *Reader) Offset() int64 { return r.base - int64(r.w-r.r) }

// Buffered returns the number of bytes read from the stream but not yet consumed.
func (r *Reader) Buffered() int { return r.w - r.r }

func (r *Reader) protoErr(format string, args ...any) error {
	return &ProtocolError{Offset: r.Offset(), Msg: fmt.Sprintf(format, args...)}
}

// fill reads more data into the buffer, moving unread bytes to its start.
func (r *Reader) fill() error {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.err != nil {
		return r.err
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		r.w += n
		r.base += int64(n)
		if err != nil {
			r.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	r.err = io.ErrNoProgress
	return r.err
}

// line returns the next line without its CRLF. The slice points into the
// buffer. At a clean end of stream it returns io.EOF; inside a line,
// io.ErrUnexpectedEOF.
func (r *Reader) line(strict bool) ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(r.buf[r.r+scanned:r.w], '\n'); i >= 0 {
			end := r.r + scanned + i
			line := r.buf[r.r:end]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			} else if strict {
				return nil, r.protoErr("line ends in LF without CR")
			}
			r.r = end + 1
			return line, nil
		}
		scanned = r.w - r.r
		if scanned >= maxLineLen {
			return nil, r.protoErr("line longer than %d bytes", maxLineLen)
		}
		if r.r == 0 && r.w == len(r.buf) {
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.w > r.r {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// ReadLine returns the next line with its line ending (LF or CRLF) removed.
// It is for the raw parts of the replication handshake, such as the newlines
// a source sends to keep the link alive while it prepares an RDB. The slice
// is valid until the next call on the Reader.
func (r *Reader) ReadLine() ([]byte, error) { return r.line(false) }

// Read reads raw bytes, serving buffered data first and reading large
// requests straight from the stream. It lets the RDB of a full sync be
// consumed without copying it through the buffer.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) >= len(r.buf) {
			n, err := r.rd.Read(p)
			r.base += int64(n)
			if err != nil {
				r.err = err
			}
			return n, err
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// readFull fills p from the buffer and then the stream.
func (r *Reader) readFull(p []byte) error {
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	for n < len(p) {
		if len(p)-n >= len(r.buf) {
			m, err := io.ReadFull(r.rd, p[n:])
			r.base += int64(m)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				r.err = err
				return err
			}
			return nil
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		m := copy(p[n:], r.buf[r.r:r.w])
		r.r += m
		n += m
	}
	return nil
}

// crlf consumes the CRLF that ends a bulk string.
func (r *Reader) crlf() error {
	for r.w-r.r < 2 {
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if r.buf[r.r] != '\r' || r.buf[r.r+1] != '\n' {
		return r.protoErr("bulk string not followed by CRLF")
	}
	r.r += 2
	return nil
}

func (r *Reader) peekByte() (byte, error) {
	for r.r == r.w {
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	return r.buf[r.r], nil
}

// parseInt parses a decimal integer strictly: an optional minus sign and digits.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// length parses the length of a bulk string or aggregate header: -1 for
// null when allowed, -2 for "?" (streamed) when allowed.
func (r *Reader) length(kind Kind, b []byte, nullOK, streamOK bool) (int64, error) {
	if len(b) == 1 && b[0] == '?' && streamOK {
		return -2, nil
	}
	n, ok := parseInt(b)
	switch {
	case !ok:
		return 0, r.protoErr("bad %s length %q", kind, clip(b))
	case n == -1 && nullOK:
		return -1, nil
	case n < 0:
		return 0, r.protoErr("negative %s length %d", kind, n)
	case (kind == BulkString || kind == BulkError || kind == VerbatimString) && n > r.MaxBulkLen:
		return 0, r.protoErr("%s of %d bytes exceeds the limit of %d", kind, n, r.MaxBulkLen)
	case n > maxAggregateLen:
		return 0, r.protoErr("%s of %d elements exceeds the limit of %d", kind, n, int64(maxAggregateLen))
	}
	return n, nil
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// ReadValue reads one complete value of any kind. At a clean end of stream
// (between values) it returns io.EOF. A bulk string's memory is allocated
// as its header announces, up to MaxBulkLen: that limit is what bounds the
// memory a corrupt stream can claim.
func (r *Reader) ReadValue() (Value, error) { return r.readValue(0) }

func (r *Reader) readValue(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, r.protoErr("aggregates nested deeper than %d", maxDepth)
	}
	line, err := r.line(true)
	if err != nil {
		if err == io.EOF && depth > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, r.protoErr("empty line where a value was expected")
	}
	v := Value{Kind: Kind(line[0])}
	rest := line[1:]
	switch v.Kind {
	case SimpleString, Error:
		v.Str = r.alloc(len(rest))
		copy(v.Str, rest)
	case Integer:
		n, ok := parseInt(rest)
		if !ok {
			return v, r.protoErr("bad integer %q", clip(rest))
		}
		v.Int = n
	case BigNumber:
		if !isBigNumber(rest) {
			return v, r.protoErr("bad big number %q", clip(rest))
		}
		v.Str = bytes.Clone(rest)
	case Double:
		f, ok := parseDouble(rest)
		if !ok {
			return v, r.protoErr("bad double %q", clip(rest))
		}
		v.Float, v.Str = f, bytes.Clone(rest)
	case Boolean:
		switch string(rest) {
		case "t":
			v.Int = 1
		case "f":
		default:
			return v, r.protoErr("bad boolean %q", clip(rest))
		}
	case Null:
		if len(rest) != 0 {
			return v, r.protoErr("bad null %q", clip(rest))
		}
		v.IsNull = true
	case BulkString, BulkError, VerbatimString:
		n, err := r.length(v.Kind, rest, v.Kind == BulkString, v.Kind == BulkString)
		if err != nil {
			return v, err
		}
		switch {
		case n == -1:
			v.IsNull = true
		case n == -2:
			if v.Str, err = r.streamedString(); err != nil {
				return v, err
			}
		default:
			v.Str = r.alloc(int(n))
			if err := r.readFull(v.Str); err != nil {
				return v, err
			}
			if err := r.crlf(); err != nil {
				return v, err
			}
		}
		if v.Kind == VerbatimString {
			if len(v.Str) < 4 || v.Str[3] != ':' {
				return v, r.protoErr("verbatim string without a format prefix")
			}
			v.Format, v.Str = string(v.Str[:3]), v.Str[4:]
		}
	case Array, Set, Push, Map, Attribute:
		n, err := r.length(v.Kind, rest, v.Kind == Array, true)
		if err != nil {
			return v, err
		}
		per := int64(1)
		if v.Kind == Map || v.Kind == Attribute {
			per = 2
		}
		switch {
		case n == -1:
			v.IsNull = true
		case n == -2:
			if v.Elems, err = r.streamedElems(depth, per); err != nil {
				return v, err
			}
		default:
			v.Elems = make([]Value, 0, min(n*per, 1024))
			for i := int64(0); i < n*per; i++ {
				e, err := r.readValue(depth + 1)
				if err != nil {
					return v, err
				}
				v.Elems = append(v.Elems, e)
			}
		}
		if v.Kind == Attribute {
			// An attribute describes the value that follows it.
			next, err := r.readValue(depth + 1)
			if err != nil {
				return v, err
			}
			next.Attrs = append(v.Elems, next.Attrs...)
			return next, nil
		}
	default:
		return v, r.protoErr("unknown type byte %q", line[0])
	}
	return v, nil
}

// alloc returns n bytes for a value's string. Small strings are carved from
// a shared slab, so a reply of many short strings costs a few allocations
// instead of one per string; the values own the slab together.
func (r *Reader) alloc(n int) []byte {
	const small, slabSize = 256, 8 << 10
	if n > small {
		return make([]byte, n)
	}
	if len(r.slab) < n {
		r.slab = make([]byte, slabSize)
	}
	b := r.slab[:n:n]
	r.slab = r.slab[n:]
	return b
}

// streamedString reads the chunks of a RESP3 streamed string ($?).
func (r *Reader) streamedString() ([]byte, error) {
	out := []byte{}
	for {
		line, err := r.line(true)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 || line[0] != ';' {
			return nil, r.protoErr("streamed string chunk without ';'")
		}
		n, err := r.length(BulkString, line[1:], false, false)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		if int64(len(out))+n > r.MaxBulkLen {
			return nil, r.protoErr("streamed string exceeds the limit of %d bytes", r.MaxBulkLen)
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if err := r.readFull(out[start:]); err != nil {
			return nil, err
		}
		if err := r.crlf(); err != nil {
			return nil, err
		}
	}
}

// streamedElems reads the elements of a RESP3 streamed aggregate (*?, %?, ...)
// up to its "." terminator.
func (r *Reader) streamedElems(depth int, per int64) ([]Value, error) {
	elems := []Value{}
	for {
		c, err := r.peekByte()
		if err != nil {
			return nil, err
		}
		if c == '.' {
			line, err := r.line(true)
			if err != nil {
				return nil, err
			}
			if len(line) != 1 {
				return nil, r.protoErr("bad end of streamed aggregate %q", clip(line))
			}
			if int64(len(elems))%per != 0 {
				return nil, r.protoErr("streamed map ends after a key without its value")
			}
			return elems, nil
		}
		if int64(len(elems)) >= maxAggregateLen {
			return nil, r.protoErr("streamed aggregate longer than %d elements", int64(maxAggregateLen))
		}
		e, err := r.readValue(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, e)
	}
}

func isBigNumber(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseDouble(b []byte) (float64, bool) {
	switch string(b) {
	case "inf", "+inf":
		return math.Inf(1), true
	case "-inf":
		return math.Inf(-1), true
	case "nan", "-nan":
		return math.NaN(), true
	}
	// ParseFloat also takes "Inf", "0x1p3" and "1_0"; RESP allows only decimal.
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// ReadCommand reads one command: an array of bulk strings, as a client sends
// and as a source streams its writes to a replica. The returned arguments
// share an arena owned by the Reader and are valid until the next call; the
// steady state allocates nothing. An empty array yields no arguments.
func (r *Reader) ReadCommand() ([][]byte, error) {
	line, err := r.line(true)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		if len(line) > 0 && (line[0] == '-' || line[0] == '+') {
			return nil, r.protoErr("expected a command, got %q", clip(line))
		}
		return nil, r.protoErr("expected a command array, got %q", clip(line))
	}
	n, err := r.length(Array, line[1:], false, false)
	if err != nil {
		return nil, err
	}
	if cap(r.arena) > arenaKeep {
		// Drop the big arena, and the stale argument slices that would
		// keep it reachable.
		r.arena = nil
		clear(r.args[:cap(r.args)])
	}
	args, arena := r.args[:0], r.arena[:0]
	for range n {
		line, err := r.line(true)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 || line[0] != '$' {
			return nil, r.protoErr("command argument is not a bulk string: %q", clip(line))
		}
		size, err := r.length(BulkString, line[1:], false, false)
		if err != nil {
			return nil, err
		}
		if int64(cap(arena)-len(arena)) < size {
			// Arguments already taken keep the old arena alive; new ones go
			// to a bigger one, so nothing is copied twice.
			arena = make([]byte, 0, max(2*cap(arena), int(size), 4096))
		}
		start := len(arena)
		arena = arena[:start+int(size)]
		arg := arena[start:len(arena):len(arena)]
		if err := r.readFull(arg); err != nil {
			return nil, err
		}
		if err := r.crlf(); err != nil {
			return nil, err
		}
		args = append(args, arg)
	}
	r.args, r.arena = args, arena
	return args, nil
}

// ReadBulkTo reads a bulk string reply and copies its body to w as it
// arrives, never holding it whole: for values too big to keep in memory.
// It returns the body's length, or -1 for a null bulk string. An error
// reply is returned as a *RedisError.
func (r *Reader) ReadBulkTo(w io.Writer) (int64, error) {
	line, err := r.line(true)
	if err != nil {
		return 0, err
	}
	if len(line) == 0 {
		return 0, r.protoErr("empty line where a bulk string was expected")
	}
	switch Kind(line[0]) {
	case Error:
		return 0, &RedisError{Msg: string(line[1:])}
	case Null:
		return -1, nil
	case BulkString:
	default:
		return 0, r.protoErr("expected a bulk string, got %q", clip(line))
	}
	n, err := r.length(BulkString, line[1:], true, false)
	if err != nil || n == -1 {
		return n, err
	}
	for left := n; left > 0; {
		if r.r == r.w {
			if err := r.fill(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		chunk := r.buf[r.r : r.r+int(min(int64(r.w-r.r), left))]
		if _, err := w.Write(chunk); err != nil {
			return 0, err
		}
		r.r += len(chunk)
		left -= int64(len(chunk))
	}
	return n, r.crlf()
}
