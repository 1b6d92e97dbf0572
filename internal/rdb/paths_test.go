package rdb_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// TestReadPathsAgree decodes every fixture that loads in the three ways
// a value can be read: with its elements and raw bytes, raw bytes only
// (the full sync), and skipped. Without elements the decoder takes
// shortcuts (no LZF decompression, no walk of the compact encodings):
// they must consume exactly the same bytes and record the same payloads.
func TestReadPathsAgree(t *testing.T) {
	dir, idx := readIndex(t)
	noop := func(*rdb.Element) error { return nil }
	for _, f := range idx.RDB {
		if f.Expect != "ok" {
			continue
		}
		t.Run(f.Path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			full, err := readEveryValue(data, func(d *rdb.Decoder) ([]byte, error) { return d.ReadValue(math.MaxInt, noop) })
			if err != nil {
				t.Fatalf("with elements: %v", err)
			}
			raw, err := readEveryValue(data, (*rdb.Decoder).Raw)
			if err != nil {
				t.Fatalf("raw only: %v", err)
			}
			skip, err := readEveryValue(data, func(*rdb.Decoder) ([]byte, error) { return nil, nil })
			if err != nil {
				t.Fatalf("skipped: %v", err)
			}
			if !slices.Equal(full, raw) {
				t.Errorf("raw only differs from reading the elements:\n%.300q\n%.300q", raw, full)
			}
			for i := range full {
				full[i], _, _ = strings.Cut(full[i], "\x00")
			}
			if !slices.Equal(full, skip) {
				t.Errorf("skipping sees other keys than reading the elements:\n%.300q\n%.300q", skip, full)
			}
		})
	}
}

// readEveryValue decodes data reading each value with read, and returns
// one line per key: where it is, and the raw bytes read returned.
func readEveryValue(data []byte, read func(*rdb.Decoder) ([]byte, error)) ([]string, error) {
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		rec, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		k := fmt.Sprintf("%d %q %d %d", rec.DB, rec.Key, rec.Type, rec.ExpireMs)
		raw, err := read(d)
		if err != nil {
			return out, err
		}
		if raw != nil {
			k += "\x00" + string(raw) // %q left no NUL before it
		}
		out = append(out, k)
	}
}
