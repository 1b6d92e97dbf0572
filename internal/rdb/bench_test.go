package rdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redistest"
)

// The benchmark data set: a million keys shaped like a real cache, mostly
// small strings, some small collections (listpacks, intsets), a few keys
// past the listpack limits (hashtable, skiplist, quicklist of many nodes)
// and TTLs on a tenth of them. About 110 MB saved.
const (
	benchKeys     = 1_000_000
	benchBigKeys  = 5 // of each big kind
	benchGenerate = 1 // bump when the generator changes, to drop cached files
)

var benchData struct {
	once sync.Once
	data []byte
	keys int
	err  error
}

// benchRDB returns the benchmark file, generating it with a real server
// the first time and caching it under os.TempDir for later runs.
func benchRDB(b *testing.B) ([]byte, int) {
	b.Helper()
	// The cache name carries the server version: encodings differ by version.
	name := fmt.Sprintf("resync-bench-redis%s-%dkeys-g%d.rdb", redistest.Version(b), benchKeys, benchGenerate)
	path := filepath.Join(os.TempDir(), name)
	benchData.once.Do(func() {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			b.Logf("generating %s (once; later runs reuse it)", path)
			start := time.Now()
			data, err = benchGenerateRDB(b, path)
			b.Logf("generated %d bytes in %s", len(data), time.Since(start).Round(time.Millisecond))
		}
		if err == nil {
			benchData.keys, err = benchCensus(b, data)
		}
		benchData.data, benchData.err = data, err
	})
	if benchData.err != nil {
		b.Fatalf("%s: %v", path, benchData.err)
	}
	return benchData.data, benchData.keys
}

// benchGenerateRDB fills a fresh server through one pipelined connection,
// saves, and moves the file to path (whole, or not at all).
func benchGenerateRDB(b *testing.B, path string) ([]byte, error) {
	s := redistest.Start(b)
	defer s.Stop() // now, not when the benchmark ends: it must not run beside the decoding
	c := redistest.Dial(b, s)
	c.SetIOTimeout(5 * time.Minute) // SAVE of the whole set takes seconds
	p := &benchPipe{c: c}
	rng := rand.New(rand.NewPCG(2026, 1))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	word := func(n int) string {
		w := make([]byte, n)
		for i := range w {
			w[i] = alnum[rng.IntN(len(alnum))]
		}
		return string(w)
	}
	for i := range benchKeys {
		var key string
		switch r := i % 100; {
		case r < 70: // strings: 64 random bytes, a JSON-like value LZF compresses, or a counter
			key = fmt.Sprintf("session:%08d", i)
			switch {
			case r < 7:
				p.do("SET", key, strconv.Itoa(rng.IntN(2_000_000_000)))
			case r < 17:
				id := strconv.Itoa(100000 + rng.IntN(900000))
				p.do("SET", key, `{"user":`+id+`,"user_name":"user_`+id+`","user_mail":"user_`+id+`@x"}`)
			default:
				p.do("SET", key, word(64))
			}
		case r < 80: // hashes of 10 fields: listpack
			key = fmt.Sprintf("user:%08d", i)
			p.do("HSET", key, "name", word(10), "email", word(12)+"@example.com", "age", strconv.Itoa(18+rng.IntN(60)),
				"city", word(8), "plan", "premium", "visits", strconv.Itoa(rng.IntN(100000)), "score", strconv.Itoa(rng.IntN(1000)),
				"created", strconv.Itoa(1600000000+rng.IntN(1e8)), "token", word(16), "status", "active")
		case r < 88: // lists of 10: quicklist of one listpack node
			key = fmt.Sprintf("events:%08d", i)
			args := []string{"RPUSH", key}
			for range 10 {
				args = append(args, "event:"+word(10))
			}
			p.do(args...)
		case r < 94: // sets of 10: intset, or strings (listpack from 7.2, hashtable before)
			key = fmt.Sprintf("tags:%08d", i)
			args := []string{"SADD", key}
			for j := range 10 {
				if r < 91 {
					args = append(args, strconv.Itoa(rng.IntN(1e6)))
				} else {
					args = append(args, "tag:"+word(6)+strconv.Itoa(j))
				}
			}
			p.do(args...)
		default: // sorted sets of 10: listpack
			key = fmt.Sprintf("board:%08d", i)
			args := []string{"ZADD", key}
			for range 10 {
				args = append(args, strconv.FormatFloat(float64(rng.IntN(100000))/100, 'f', -1, 64), "player:"+word(8))
			}
			p.do(args...)
		}
		if rng.IntN(10) == 0 {
			p.do("PEXPIRE", key, strconv.Itoa(3_600_000+rng.IntN(30*86_400_000)))
		}
	}
	// Keys past the listpack limits (128 entries, 64-byte values).
	for i := range benchBigKeys {
		for j := 0; j < 2000; j += 500 {
			h := []string{"HSET", fmt.Sprintf("bighash:%d", i)}
			z := []string{"ZADD", fmt.Sprintf("bigzset:%d", i)}
			st := []string{"SADD", fmt.Sprintf("bigset:%d", i)}
			for k := j; k < j+500; k++ {
				h = append(h, "field:"+strconv.Itoa(k), word(20))
				z = append(z, strconv.Itoa(rng.IntN(1e6)), "member:"+strconv.Itoa(k))
				st = append(st, "member:"+word(12))
			}
			p.do(h...)
			p.do(z...)
			p.do(st...)
		}
		for range 20 {
			l := []string{"RPUSH", fmt.Sprintf("biglist:%d", i)}
			for range 1000 {
				l = append(l, "item:"+word(16))
			}
			p.do(l...)
		}
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	if _, err := c.Do("SAVE"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, err
	}
	return data, os.Rename(tmp, path)
}

// benchPipe sends commands in batches, checking every reply; its first
// error is sticky and returned by flush.
type benchPipe struct {
	c       *dialer.Conn
	pending int
	err     error
}

func (p *benchPipe) do(args ...string) {
	if p.err != nil {
		return
	}
	p.c.Writer().WriteCommandStrings(args...)
	if p.pending++; p.pending == 2000 {
		p.err = p.flush()
	}
}

func (p *benchPipe) flush() error {
	if p.err != nil {
		return p.err
	}
	if err := p.c.Writer().Flush(); err != nil {
		return err
	}
	for ; p.pending > 0; p.pending-- {
		if _, err := p.c.Receive("fill"); err != nil {
			return err
		}
	}
	return nil
}

// benchCensus decodes the file once, checks that it holds what the
// benchmarks claim to measure, and returns its key count.
func benchCensus(b *testing.B, data []byte) (int, error) {
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	types := map[byte]int{}
	keys, ttls, lzf, ints := 0, 0, 0, 0
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		keys++
		types[rec.Type]++
		if rec.ExpireMs != 0 {
			ttls++
		}
		raw, err := d.Raw()
		if err != nil {
			return 0, err
		}
		switch rec.Type {
		case rdb.TypeString, rdb.TypeSetIntset, rdb.TypeSetListpack, rdb.TypeHashListpack, rdb.TypeZSetListpack:
			// Saved as one string: is it an integer or LZF-compressed?
			switch {
			case raw[1] == 0xc3:
				lzf++
			case raw[1]>>6 == 3:
				ints++
			}
		}
	}
	b.Logf("%d bytes, %d keys (%d with a TTL), by RDB type %v; %d values LZF-compressed, %d integers", len(data), keys, ttls, types, lzf, ints)
	if len(data) < 100<<20 || keys < benchKeys {
		return 0, fmt.Errorf("%d bytes and %d keys: the data set is smaller than the benchmarks claim", len(data), keys)
	}
	for _, t := range []byte{rdb.TypeString, rdb.TypeHash, rdb.TypeHashListpack, rdb.TypeZSet2, rdb.TypeZSetListpack,
		rdb.TypeListQuicklist2, rdb.TypeSetIntset} {
		if types[t] == 0 {
			return 0, fmt.Errorf("no key of RDB type %d: the data set does not cover what it claims", t)
		}
	}
	return keys, nil
}

