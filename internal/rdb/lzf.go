package rdb

import "errors"

var errLZF = errors.New("corrupt LZF data")

// lzfDecompress expands LZF-compressed in into out, which must be exactly
// the uncompressed length the RDB announced. Every reference and length
// is checked: corrupt input gives an error, never a panic.
func lzfDecompress(in, out []byte) error {
	ip, op := 0, 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 32 { // a run of ctrl+1 literal bytes
			n := ctrl + 1
			if ip+n > len(in) || op+n > len(out) {
				return errLZF
			}
			copy(out[op:], in[ip:ip+n])
			ip += n
			op += n
			continue
		}
		// A back reference: length in the top 3 bits (7 means "more in
		// the next byte"), distance in the low 5 bits and the next byte.
		n := ctrl >> 5
		if n == 7 {
			if ip >= len(in) {
				return errLZF
			}
			n += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return errLZF
		}
		ref := op - (ctrl&0x1f)<<8 - int(in[ip]) - 1
		ip++
		n += 2
		if ref < 0 || op+n > len(out) {
			return errLZF
		}
		if ref+n <= op {
			copy(out[op:op+n], out[ref:ref+n])
			op += n
		} else {
			// Overlapping: the reference repeats bytes being written.
			for range n {
				out[op] = out[ref]
				op++
				ref++
			}
		}
	}
	if op != len(out) {
		return errLZF
	}
	return nil
}
