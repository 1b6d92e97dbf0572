package rdb

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// StringValue returns the bytes of a raw string value (type TypeString,
// as ReadValue or Raw return it): a full sync writes a plain string with
// SET, which costs the target less than RESTORE's checksum and decoding.
// The result points into raw when the string is stored plain; an integer
// or an LZF-compressed string is decoded into scratch, or into a buffer
// of its own when scratch is too small. raw is never written.
func StringValue(raw, scratch []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != TypeString {
		return nil, fmt.Errorf("not a raw string value (%d bytes)", len(raw))
	}
	in := sliceInput(raw[1:])
	n, enc, err := in.length()
	if err != nil {
		return nil, err
	}
	var s []byte
	switch {
	case !enc:
		if n > uint64(len(raw)) {
			return nil, fmt.Errorf("string of %d bytes in a value of %d", n, len(raw))
		}
		s, err = in.next(int(n))
	case n == encLZF:
		s, err = lzfValue(in, scratch)
	default:
		var v int64
		switch n {
		case encInt8:
			var b byte
			b, err = in.readByte()
			v = int64(int8(b))
		case encInt16:
			var p []byte
			if p, err = in.next(2); err == nil {
				v = int64(int16(uint16(p[0]) | uint16(p[1])<<8))
			}
		case encInt32:
			var u uint32
			u, err = in.uint32LE()
			v = int64(int32(u))
		default:
			err = fmt.Errorf("unknown string encoding %d", n)
		}
		s = strconv.AppendInt(scratch[:0], v, 10)
	}
	if err != nil {
		return nil, err
	}
	if in.r != in.w {
		return nil, fmt.Errorf("%d bytes after the string", in.w-in.r)
	}
	return s, nil
}

// lzfValue decompresses an LZF string read in place into scratch.
func lzfValue(in *input, scratch []byte) ([]byte, error) {
	clen, ulen, err := in.lzfHeader(uint64(in.w - in.r))
	if err != nil {
		return nil, err
	}
	c, err := in.next(int(clen))
	if err != nil {
		return nil, err
	}
	out := scratch[:0]
	if uint64(cap(out)) < ulen {
		out = make([]byte, ulen)
	}
	out = out[:ulen]
	if err := lzfDecompress(c, out); err != nil {
		return nil, err
	}
	return out, nil
}

// AppendLength appends n in RDB's length encoding (rdbSaveLen): 6 bits in
// one byte, 14 bits in two, else a marker byte and 32 or 64 bits,
// big-endian.
func AppendLength(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= 1<<32-1:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}
