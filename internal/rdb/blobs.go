package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The compact encodings Redis saves as one string: ziplist, listpack,
// intset and zipmap. Each reader walks a blob that is wholly in memory
// and checks every length against the blob's end, so a corrupt blob is
// an error, never a read out of bounds.

var errBlobEnd = errors.New("entry runs past the end of its blob")

// blobEntry is one element of a ziplist or listpack: a string, or an
// integer (isInt) whose text form is formatted only when asked for.
type blobEntry struct {
	str   []byte
	isInt bool
	ival  int64
}

// text returns the entry as Redis would reply it; integers are formatted
// into scratch.
func (e blobEntry) text(scratch []byte) []byte {
	if e.isInt {
		return strconv.AppendInt(scratch[:0], e.ival, 10)
	}
	return e.str
}

// integer returns the entry's integer value; a string entry must hold a
// decimal integer (streams keep their numbers as either).
func (e blobEntry) integer() (int64, error) {
	if e.isInt {
		return e.ival, nil
	}
	v, err := strconv.ParseInt(string(e.str), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("expected an integer, found %q", e.str)
	}
	return v, nil
}

// blob walks a ziplist or a listpack: both hold a flat sequence of
// entries that ends with 0xff. One struct for both, not an interface, so
// that walking a value allocates nothing.
type blob struct {
	b   []byte
	pos int
	zip bool
}

// done reports whether the walk reached the terminator.
func (bl *blob) done() bool { return bl.b[bl.pos] == 0xff }

// next reads the next entry into e. (Into, not returned: returned
// through this dispatch, the entry was copied twice over the stack.)
func (bl *blob) next(e *blobEntry) error {
	if bl.zip {
		return bl.nextZiplist(e)
	}
	return bl.nextListpack(e)
}

// openBlob opens a ziplist (zip) or a listpack.
func openBlob(b []byte, zip bool) (blob, error) {
	if zip {
		return newZiplist(b)
	}
	return newListpack(b)
}

// A listpack is a 4-byte total size, a 2-byte count, the entries
// (encoding, data, back-length) and an 0xff terminator.
func newListpack(b []byte) (blob, error) {
	if len(b) < 7 {
		return blob{}, fmt.Errorf("listpack of %d bytes is shorter than its header", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); int64(total) != int64(len(b)) {
		return blob{}, fmt.Errorf("listpack header says %d bytes, the string holds %d", total, len(b))
	}
	if b[len(b)-1] != 0xff {
		return blob{}, errors.New("listpack does not end with its terminator")
	}
	return blob{b: b, pos: 6}, nil
}

func (bl *blob) nextListpack(e *blobEntry) error {
	b, p := bl.b, bl.pos
	if p >= len(b)-1 {
		return errors.New("listpack ends before its last entry")
	}
	*e = blobEntry{}
	c := b[p]
	var hdr, n int // header and data sizes
	switch {
	case c&0x80 == 0: // 7-bit unsigned integer
		e.isInt, e.ival, hdr = true, int64(c&0x7f), 1
	case c&0xc0 == 0x80: // string up to 63 bytes
		hdr, n = 1, int(c&0x3f)
	case c&0xe0 == 0xc0: // 13-bit signed integer
		if p+2 > len(b) {
			return errBlobEnd
		}
		v := int64(c&0x1f)<<8 | int64(b[p+1])
		if v >= 1<<12 {
			v -= 1 << 13
		}
		e.isInt, e.ival, hdr = true, v, 2
	case c&0xf0 == 0xe0: // string up to 4095 bytes
		if p+2 > len(b) {
			return errBlobEnd
		}
		hdr, n = 2, int(c&0x0f)<<8|int(b[p+1])
	case c == 0xf0: // string with a 32-bit length
		if p+5 > len(b) {
			return errBlobEnd
		}
		hdr, n = 5, int(binary.LittleEndian.Uint32(b[p+1:]))
	case c >= 0xf1 && c <= 0xf4: // 16, 24, 32, 64-bit integers
		size := [...]int{2, 3, 4, 8}[c-0xf1]
		if p+1+size > len(b) {
			return errBlobEnd
		}
		var u uint64
		for i := size - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[p+1+i])
		}
		shift := 64 - 8*size
		e.isInt, e.ival, hdr = true, int64(u<<shift)>>shift, 1+size
	default:
		return fmt.Errorf("listpack entry with unknown encoding byte %#x", c)
	}
	l := hdr + n
	if n < 0 || p+l > len(b)-1 {
		return errBlobEnd
	}
	if !e.isInt {
		e.str = b[p+hdr : p+l]
	}
	// The back-length stores l in 7-bit groups; its size follows from l.
	back := 1
	for v := l >> 7; v > 0; v >>= 7 {
		back++
	}
	if p+l+back > len(b)-1 {
		return errBlobEnd
	}
	bl.pos = p + l + back
	return nil
}

