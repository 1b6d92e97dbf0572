package rdb

import (
	"errors"
	"testing"
)

func TestLZFVector(t *testing.T) {
	// A literal 'a', then a back reference of 9 bytes at distance 1 that
	// overlaps what it writes, then the literal "xyz".
	in := []byte{0x00, 'a', 0xe0, 0x00, 0x00, 0x02, 'x', 'y', 'z'}
	out := make([]byte, 13)
	if err := lzfDecompress(in, out); err != nil || string(out) != "aaaaaaaaaaxyz" {
		t.Fatalf("got %q, %v", out, err)
	}
	for _, n := range []int{12, 14} { // the announced length must be exact
		if err := lzfDecompress(in, make([]byte, n)); !errors.Is(err, errLZF) {
			t.Errorf("length %d: got %v, want errLZF", n, err)
		}
	}
	for _, bad := range [][]byte{{0x05, 'a'}, {0x00, 'a', 0x20}, {0x20, 0x05}, {0x00, 'a', 0xe0}} {
		if err := lzfDecompress(bad, make([]byte, 8)); !errors.Is(err, errLZF) {
			t.Errorf("%x: got %v, want errLZF", bad, err)
		}
	}
}

func FuzzLZF(f *testing.F) {
	f.Add([]byte{0x00, 'a', 0xe0, 0x00, 0x00, 0x02, 'x', 'y', 'z'}, uint16(13))
	f.Fuzz(func(t *testing.T, in []byte, n uint16) {
		lzfDecompress(in, make([]byte, n))
	})
}
