package rewrite

import (
	"math"
	"strconv"

	"github.com/resync/resync/internal/rdb"
)

// cmdBuf builds one command's arguments back to back in a single byte
// slice: buffering a chunk copies each element once, into one place that
// is reused from chunk to chunk.
type cmdBuf struct {
	buf  []byte
	ends []int    // end offset in buf of each argument
	args [][]byte // reused by build
}

func (c *cmdBuf) reset() {
	c.buf, c.ends = c.buf[:0], c.ends[:0]
}

// size is the number of argument bytes buffered.
func (c *cmdBuf) size() int { return len(c.buf) }

func (c *cmdBuf) add(b []byte) {
	c.buf = append(c.buf, b...)
	c.ends = append(c.ends, len(c.buf))
}

func (c *cmdBuf) addString(s string) {
	c.buf = append(c.buf, s...)
	c.ends = append(c.ends, len(c.buf))
}

func (c *cmdBuf) addInt(n int64) {
	c.buf = strconv.AppendInt(c.buf, n, 10)
	c.ends = append(c.ends, len(c.buf))
}

func (c *cmdBuf) addUint(n uint64) {
	c.buf = strconv.AppendUint(c.buf, n, 10)
	c.ends = append(c.ends, len(c.buf))
}

func (c *cmdBuf) addID(id rdb.StreamID) {
	c.buf = appendID(c.buf, id)
	c.ends = append(c.ends, len(c.buf))
}

// build returns the buffered arguments followed by extra, which are not
// copied (the decoder's bytes of an element sent straight on). The result
// is valid until the next change to c.
func (c *cmdBuf) build(extra ...[]byte) [][]byte {
	args, start := c.args[:0], 0
	for _, end := range c.ends {
		args = append(args, c.buf[start:end])
		start = end
	}
	args = append(args, extra...)
	c.args = args
	return args
}

func appendID(b []byte, id rdb.StreamID) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// appendScore formats a zset score as ZADD takes it: the shortest text
// that parses back to the same float64, and inf/-inf for the infinities
// (Go's "+Inf" is not what Redis prints). NaN is the caller's to refuse:
// no zset can hold it.
func appendScore(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
