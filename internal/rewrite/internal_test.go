package rewrite

import (
	"bytes"
	"math"
	"strconv"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

func TestAppendScore(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "-0"},
		{1, "1"},
		{-1.5, "-1.5"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{2.0 / 3, "0.6666666666666666"},
		{123456789, "1.23456789e+08"},
		{1e21, "1e+21"},
		{1e-7, "1e-07"},
		{9007199254740993, "9.007199254740992e+15"}, // 2^53+1 is not a float64: its neighbour
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{math.SmallestNonzeroFloat64, "5e-324"},
		{-math.MaxFloat64, "-1.7976931348623157e+308"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	} {
		got := string(appendScore(nil, c.f))
		if got != c.want {
			t.Errorf("appendScore(%v) = %q, want %q", c.f, got, c.want)
		}
		if math.IsInf(c.f, 0) {
			continue
		}
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(c.f) {
			t.Errorf("appendScore(%v) = %q parses back as %v (%v): not exact", c.f, got, back, err)
		}
	}
	// Every bit pattern of a sample of doubles comes back exactly.
	for i := range uint64(10000) {
		f := math.Float64frombits(i * 0x9E3779B97F4A7C15)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := appendScore(nil, f)
		back, err := strconv.ParseFloat(string(s), 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(f) {
			t.Fatalf("%b: %q parses back as %b (%v)", math.Float64bits(f), s, math.Float64bits(back), err)
		}
	}
}

// A big key holds one chunk in memory, however many elements it has.
func TestMemoryBoundedByChunk(t *testing.T) {
	const chunkBytes = 64 << 10
	var commands, maxArgs int
	emit := func(args [][]byte) error {
		commands++
		maxArgs = max(maxArgs, len(args))
		return nil
	}
	for _, kind := range []rdb.Kind{rdb.KindList, rdb.KindSet, rdb.KindZSet, rdb.KindHash} {
		commands, maxArgs = 0, 0
		k, err := Start(&rdb.Record{Key: []byte("big"), Kind: kind}, Options{ChunkBytes: chunkBytes}, emit)
		if err != nil {
			t.Fatal(err)
		}
		member := bytes.Repeat([]byte("m"), 100)
		for i := range 100000 {
			copy(member, strconv.Itoa(i))
			if err := k.Add(&rdb.Element{Member: member, Value: member, Score: float64(i)}); err != nil {
				t.Fatal(err)
			}
			if c := cap(k.chunk.buf); c > 2*chunkBytes {
				t.Fatalf("%s: chunk buffer grew to %d bytes with %d elements", kind, c, i+1)
			}
		}
		if err := k.Finish(); err != nil {
			t.Fatal(err)
		}
		if commands < 100000*100/chunkBytes {
			t.Errorf("%s: %d commands for 10 MB in chunks of %d bytes", kind, commands, chunkBytes)
		}
		if maxArgs > 2+2*DefaultChunkElements {
			t.Errorf("%s: a command of %d arguments", kind, maxArgs)
		}
	}
}
