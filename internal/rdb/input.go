package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// input reads an RDB stream through its own buffer, counting the offset
// for error messages, checksumming every consumed byte, and recording the
// bytes of the value being read (the raw payload RESTORE takes).
type input struct {
	rd   io.Reader
	buf  []byte
	r, w int
	base int64 // stream offset of buf[0]
	err  error

	crc    uint64
	crcPos int // buf[crcPos:r] is consumed but not yet checksummed

	recording bool
	overflow  bool // the recording passed recLimit and was dropped
	recLimit  int
	rec       []byte // recorded bytes already moved out of buf
	recMark   int    // buf[recMark:r] is recorded but not yet in rec

	// In spill mode a recording that passes its limit is not dropped:
	// reading stops with errSpill, so that the value can be read again
	// from its start (replay) with its elements decoded.
	spill    bool
	recStart int64  // stream offset where the recording began
	recCRC   uint64 // checksum of every byte before it

	// What str returns for strings that are not in buf: an integer's
	// text, a decompressed LZF string. Reused, so that most strings cost
	// no allocation.
	num [20]byte
	lzf []byte
}

func newInput(rd io.Reader) *input {
	return &input{rd: rd, buf: make([]byte, 256<<10)}
}

// sliceInput reads b in place: no buffer of its own (a full sync checks
// every key with one), and b is never written, since fill stops at the
// preset io.EOF before it would move or read anything.
func sliceInput(b []byte) *input {
	return &input{buf: b, w: len(b), err: io.EOF}
}

// offset is the stream offset of the next byte to be read.
func (in *input) offset() int64 { return in.base + int64(in.r) }

// checksum returns the CRC-64 of every byte consumed so far.
func (in *input) checksum() uint64 {
	in.crc = CRC64(in.crc, in.buf[in.crcPos:in.r])
	in.crcPos = in.r
	return in.crc
}

// fill makes at least n bytes available (n no more than the buffer size).
func (in *input) fill(n int) error {
	for in.w-in.r < n {
		if in.err != nil {
			if in.err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return in.err
		}
		if in.r > 0 {
			in.checksum()
			if in.recording && !in.keep() && in.spill {
				return errSpill
			}
			in.base += int64(in.r)
			in.w = copy(in.buf, in.buf[in.r:in.w])
			in.r, in.crcPos = 0, 0
			in.recMark = 0
		}
		m, err := in.rd.Read(in.buf[in.w:])
		in.w += m
		in.err = err
	}
	return nil
}

// startRecording begins capturing consumed bytes, up to limit of them,
// after typ (a value's type byte, read before: the payload starts with
// it). With spill, passing the limit stops reading with errSpill instead of
// dropping the recording (see replay).
func (in *input) startRecording(limit int, spill bool, typ byte) {
	in.recording, in.overflow, in.recLimit, in.spill = true, false, limit, spill
	in.rec = append(in.rec[:0], typ)
	in.recMark = in.r
	if spill {
		in.recStart, in.recCRC = in.offset(), in.checksum()
	}
}

// keep moves the recorded bytes out of the buffer, or, once they pass
// the limit, drops the recording (reporting false) — in spill mode it
// keeps them for replay.
func (in *input) keep() bool {
	if len(in.rec)+(in.r-in.recMark) > in.recLimit {
		if in.spill {
			return false
		}
		in.recording, in.overflow = false, true
		in.rec = in.rec[:0]
		return false
	}
	in.rec = append(in.rec, in.buf[in.recMark:in.r]...)
	in.recMark = in.r
	return true
}

// errSpill stops a spill-mode recording that passed its limit.
var errSpill = errors.New("rdb: value over the recording limit")

