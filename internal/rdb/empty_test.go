package rdb_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// IsEmpty agrees with the decoded elements on every fixture: the files of
// the empty-keys bug hold only empty collections, the others none that a
// server would keep.
func TestIsEmpty(t *testing.T) {
	empties := 0
	eachValue(t, func(path string, rec *rdb.Record, raw []byte, elems []*rdb.Element) {
		empty, err := rdb.IsEmpty(raw)
		if err != nil {
			t.Fatalf("%s %q: %v", path, rec.Key, err)
		}
		want := len(elems) == 0 && rec.Kind != rdb.KindString && rec.Kind != rdb.KindStream && rec.Kind != rdb.KindModule
		if empty != want {
			t.Errorf("%s %q (type %d, %d elements): IsEmpty %v", path, rec.Key, rec.Type, len(elems), empty)
		}
		if empty {
			empties++
		}
	})
	if empties < 9 {
		t.Fatalf("only %d empty collections found: the test proves little", empties)
	}
	t.Logf("%d empty collections", empties)
}

// eachValue decodes every key of every fixture a server loads, handing
// over its record, its raw value and copies of its elements.
func eachValue(t *testing.T, fn func(path string, rec *rdb.Record, raw []byte, elems []*rdb.Element)) {
	t.Helper()
	dir, idx := readIndex(t)
	for _, f := range idx.RDB {
		if f.Expect != "ok" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		d, err := rdb.NewDecoder(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			var elems []*rdb.Element
			raw, err := d.ReadValue(1<<30, func(e *rdb.Element) error {
				c := *e
				c.Member, c.Value = bytes.Clone(e.Member), bytes.Clone(e.Value)
				elems = append(elems, &c)
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			fn(f.Path, rec, raw, elems)
		}
	}
}

// FuzzIsEmpty: any bytes, no panic, and the value is read in place
// without being written.
func FuzzIsEmpty(f *testing.F) {
	f.Add([]byte{rdb.TypeList, 0})
	f.Add([]byte{rdb.TypeListQuicklist2, 1, 2, 3, 0xff})
	f.Add([]byte{rdb.TypeHashListpackEx, 1, 2, 3, 4, 5, 6, 7, 8, 0xc3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := bytes.Clone(raw)
		rdb.IsEmpty(raw)
		if !bytes.Equal(before, raw) {
			t.Fatal("IsEmpty wrote into the value")
		}
	})
}
