package rdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/resync/resync/internal/rdb"
)

// TestRawOrElements reads every loadable fixture with RawOrElements at
// several limits: a value that fits comes back raw, byte for byte what
// Raw gives; one that does not comes back as its elements, all of them,
// from the first; and the file's checksum still verifies after a replay.
func TestRawOrElements(t *testing.T) {
	dir, idx := readIndex(t)
	// A one-byte reader makes the input refill before every byte, so a
	// spill is found while filling as well as at the value's end.
	limits := []struct {
		raw, elems int
		oneByte    bool
	}{{1, 0, false}, {40, 0, false}, {40, 0, true}, {4096, 2, false}, {300 << 10, 0, false}, {1 << 30, 1, false}}
	files := 0
	for _, f := range idx.RDB {
		if f.Expect != "ok" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeFile(data)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		files++
		for _, l := range limits {
			name := fmt.Sprintf("%s/raw%d-elems%d-onebyte:%v", filepath.Base(f.Path), l.raw, l.elems, l.oneByte)
			var r io.Reader = bytes.NewReader(data)
			if l.oneByte {
				r = iotest.OneByteReader(r)
			}
			var raws, spilled int
			got, err := decodeFileWith(r, func(d *rdb.Decoder, fn func(*rdb.Element) error) ([]byte, error) {
				called := false
				raw, err := d.RawOrElements(l.raw, l.elems, func(e *rdb.Element) error {
					called = true
					return fn(e)
				})
				if err != nil {
					return nil, err
				}
				if raw != nil {
					if called {
						return nil, fmt.Errorf("elements handed out with the raw value")
					}
					raws++
				} else {
					spilled++
				}
				return raw, nil
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if len(got.keys) != len(want.keys) {
				t.Errorf("%s: %d keys, want %d", name, len(got.keys), len(want.keys))
				continue
			}
			for i, k := range got.keys {
				w := want.keys[i]
				if k.Raw != nil {
					if !bytes.Equal(k.Raw, w.Raw) {
						t.Errorf("%s: %s: raw differs", name, k.id())
					}
					continue
				}
				k.Raw = w.Raw
				if d := w.diff(k); d != "" {
					t.Errorf("%s: %s: elements after a spill differ: %s", name, k.id(), d)
				}
			}
			if l.raw == 1 && raws != 0 {
				t.Errorf("%s: %d values came raw past a 1-byte limit", name, raws)
			}
			if l.raw == 1<<30 && l.elems == 0 && spilled != 0 {
				t.Errorf("%s: %d values spilled under a 1 GiB limit", name, spilled)
			}
		}
	}
	if files == 0 {
		t.Fatal("no loadable fixture")
	}
}

// TestRawOrElementsChecksum: a replayed value's bytes are checksummed
// once, so a good file verifies and a damaged one is still caught.
func TestRawOrElementsChecksum(t *testing.T) {
	dir := fixtureDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "generated", "redis-7.0-all-types.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(data []byte) error {
		d, err := rdb.NewDecoder(bytes.NewReader(data))
		if err != nil {
			return err
		}
		for {
			if _, err := d.Next(); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			if _, err := d.RawOrElements(1, 0, func(*rdb.Element) error { return nil }); err != nil {
				return err
			}
		}
	}
	if err := read(data); err != nil {
		t.Fatalf("good file: %v", err)
	}
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 0xff
	if err := read(bad); !errors.Is(err, rdb.ErrChecksum) {
		t.Fatalf("damaged checksum: got %v, want ErrChecksum", err)
	}
}
