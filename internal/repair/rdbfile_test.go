package repair

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
)

// payload builds what DUMP returns for a string value.
func payload(value string, version int) []byte {
	p := append([]byte{rdb.TypeString}, rdb.AppendLength(nil, uint64(len(value)))...)
	p = append(p, value...)
	p = binary.LittleEndian.AppendUint16(p, uint16(version))
	return binary.LittleEndian.AppendUint64(p, rdb.CRC64(0, p))
}

// TestRecordPieces feeds payloads in pieces of every size, as ReadBulkTo
// may hand them over, and decodes the file.
func TestRecordPieces(t *testing.T) {
	values := []string{"x", "hello", strings.Repeat("v", 100), strings.Repeat("w", 20000)}
	keys := []string{"", "k", strings.Repeat("k", 64), strings.Repeat("K", 16384)}
	for _, piece := range []int{1, 2, 3, 9, 10, 11, 64, 1 << 20} {
		f, err := os.Create(filepath.Join(t.TempDir(), "repair.rdb"))
		if err != nil {
			t.Fatal(err)
		}
		file := newRDBFile(f)
		for db := range 2 {
			if err := file.selectDB(db * 300); err != nil {
				t.Fatal(err)
			}
			for i, v := range values {
				rec := file.record([]byte(keys[i]), int64(i*1000))
				for p := payload(v, 10); len(p) > 0; {
					n := min(piece, len(p))
					if _, err := rec.Write(p[:n]); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
				if err := rec.finish(); err != nil {
					t.Fatalf("piece %d: %v", piece, err)
				}
			}
		}
		size, err := file.close()
		if err != nil {
			t.Fatal(err)
		}
		d, err := rdb.NewDecoder(io.NewSectionReader(f, 0, size))
		if err != nil {
			t.Fatal(err)
		}
		if d.Version() != 10 {
			t.Errorf("piece %d: version %d", piece, d.Version())
		}
		for db := range 2 {
			for i, v := range values {
				rec, err := d.Next()
				if err != nil {
					t.Fatalf("piece %d: %v", piece, err)
				}
				if rec.DB != db*300 || string(rec.Key) != keys[i] || rec.ExpireMs != int64(i*1000) {
					t.Errorf("piece %d: record db %d key of %d bytes expiry %d", piece, rec.DB, len(rec.Key), rec.ExpireMs)
				}
				raw, err := d.Raw()
				if err != nil {
					t.Fatal(err)
				}
				if want := payload(v, 10); !bytes.Equal(raw, want[:len(want)-trailerLen]) {
					t.Errorf("piece %d: key %d: raw value differs", piece, i)
				}
			}
		}
		if _, err := d.Next(); err != io.EOF {
			t.Errorf("piece %d: after the last record: %v", piece, err)
		}
		f.Close()
	}
}

func TestRecordRefuses(t *testing.T) {
	corrupt := payload("hello", 10)
	corrupt[3] ^= 1
	tests := []struct {
		name    string
		payload [][]byte
		want    string
	}{
		{"checksum", [][]byte{corrupt}, "checksum"},
		{"short", [][]byte{payload("", 10)[:9]}, "too short"},
		{"versions", [][]byte{payload("a", 9), payload("b", 10)}, "versions 9 and 10"},
		{"unknown version", [][]byte{payload("a", rdb.MaxVersion+1)}, "resync reads versions"},
	}
	for _, tc := range tests {
		f, err := os.Create(filepath.Join(t.TempDir(), "repair.rdb"))
		if err != nil {
			t.Fatal(err)
		}
		file := newRDBFile(f)
		var last error
		for _, p := range tc.payload {
			rec := file.record([]byte("k"), 0)
			if _, err := rec.Write(p); err != nil {
				t.Fatal(err)
			}
			if last = rec.finish(); last != nil {
				break
			}
		}
		if last == nil || !strings.Contains(last.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, last, tc.want)
		}
		if tc.name == "checksum" && !errors.Is(last, rdb.ErrChecksum) {
			t.Errorf("checksum: %v does not match rdb.ErrChecksum", last)
		}
		f.Close()
	}
}
