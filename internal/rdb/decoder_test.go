package rdb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// stringCase is a string key the server encodes a particular way.
type stringCase struct {
	db       int
	key, val string
	expireMs int64
}

func stringCases() []stringCase {
	rng := rand.New(rand.NewPCG(7, 8))
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	return []stringCase{
		{0, "empty", "", 0},
		{0, "short", "hello", 0},
		{0, "int8", "-100", 0},
		{0, "int16", "30000", 0},
		{0, "int32", "-2000000000", 0},
		{0, "past int32", "12345678901", 0},
		{0, "leading zero", "007", 0},
		{0, "lzf", strings.Repeat("compress me ", 40), 0},
		{0, "random", string(random), 0},
		{0, "binary\x00key", "\x00\xff\r\n", 4102444800000},
		{0, "big", strings.Repeat("0123456789abcdef", 40000) + string(random), 0}, // past the decoder's buffer
		{5, "in db 5", "five", 4102444800123},
	}
}

// saveStrings writes the cases into a fresh server, saves, and returns the file.
func saveStrings(t testing.TB) ([]byte, *redisproc.Server) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	for _, k := range stringCases() {
		cmds := [][]string{{"SELECT", strconv.Itoa(k.db)}, {"SET", k.key, k.val}}
		if k.expireMs != 0 {
			cmds = append(cmds, []string{"PEXPIREAT", k.key, strconv.FormatInt(k.expireMs, 10)})
		}
		for _, cmd := range cmds {
			if _, err := c.Do(cmd...); err != nil {
				t.Fatal(err)
			}
		}
	}
	redistest.Do(t, s, "SAVE")
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return data, s
}

// strRecord is a string key with its raw value.
type strRecord struct {
	rdb.Record
	Raw, Str []byte
}

func decodeAll(data []byte) ([]strRecord, *rdb.Decoder, error) {
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	var out []strRecord
	for {
		rec, err := d.Next()
		if err == io.EOF {
			return out, d, nil
		}
		if err != nil {
			return out, d, err
		}
		r := strRecord{Record: *rec}
		r.Key = bytes.Clone(rec.Key)
		raw, err := d.ReadValue(1<<30, func(e *rdb.Element) error {
			r.Str = bytes.Clone(e.Member)
			return nil
		})
		if err != nil {
			return out, d, err
		}
		r.Raw = bytes.Clone(raw)
		out = append(out, r)
	}
}

// payload builds a DUMP payload: raw value, RDB version, CRC-64 of both.
func payload(raw []byte, version int) []byte {
	p := append([]byte(nil), raw...)
	p = binary.LittleEndian.AppendUint16(p, uint16(version))
	return binary.LittleEndian.AppendUint64(p, rdb.CRC64(0, p))
}

