package rdb_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// FuzzDecoder must never panic or hang: any input decodes, or fails with
// an *rdb.Error. Seeded with a file a real server saved.
// TODO(issue 3): seed with every file of shared/fixtures/rdb as well.
func FuzzDecoder(f *testing.F) {
	data, _ := saveStrings(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := rdb.NewDecoder(bytes.NewReader(data))
		if err != nil {
			return
		}
		for range 100000 {
			_, err := d.Next()
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