// A ziplist is a 4-byte total size, a 4-byte tail offset, a 2-byte
// count, the entries (previous length, encoding, data) and 0xff.
func newZiplist(b []byte) (blob, error) {
	if len(b) < 11 {
		return blob{}, fmt.Errorf("ziplist of %d bytes is shorter than its header", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); int64(total) != int64(len(b)) {
		return blob{}, fmt.Errorf("ziplist header says %d bytes, the string holds %d", total, len(b))
	}
	if b[len(b)-1] != 0xff {
		return blob{}, errors.New("ziplist does not end with its terminator")
	}
	return blob{b: b, pos: 10, zip: true}, nil
}

func (bl *blob) nextZiplist(e *blobEntry) error {
	b, p := bl.b, bl.pos
	end := len(b) - 1
	*e = blobEntry{}
	if p >= end {
		return errors.New("ziplist ends before its last entry")
	}
	// The previous entry's length: one byte, or 0xfe and four more.
	if b[p] == 0xfe {
		p += 5
	} else {
		p++
	}
	if p >= end {
		return errBlobEnd
	}
	c := b[p]
	var hdr, n int
	switch c >> 6 {
	case 0:
		hdr, n = 1, int(c&0x3f)
	case 1:
		if p+2 > end {
			return errBlobEnd
		}
		hdr, n = 2, int(c&0x3f)<<8|int(b[p+1])
	case 2:
		if p+5 > end {
			return errBlobEnd
		}
		hdr, n = 5, int(binary.BigEndian.Uint32(b[p+1:]))
	default:
		e.isInt = true
		size := 0
		switch c {
		case 0xc0:
			size = 2
		case 0xd0:
			size = 4
		case 0xe0:
			size = 8
		case 0xf0:
			size = 3
		case 0xfe:
			size = 1
		default:
			if c < 0xf1 || c > 0xfd {
				return fmt.Errorf("ziplist entry with unknown encoding byte %#x", c)
			}
			e.ival = int64(c&0x0f) - 1 // immediate 0..12
		}
		if p+1+size > end {
			return errBlobEnd
		}
		if size > 0 {
			var u uint64
			for i := size - 1; i >= 0; i-- {
				u = u<<8 | uint64(b[p+1+i])
			}
			shift := 64 - 8*size
			e.ival = int64(u<<shift) >> shift
		}
		bl.pos = p + 1 + size
		return nil
	}
	if n < 0 || p+hdr+n > end {
		return errBlobEnd
	}
	e.str = b[p+hdr : p+hdr+n]
	bl.pos = p + hdr + n
	return nil
}

// intset: 4-byte element width (2, 4 or 8), 4-byte count, the sorted
// little-endian integers.
func walkIntset(b []byte, fn func(int64) error) error {
	if len(b) < 8 {
		return fmt.Errorf("intset of %d bytes is shorter than its header", len(b))
	}
	width := int(binary.LittleEndian.Uint32(b))
	if width != 2 && width != 4 && width != 8 {
		return fmt.Errorf("intset with element width %d", width)
	}
	n := int64(binary.LittleEndian.Uint32(b[4:]))
	if 8+n*int64(width) != int64(len(b)) {
		return fmt.Errorf("intset of %d %d-byte elements in %d bytes", n, width, len(b))
	}
	for p := 8; p < len(b); p += width {
		var v int64
		switch width {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(b[p:])))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(b[p:])))
		default:
			v = int64(binary.LittleEndian.Uint64(b[p:]))
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// walkZipmap reads a zipmap (Redis before 2.6): a count byte (254 or more
// means "count by walking"), then length-prefixed field, value (with a
// free-space byte and that many unused bytes), and 0xff.
func walkZipmap(b []byte, fn func(field, value []byte) error) error {
	if len(b) < 2 {
		return errors.New("zipmap shorter than its header")
	}
	p := 1
	readLen := func() (int, error) {
		if p >= len(b) {
			return 0, errBlobEnd
		}
		c := b[p]
		switch {
		case c < 254:
			p++
			return int(c), nil
		case c == 254:
			if p+5 > len(b) {
				return 0, errBlobEnd
			}
			n := int(binary.LittleEndian.Uint32(b[p+1:]))
			p += 5
			return n, nil
		}
		return 0, errors.New("zipmap length byte 255 inside an entry")
	}
	for {
		if p >= len(b) {
			return errors.New("zipmap has no terminator")
		}
		if b[p] == 0xff {
			return nil
		}
		n, err := readLen()
		if err != nil {
			return err
		}
		if n < 0 || p+n > len(b) {
			return errBlobEnd
		}
		field := b[p : p+n]
		p += n
		n, err = readLen()
		if err != nil {
			return err
		}
		if p >= len(b) {
			return errBlobEnd
		}
		free := int(b[p])
		p++
		if n < 0 || p+n+free > len(b) {
			return errBlobEnd
		}
		value := b[p : p+n]
		p += n + free
		if err := fn(field, value); err != nil {
			return err
		}
	}
}