// benchDecode runs one full decode of the file per iteration; each
// reports MB/s of RDB and keys/s.
func benchDecode(b *testing.B, value func(*rdb.Decoder) error) {
	data, keys := benchRDB(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := rdb.NewDecoder(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := value(d); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != keys {
			b.Fatalf("decoded %d keys, want %d", n, keys)
		}
	}
	b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkDecodeRaw is the full sync's path: every value's DUMP payload.
func BenchmarkDecodeRaw(b *testing.B) {
	benchDecode(b, func(d *rdb.Decoder) error {
		_, err := d.Raw()
		return err
	})
}

// BenchmarkDecodeRawOrElements is the full sync's path with the big-key
// bounds (64 MiB, 1M elements): the same raw payloads, checked for size.
func BenchmarkDecodeRawOrElements(b *testing.B) {
	fn := func(*rdb.Element) error { return nil }
	benchDecode(b, func(d *rdb.Decoder) error {
		_, err := d.RawOrElements(64<<20, 1_000_000, fn)
		return err
	})
}

// BenchmarkDecodeElements decodes every element (RDB to commands, decode).
func BenchmarkDecodeElements(b *testing.B) {
	elems := 0
	fn := func(*rdb.Element) error { elems++; return nil }
	benchDecode(b, func(d *rdb.Decoder) error {
		_, err := d.ReadValue(0, fn)
		return err
	})
}

// BenchmarkDecodeSkip reads keys and skips their values (key filters).
func BenchmarkDecodeSkip(b *testing.B) {
	benchDecode(b, func(*rdb.Decoder) error { return nil })
}

// BenchmarkIsEmpty: the check a full sync makes on every key before its
// RESTORE; it must cost next to nothing beside the key's own bytes.
func BenchmarkIsEmpty(b *testing.B) {
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"string", append([]byte{rdb.TypeString, 64}, bytes.Repeat([]byte("v"), 64)...)},
		{"list", []byte{rdb.TypeList, 3}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rdb.IsEmpty(c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
