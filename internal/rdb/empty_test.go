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
	dir, idx := readIndex(t)
	empties := 0
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
			n := 0
			raw, err := d.ReadValue(1<<30, func(*rdb.Element) error { n++; return nil })
			if err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			empty, err := rdb.IsEmpty(raw)
			if err != nil {
				t.Fatalf("%s %q: %v", f.Path, rec.Key, err)
			}
			want := n == 0 && rec.Kind != rdb.KindString && rec.Kind != rdb.KindStream && rec.Kind != rdb.KindModule
			if empty != want {
				t.Errorf("%s %q (type %d, %d elements): IsEmpty %v", f.Path, rec.Key, rec.Type, n, empty)
			}
			if empty {
				empties++
			}
		}
	}
	if empties < 9 {
		t.Fatalf("only %d empty collections found: the test proves little", empties)
	}
	t.Logf("%d empty collections", empties)
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
