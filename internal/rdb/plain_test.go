package rdb_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// StringValue gives what the decoder gives for every string of every
// fixture: plain, integer-encoded and LZF-compressed.
func TestStringValue(t *testing.T) {
	kinds := map[string]int{}
	var scratch []byte
	eachValue(t, func(path string, rec *rdb.Record, raw []byte, elems []*rdb.Element) {
		if rec.Type != rdb.TypeString {
			if _, err := rdb.StringValue(raw, nil); err == nil {
				t.Fatalf("%s %q: type %d taken for a string", path, rec.Key, rec.Type)
			}
			return
		}
		want := elems[0].Member
		before := bytes.Clone(raw)
		got, err := rdb.StringValue(raw, scratch)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s %q: StringValue %.40q, %v; the decoder %.40q", path, rec.Key, got, err, want)
		}
		if !bytes.Equal(raw, before) {
			t.Fatalf("%s %q: StringValue wrote into the value", path, rec.Key)
		}
		if encoded := raw[1]>>6 == 3; encoded {
			kinds[[]string{"int8", "int16", "int32", "lzf"}[raw[1]&0x3f]]++
			scratch = got[:0] // the decoded string's buffer serves the next, as the loader's does
		} else {
			kinds["plain"]++
		}
	})
	for _, k := range []string{"plain", "int8", "int16", "int32", "lzf"} {
		if kinds[k] == 0 {
			t.Errorf("no %s string among the fixtures: the test proves little (%v)", k, kinds)
		}
	}
	t.Logf("strings checked: %v", kinds)
	for _, bad := range [][]byte{nil, {0}, {0, 5, 'a'}, {0, 1, 'a', 'b'}, {0, 0xc3, 5, 20, 1}, {0, 0xc4, 1}} {
		if s, err := rdb.StringValue(bad, nil); err == nil {
			t.Errorf("% x: %q, no error", bad, s)
		}
	}
	if s, err := rdb.StringValue([]byte{0, 0}, nil); err != nil || len(s) != 0 {
		t.Errorf("the empty string: %q, %v", s, err)
	}
	long := append([]byte{0, 0x40 | 1, 0}, strings.Repeat("x", 256)...)
	if s, err := rdb.StringValue(long, nil); err != nil || len(s) != 256 {
		t.Errorf("a 256-byte string: %d bytes, %v", len(s), err)
	}
}

// FuzzStringValue: any bytes, no panic, and the value is never written.
func FuzzStringValue(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0xc0, 0x7f})
	f.Add([]byte{0, 0xc3, 4, 10, 0x01, 'a', 'b', 0xe0, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := bytes.Clone(raw)
		rdb.StringValue(raw, make([]byte, 0, 8))
		if !bytes.Equal(before, raw) {
			t.Fatal("StringValue wrote into the value")
		}
	})
}
