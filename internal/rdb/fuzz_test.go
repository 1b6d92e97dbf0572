package rdb_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// FuzzDecoder must never panic or hang: any input decodes, or fails with
// an *rdb.Error. Seeded with every fixture file (up to a size that keeps
// fuzzing quick) and a file a real server saved. Each key's value is read
// whole (elements and raw), so the compact encodings are fuzzed too.
func FuzzDecoder(f *testing.F) {
	data, _ := saveStrings(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	dir, idx := readIndex(f)
	for _, r := range idx.RDB {
		b, err := os.ReadFile(filepath.Join(dir, r.Path))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 32<<10 { // the mutator and minimizer crawl on bigger inputs
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := rdb.NewDecoder(bytes.NewReader(data))
		if err != nil {
			return
		}
		elements := 0
		count := func(*rdb.Element) error { elements++; return nil }
		for i := 0; ; i++ {
			_, err := d.Next()
			if err == nil {
				// Alternate the ways a value is read: whole with its
				// elements, raw only, skipped.
				switch i % 3 {
				case 0:
					_, err = d.ReadValue(1<<20, count)
				case 1:
					_, err = d.Raw()
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				var re *rdb.Error
				if !errors.As(err, &re) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
		}
	})
}