func TestStringsFromRealServer(t *testing.T) {
	data, _ := saveStrings(t)
	recs, d, err := decodeAll(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]stringCase{}
	for _, k := range stringCases() {
		want[k.key] = k
	}
	if len(recs) != len(want) {
		t.Fatalf("decoded %d keys, wrote %d", len(recs), len(want))
	}
	for _, r := range recs {
		k, ok := want[string(r.Key)]
		if !ok {
			t.Fatalf("unexpected key %q", r.Key)
		}
		if r.Type != rdb.TypeString || string(r.Str) != k.val || r.DB != k.db || r.ExpireMs != k.expireMs {
			t.Errorf("%q: got db %d type %d expire %d value %.40q; want db %d expire %d value %.40q",
				r.Key, r.DB, r.Type, r.ExpireMs, r.Str, k.db, k.expireMs, k.val)
		}
	}
	// The server chose the encodings under test: int8/16/32 (0xc0-0xc2) and LZF (0xc3).
	for key, enc := range map[string]byte{"int8": 0xc0, "int16": 0xc1, "int32": 0xc2, "lzf": 0xc3} {
		for _, r := range recs {
			if string(r.Key) == key && (len(r.Raw) < 2 || r.Raw[1] != enc) {
				t.Errorf("%s: encoded as %#x, not %#x: the test does not cover what it claims", key, r.Raw[1], enc)
			}
		}
	}
	aux := map[string]string{}
	for _, a := range d.Aux() {
		aux[a.Key] = a.Value
	}
	if v := redistest.Version(t); v.AtLeast(3, 2) && aux["redis-ver"] != v.String() {
		t.Errorf("AUX redis-ver = %q, want %s", aux["redis-ver"], v)
	}

	// Each raw value, as a DUMP payload, recreates the key on a fresh server.
	fresh := redistest.Start(t)
	c := redistest.Dial(t, fresh)
	for _, r := range recs {
		if _, err := c.Do("SELECT", strconv.Itoa(r.DB)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Do("RESTORE", string(r.Key), "0", string(payload(r.Raw, d.Version()))); err != nil {
			t.Fatalf("RESTORE %q: %v", r.Key, err)
		}
		got, err := c.Do("GET", string(r.Key))
		if err != nil || got.Text() != string(r.Str) {
			t.Fatalf("%q after RESTORE: %.40q %v", r.Key, got.Text(), err)
		}
	}
}

func TestChecksumMismatch(t *testing.T) {
	data, _ := saveStrings(t)
	bad := bytes.Clone(data)
	bad[bytes.Index(bad, []byte("five"))] ^= 0x20 // "Five": same length, different bytes
	_, _, err := decodeAll(bad)
	if !errors.Is(err, rdb.ErrChecksum) {
		t.Fatalf("got %v, want a checksum mismatch", err)
	}
	var re *rdb.Error
	if !errors.As(err, &re) || re.Offset != int64(len(data)) {
		t.Fatalf("error %v does not name the end of the file (%d)", err, len(data))
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	data, _ := saveStrings(t)
	for cut := 0; cut < len(data); cut += 1 + cut/64 {
		_, _, err := decodeAll(data[:cut])
		var re *rdb.Error
		if !errors.As(err, &re) {
			t.Fatalf("cut at %d: got %v, want an *rdb.Error", cut, err)
		}
		if cut > 9 && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: %v does not say the file is truncated", cut, err)
		}
	}
}

func TestNotAnRDB(t *testing.T) {
	for _, in := range []string{"", "REDIS", "HELLO0009", "REDIS00x9", "REDIS0013"} {
		if _, err := rdb.NewDecoder(strings.NewReader(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// The replication AUX fields and the Lua scripts 4.0-6.2 keep are there
// for the sync to read: the source's replication ID and offset at the
// snapshot, and the scripts a replica must have.
func TestAuxFields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtureDir(t), "redis-redis", "scriptbackup.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := d.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for key, want := range map[string]string{
		"repl-id":        "349eeafec1f98f3f56277e95fc86bc48b30651a2",
		"repl-offset":    "0",
		"repl-stream-db": "0",
	} {
		if got, ok := d.AuxValue(key); !ok || got != want {
			t.Errorf("AUX %s = %q, %v; want %q", key, got, ok, want)
		}
	}
	lua, ok := d.AuxValue("lua")
	if !ok || !strings.Contains(lua, "return") {
		t.Errorf("AUX lua = %q, %v", lua, ok)
	}
	if _, ok := d.AuxValue("no-such-field"); ok {
		t.Error("a field that is not in the file was found")
	}
}

// A key bigger than the raw limit still hands over every element, and
// returns no raw bytes instead of holding them; the keys after it are
// recorded whole again.
func TestRawLimit(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	big := []string{"RPUSH", "big"}
	for i := range 20000 {
		big = append(big, fmt.Sprintf("element-%06d", i))
	}
	for _, cmd := range [][]string{big, {"SET", "small", "after the big one"}, {"SAVE"}} {
		if v, err := c.Do(cmd...); err != nil || v.Err() != nil {
			t.Fatalf("%s: %v %v", cmd[0], err, v.Err())
		}
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	whole := map[string][]byte{}
	for _, limit := range []int{math.MaxInt, 4096} {
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
				t.Fatal(err)
			}
			n := 0
			raw, err := d.ReadValue(limit, func(e *rdb.Element) error {
				if string(rec.Key) == "big" && string(e.Member) != fmt.Sprintf("element-%06d", n) {
					t.Fatalf("element %d is %q", n, e.Member)
				}
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			key := string(rec.Key)
			switch {
			case limit == math.MaxInt:
				whole[key] = bytes.Clone(raw)
			case key == "big":
				if raw != nil || n != 20000 {
					t.Errorf("big key over the limit: %d raw bytes, %d elements", len(raw), n)
				}
				if len(whole[key]) <= limit {
					t.Fatalf("the big key is only %d bytes: the test proves nothing", len(whole[key]))
				}
			case !bytes.Equal(raw, whole[key]):
				t.Errorf("%s after the big key: raw %q, want %q", key, raw, whole[key])
			}
		}
	}
}

// A file of every type cut anywhere fails with an *rdb.Error that says it
// is truncated, and names the key when the cut is inside one.
func TestTruncatedEveryType(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtureDir(t), "generated", "release-7.4.1.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := decodeFile(data)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for cut := 9; cut < len(data); cut += 1 + cut/200 {
		_, err := decodeFile(data[:cut])
		var re *rdb.Error
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: got %v, want a truncation *rdb.Error", cut, err)
		}
		if re.Offset > int64(cut) {
			t.Fatalf("cut at %d: error at offset %d, past the data", cut, re.Offset)
		}
		if re.Key != "" {
			named++
		}
	}
	if named == 0 || len(full.keys) == 0 {
		t.Fatal("no truncation error named its key")
	}
}