// replay rewinds the input to where the spilled recording began: the
// bytes read since (the recording and the buffer) are read again, then
// the rest of the stream. Offsets and the checksum come out as if the
// value had been read once.
func (in *input) replay() {
	again := make([]byte, 0, len(in.rec)+in.w-in.recMark)
	// The recording's first byte is the value's type, read before it began.
	again = append(append(again, in.rec[1:]...), in.buf[in.recMark:in.w]...)
	in.rd = &replayReader{again: again, rd: in.rd, err: in.err}
	in.r, in.w, in.crcPos, in.recMark = 0, 0, 0, 0
	in.base, in.crc, in.err = in.recStart, in.recCRC, nil
	in.recording, in.spill, in.overflow = false, false, false
	in.rec = in.rec[:0]
}

// replayReader reads again bytes already taken from a stream, then the
// stream (or the error it had already returned).
type replayReader struct {
	again []byte
	rd    io.Reader
	err   error
}

func (r *replayReader) Read(p []byte) (int, error) {
	if len(r.again) > 0 {
		n := copy(p, r.again)
		if r.again = r.again[n:]; len(r.again) == 0 {
			r.again = nil // the copy is not kept alive by the rest of the file
		}
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.rd.Read(p)
}

// stopRecording ends the capture and returns the bytes consumed since
// startRecording, or ok=false when they were more than the limit. The
// slice is reused by the next recording.
func (in *input) stopRecording() (rec []byte, ok bool) {
	if in.recording && !in.keep() && in.spill {
		return nil, false // still there for replay
	}
	in.recording, in.spill = false, false
	if in.overflow {
		return nil, false
	}
	return in.rec, true
}

func (in *input) readByte() (byte, error) {
	if in.r == in.w {
		if err := in.fill(1); err != nil {
			return 0, err
		}
	}
	b := in.buf[in.r]
	in.r++
	return b, nil
}

// next consumes the next n bytes (n ≤ buffer size) and returns them; the
// slice points into the buffer, valid until the next read.
func (in *input) next(n int) ([]byte, error) {
	if in.w-in.r < n {
		if err := in.fill(n); err != nil {
			return nil, err
		}
	}
	b := in.buf[in.r : in.r+n]
	in.r += n
	return b, nil
}

// skip consumes n bytes, however many, without copying them anywhere
// (they are still checksummed and recorded).
func (in *input) skip(n uint64) error {
	for {
		take := min(uint64(in.w-in.r), n)
		in.r += int(take)
		if n -= take; n == 0 {
			return nil
		}
		if err := in.fill(1); err != nil {
			return err
		}
	}
}

func (in *input) uint32BE() (uint32, error) {
	b, err := in.next(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (in *input) uint32LE() (uint32, error) {
	b, err := in.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (in *input) uint64LE() (uint64, error) {
	b, err := in.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// The two top bits of a length's first byte say how it is encoded.
const (
	len6bit  = 0
	len14bit = 1
	len32or  = 2 // 0x80: 32-bit, 0x81: 64-bit big-endian length
	lenEnc   = 3 // a special string encoding follows in the low 6 bits
)

// String encodings (the low 6 bits after lenEnc).
const (
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// length reads a length, or reports encoded=true with the encoding kind
// of a specially encoded string.
func (in *input) length() (n uint64, encoded bool, err error) {
	b, err := in.readByte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case len6bit:
		return uint64(b & 0x3f), false, nil
	case len14bit:
		b2, err := in.readByte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3f)<<8 | uint64(b2), false, nil
	case lenEnc:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		v, err := in.uint32BE()
		return uint64(v), false, err
	case 0x81:
		p, err := in.next(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, fmt.Errorf("bad length encoding byte %#x", b)
}

// plainLength reads a length that must not be a special encoding.
func (in *input) plainLength() (uint64, error) {
	n, enc, err := in.length()
	if err == nil && enc {
		err = errors.New("encoded string where a length was expected")
	}
	return n, err
}

// maxString bounds one string's announced length: a corrupt length must
// fail clearly instead of allocating without limit. Redis's own strings
// stop at 512 MiB by default (proto-max-bulk-len can raise it).
const maxString = 4 << 30

// str reads a string in any encoding: raw, an integer, or LZF-compressed.
// The result may point into the buffer or into the input's scratch
// space: valid until the next read.
func (in *input) str() ([]byte, error) { return in.readStr(true) }

// skipStr consumes a string without decoding it: no copy, no LZF
// decompression (the value's bytes are still checksummed and recorded).
func (in *input) skipStr() error {
	_, err := in.readStr(false)
	return err
}

// readStr is str when keep is true, skipStr (returning nil) otherwise.
func (in *input) readStr(keep bool) ([]byte, error) {
	n, enc, err := in.length()
	if err != nil {
		return nil, err
	}
	if !enc {
		if n > maxString {
			return nil, fmt.Errorf("string length %d is past any real string", n)
		}
		switch {
		case !keep:
			return nil, in.skip(n)
		case n <= uint64(len(in.buf)):
			return in.next(int(n))
		}
		return in.long(n)
	}
	var v int64
	switch n {
	case encInt8:
		b, err := in.readByte()
		if err != nil {
			return nil, err
		}
		v = int64(int8(b))
	case encInt16:
		b, err := in.next(2)
		if err != nil {
			return nil, err
		}
		v = int64(int16(binary.LittleEndian.Uint16(b)))
	case encInt32:
		u, err := in.uint32LE()
		if err != nil {
			return nil, err
		}
		v = int64(int32(u))
	case encLZF:
		return in.lzfStr(keep)
	default:
		return nil, fmt.Errorf("unknown string encoding %d", n)
	}
	if !keep {
		return nil, nil
	}
	return strconv.AppendInt(in.num[:0], v, 10), nil
}

// lzfHeader reads an LZF string's compressed and uncompressed lengths,
// after its encoding byte; clen may be at most limit.
func (in *input) lzfHeader(limit uint64) (clen, ulen uint64, err error) {
	if clen, err = in.plainLength(); err != nil {
		return 0, 0, err
	}
	if ulen, err = in.plainLength(); err != nil {
		return 0, 0, err
	}
	// LZF expands at most about 88 times (264 bytes from a 3-byte
	// reference): anything more is a corrupt length.
	if clen > limit || ulen == 0 || ulen > 100*clen {
		return 0, 0, fmt.Errorf("LZF string of %d bytes compressed to %d is not plausible", ulen, clen)
	}
	return clen, ulen, nil
}

// lzfStr reads an LZF-compressed string after its encoding byte.
func (in *input) lzfStr(keep bool) ([]byte, error) {
	clen, ulen, err := in.lzfHeader(maxString)
	if err != nil {
		return nil, err
	}
	if !keep {
		return nil, in.skip(clen)
	}
	var c []byte
	if clen <= uint64(len(in.buf)) {
		c, err = in.next(int(clen))
	} else {
		c, err = in.long(clen)
	}
	if err != nil {
		return nil, err
	}
	// Small strings share one output buffer; a big one gets its own, so
	// that the decoder does not keep its size for the rest of the file.
	var out []byte
	switch {
	case ulen > uint64(len(in.buf)):
		out = make([]byte, ulen)
	case uint64(cap(in.lzf)) < ulen:
		in.lzf = make([]byte, ulen)
		out = in.lzf
	default:
		out = in.lzf[:ulen]
	}
	if err := lzfDecompress(c, out); err != nil {
		return nil, err
	}
	return out, nil
}

// long reads a string longer than the buffer. It grows as bytes arrive,
// so a corrupt length costs what the stream really holds, not what the
// length claims.
func (in *input) long(n uint64) ([]byte, error) {
	// Start from what is buffered: a corrupt length must not cost an
	// allocation of its own size per string; append grows as data comes.
	p := make([]byte, 0, min(n, uint64(in.w-in.r)+4096))
	for uint64(len(p)) < n {
		if in.r == in.w {
			if err := in.fill(1); err != nil {
				return nil, err
			}
		}
		take := min(uint64(in.w-in.r), n-uint64(len(p)))
		p = append(p, in.buf[in.r:in.r+int(take)]...)
		in.r += int(take)
	}
	return p, nil
}

// float64LE reads a binary double (zset 2 scores, module doubles).
func (in *input) float64LE() (float64, error) {
	u, err := in.uint64LE()
	return math.Float64frombits(u), err
}
