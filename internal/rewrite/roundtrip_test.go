package rewrite_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/rewrite"
)

// $RESYNC_TARGET_SERVER, when set, runs the target of TestRoundTripOtherTarget
// on that redis-server (e.g. a 6.2 target for a 7.4 source).
const targetServerEnv = "RESYNC_TARGET_SERVER"

// do runs one command and fails the test on an error reply.
func do(t *testing.T, c *dialer.Conn, args ...string) resp.Value {
	t.Helper()
	v, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return v
}

// sink is the target end of the rewrite: a pipelined connection whose
// every reply is checked, and which checks that each command keeps to
// the chunk limits.
type sink struct {
	c       *dialer.Conn
	o       rewrite.Options // with the defaults filled in
	db      int
	pending []string // names of the commands whose replies are due
	counts  map[string]int
}

func newSink(c *dialer.Conn, o rewrite.Options) *sink {
	if o.ChunkElements <= 0 {
		o.ChunkElements = rewrite.DefaultChunkElements
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = rewrite.DefaultChunkBytes
	}
	return &sink{c: c, o: o, db: -1, counts: map[string]int{}}
}

func (s *sink) send(args [][]byte) error {
	s.c.Writer().WriteCommand(args...)
	s.pending = append(s.pending, strings.ToUpper(string(args[0])))
	if len(s.pending) >= 500 {
		return s.sync()
	}
	return nil
}

func (s *sink) emit(args [][]byte) error {
	if len(args) < 2 {
		return fmt.Errorf("command %q has no key", args)
	}
	name := strings.ToUpper(string(args[0]))
	s.counts[name]++
	if err := s.checkLimits(name, args); err != nil {
		return err
	}
	return s.send(args)
}

func (s *sink) checkLimits(name string, args [][]byte) error {
	size := 0
	for _, a := range args {
		size += len(a)
	}
	elems := 0
	switch name {
	case "RPUSH", "SADD":
		elems = len(args) - 2
	case "ZADD", "HSET", "HMSET":
		elems = (len(args) - 2) / 2
	case "SET", "APPEND":
		if len(args[2]) > s.o.ChunkBytes {
			return fmt.Errorf("%s of %d bytes, over ChunkBytes %d", name, len(args[2]), s.o.ChunkBytes)
		}
		return nil
	case "HPEXPIREAT":
		elems = len(args) - 5
	case "XCLAIM":
		elems = len(args) - 11
	default:
		return nil
	}
	if elems > s.o.ChunkElements {
		return fmt.Errorf("%s with %d elements, over ChunkElements %d", name, elems, s.o.ChunkElements)
	}
	if size > s.o.ChunkBytes && elems > 1 && name != "HPEXPIREAT" && name != "XCLAIM" {
		return fmt.Errorf("%s of %d elements and %d bytes, over ChunkBytes %d", name, elems, size, s.o.ChunkBytes)
	}
	return nil
}

func (s *sink) selectDB(db int) error {
	if db == s.db {
		return nil
	}
	s.db = db
	return s.send([][]byte{[]byte("SELECT"), []byte(strconv.Itoa(db))})
}

// sync sends what is buffered and checks every reply.
func (s *sink) sync() error {
	if err := s.c.Writer().Flush(); err != nil {
		return err
	}
	var first error
	for _, name := range s.pending {
		if _, err := s.c.Receive(name); err != nil && first == nil {
			first = err
		}
	}
	s.pending = s.pending[:0]
	return first
}

// rewriteAll saves src, decodes its snapshot and writes every key to dst
// through rewrite. It returns what each key dropped, by "db:key".
func rewriteAll(t *testing.T, src *redisproc.Server, dst *dialer.Conn, o rewrite.Options) (map[string]string, *sink) {
	t.Helper()
	redistest.Do(t, src, "SAVE")
	data, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(dst, o)
	dropped := map[string]string{}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.selectDB(rec.DB); err != nil {
			t.Fatal(err)
		}
		k, err := rewrite.Start(rec, o, s.emit)
		if err != nil {
			t.Fatalf("key %q: %v", rec.Key, err)
		}
		if _, err := d.ReadValue(0, k.Add); err != nil {
			t.Fatalf("key %q: %v", rec.Key, err)
		}
		if err := k.Finish(); err != nil {
			t.Fatalf("key %q: %v", rec.Key, err)
		}
		if k.Skip() && k.Dropped() == "" {
			t.Errorf("key %q skipped without saying why", rec.Key)
		}
		if why := k.Dropped(); why != "" {
			dropped[fmt.Sprintf("%d:%s", rec.DB, rec.Key)] = why
		}
	}
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Do("SELECT", "0"); err != nil {
		t.Fatal(err)
	}
	return dropped, s
}

// data is what fill put in the source, for the checks.
type data struct {
	streams   []string // in db 0
	fieldTTLs []string // hashes with field TTLs, in db 0
}

// fill puts every type and encoding the server has in c's server.
func fill(t *testing.T, c *dialer.Conn, v redisproc.Version) data {
	t.Helper()
	var out data
	later := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	much := strconv.FormatInt(time.Now().Add(48*time.Hour).UnixMilli(), 10)
	cmd := func(args ...string) resp.Value { t.Helper(); return do(t, c, args...) }
	push := func(name, key string, n int, f func(i int) []string) {
		t.Helper()
		// In slices of 100 elements: the oldest servers take few arguments well.
		for i := 0; i < n; {
			args := []string{name, key}
			for ; i < n && len(args) < 200; i++ {
				args = append(args, f(i)...)
			}
			cmd(args...)
		}
	}

	// Strings: integers, short, empty, binary, and bigger than any chunk.
	cmd("SET", "str:int", "12345")
	cmd("SET", "str:neg", "-9223372036854775808")
	cmd("SET", "str:short", "hello")
	cmd("SET", "str:empty", "")
	cmd("SET", "str:bin", "\x00\xff\r\n")
	cmd("SET", "str:1500", strings.Repeat("0123456789abcde", 100))
	big := make([]byte, 5<<19) // 2.5 MiB
	for i := range big {
		big[i] = byte('a' + i%23)
	}
	cmd("SET", "str:big", string(big))
	cmd("SET", "str:ttl", "soon")
	cmd("PEXPIREAT", "str:ttl", later)

	// Lists: small (ziplist/listpack), long (quicklist), big elements.
	cmd("RPUSH", "list:small", "a", "", "1", "-5", "9223372036854775807", "\x00\xff")
	push("RPUSH", "list:big", 5000, func(i int) []string { return []string{fmt.Sprintf("e%05d", i)} })
	cmd("RPUSH", "list:bigelem", strings.Repeat("x", 3000), "a", strings.Repeat("y", 5000), "b")
	cmd("RPUSH", "list:ttl", "a", "b", "c")
	cmd("PEXPIREAT", "list:ttl", much)

	// Sets: intset, small (listpack on 7.2+), hashtable.
	cmd("SADD", "set:int", "1", "2", "3", "-5", "1000000", "9223372036854775807")
	cmd("SADD", "set:small", "a", "b", "c", "")
	push("SADD", "set:big", 2000, func(i int) []string { return []string{fmt.Sprintf("m%05d", i)} })
	push("SADD", "set:bigint", 600, func(i int) []string { return []string{strconv.Itoa(i * 7)} })

	// Zsets: every kind of score, small (ziplist/listpack) and skiplist.
	cmd("ZADD", "zset:small", "inf", "plus", "-inf", "minus", "0.1", "tenth", "-0", "negzero",
		"5e-324", "tiny", "1.7976931348623157e308", "huge", "1e21", "e21", "123456789012345678", "int",
		"0.3333333333333333", "third", "-2.5", "")
	push("ZADD", "zset:big", 500, func(i int) []string {
		return []string{strconv.FormatFloat(float64(i)/7, 'g', -1, 64), fmt.Sprintf("m%04d", i)}
	})
	cmd("ZADD", "zset:big", "inf", "top", "-inf", "bottom")
	cmd("ZADD", "zset:bigmember", "1.5", strings.Repeat("z", 3000), "2", "small")
	cmd("ZADD", "zset:ttl", "1", "a")
	cmd("PEXPIREAT", "zset:ttl", later)

	// Hashes: small (zipmap/ziplist/listpack), hashtable, a big value.
	cmd("HMSET", "hash:small", "f1", "v1", "empty", "", "n", "123")
	push("HMSET", "hash:big", 1000, func(i int) []string { return []string{fmt.Sprintf("f%04d", i), fmt.Sprintf("value %d", i)} })
	cmd("HMSET", "hash:bigval", "big", strings.Repeat("v", 3000), "small", "s")
	cmd("HMSET", "hash:ttl", "a", "1")
	cmd("PEXPIREAT", "hash:ttl", later)

	// Another database.
	cmd("SELECT", "1")
	cmd("SET", "db1:str", "in db 1")
	cmd("RPUSH", "db1:list", "x", "y")
	cmd("PEXPIREAT", "db1:list", later)
	cmd("SELECT", "0")

	if v.AtLeast(5, 0) {
		out.streams = fillStreams(t, c, v, later)
	}
	if v.AtLeast(7, 4) {
		now := time.Now()
		at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
		cmd("HSET", "hash:fttl:small", "a", "1", "b", "2", "c", "3", "d", "4")
		cmd("HPEXPIREAT", "hash:fttl:small", at(time.Hour), "FIELDS", "2", "a", "b")
		cmd("HPEXPIREAT", "hash:fttl:small", at(2*time.Hour), "FIELDS", "1", "c")
		push("HSET", "hash:fttl:big", 300, func(i int) []string { return []string{fmt.Sprintf("f%03d", i), strconv.Itoa(i)} })
		for i := 0; i < 300; i += 2 {
			// Two expiry times shared by many fields, and some of their own.
			d := time.Hour + time.Duration(i%4)*time.Minute
			if i%10 == 0 {
				d = 3*time.Hour + time.Duration(i)*time.Millisecond
			}
			cmd("HPEXPIREAT", "hash:fttl:big", at(d), "FIELDS", "1", fmt.Sprintf("f%03d", i))
		}
		cmd("PEXPIREAT", "hash:fttl:big", at(72*time.Hour))
		out.fieldTTLs = []string{"hash:fttl:small", "hash:fttl:big"}
	}
	return out
}

// fillStreams makes streams with deletions, groups, consumers with and
// without pending entries, and empty streams; it returns their keys.
func fillStreams(t *testing.T, c *dialer.Conn, v redisproc.Version, later string) []string {
	t.Helper()
	cmd := func(args ...string) resp.Value { t.Helper(); return do(t, c, args...) }
	for i := 1; i <= 250; i++ {
		id := fmt.Sprintf("%d-%d", 1000+i, i%3)
		if i%2 == 0 {
			cmd("XADD", "stream:main", id, "a", strconv.Itoa(i), "b", "same fields")
		} else {
			cmd("XADD", "stream:main", id, "x", strings.Repeat("v", i), "y", "", "z", "other fields")
		}
	}
	// Deleted: the first, some in the middle, and the last (so the last
	// ID is not the top entry's).
	cmd("XDEL", "stream:main", "1001-1", "1050-2", "1120-0", "1121-1", "1250-1")
	cmd("XGROUP", "CREATE", "stream:main", "g1", "0")
	cmd("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "30", "STREAMS", "stream:main", ">")
	cmd("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "20", "STREAMS", "stream:main", ">")
	cmd("XACK", "stream:main", "g1", "1002-2", "1003-0", "1004-1")
	cmd("XCLAIM", "stream:main", "g1", "bob", "0", "1010-1", "1011-2") // delivery count 2
	// carol reads only her (empty) history: a consumer without entries.
	cmd("XREADGROUP", "GROUP", "g1", "carol", "COUNT", "1", "STREAMS", "stream:main", "0")
	// dave acknowledged all he read.
	r := cmd("XREADGROUP", "GROUP", "g1", "dave", "COUNT", "5", "STREAMS", "stream:main", ">")
	ack := []string{"XACK", "stream:main", "g1"}
	for _, e := range r.Elems[0].Elems[1].Elems {
		ack = append(ack, e.Elems[0].Text())
	}
	cmd(ack...)
	cmd("XGROUP", "CREATE", "stream:main", "g2", "$")
	cmd("XGROUP", "CREATE", "stream:main", "g3", "0-0")
	cmd("XGROUP", "CREATE", "stream:main", "g4", "1100-0")
	cmd("XREADGROUP", "GROUP", "g4", "erin", "COUNT", "10", "STREAMS", "stream:main", ">")

	// A big stream: several listpacks, 500 pending entries in runs of 100
	// that share a delivery time.
	for i := 1; i <= 3000; i++ {
		cmd("XADD", "stream:big", strconv.Itoa(i)+"-0", "n", strconv.Itoa(i), "pad", strings.Repeat("p", i%50))
	}
	cmd("XGROUP", "CREATE", "stream:big", "gb", "0")
	for range 5 {
		cmd("XREADGROUP", "GROUP", "gb", "c1", "COUNT", "100", "STREAMS", "stream:big", ">")
	}

	// Groups whose entries-read is known (7.0+), around a deletion.
	for i := 1; i <= 20; i++ {
		cmd("XADD", "stream:read", strconv.Itoa(i)+"-0", "f", "v")
	}
	cmd("XGROUP", "CREATE", "stream:read", "before", "0")
	cmd("XREADGROUP", "GROUP", "before", "c", "COUNT", "5", "STREAMS", "stream:read", ">")
	cmd("XDEL", "stream:read", "15-0")
	cmd("XGROUP", "CREATE", "stream:read", "across", "0")
	cmd("XREADGROUP", "GROUP", "across", "c", "COUNT", "18", "STREAMS", "stream:read", ">")
	cmd("XGROUP", "CREATE", "stream:read", "end", "$")
	if v.AtLeast(7, 0) {
		cmd("XGROUP", "CREATE", "stream:read", "given", "10-0", "ENTRIESREAD", "10")
	}

	// Empty streams: made by a group's MKSTREAM, trimmed to nothing,
	// emptied by XDEL; and one whose last ID was set beyond its entries.
	cmd("XGROUP", "CREATE", "stream:mkstream", "g", "$", "MKSTREAM")
	cmd("XADD", "stream:trimmed", "5-1", "f", "v")
	cmd("XADD", "stream:trimmed", "6-1", "f", "v")
	cmd("XTRIM", "stream:trimmed", "MAXLEN", "0")
	cmd("XGROUP", "CREATE", "stream:trimmed", "g", "$")
	cmd("XADD", "stream:xdel", "7-1", "f", "v")
	cmd("XADD", "stream:xdel", "8-1", "f", "v")
	cmd("XDEL", "stream:xdel", "7-1", "8-1")
	cmd("XADD", "stream:lastid", "1-1", "f", "v")
	cmd("XSETID", "stream:lastid", "99-5")
	cmd("XADD", "stream:ttl", "1-1", "f", "v")
	cmd("PEXPIREAT", "stream:ttl", later)
	return []string{"stream:main", "stream:big", "stream:read", "stream:mkstream", "stream:trimmed", "stream:xdel", "stream:lastid", "stream:ttl"}
}

// streamDetails is what a stream holds beyond its entries, as text that
// differs only where the streams differ: XINFO STREAM (FULL from 6.0),
// XINFO GROUPS and CONSUMERS and XPENDING, without what the commands
// cannot reproduce (consumers' seen and active times, idle times, the
// radix tree's shape) and what version v does not know (v is the oldest
// of the servers and the rewrite's target). The PEL's idle times are
// returned apart, to compare with a tolerance.
func streamDetails(t *testing.T, c *dialer.Conn, key string, v redisproc.Version) (string, map[string]int64) {
	t.Helper()
	drop := []string{"seen-time", "active-time", "idle", "inactive", "radix-tree-keys", "radix-tree-nodes"}
	if !v.AtLeast(7, 0) {
		drop = append(drop, "entries-read", "lag", "max-deleted-entry-id", "entries-added", "recorded-first-entry-id")
	}
	var b strings.Builder
	info := do(t, c, "XINFO", "STREAM", key)
	fmt.Fprintf(&b, "stream %s\n", normalize(info, drop))
	if v.AtLeast(6, 0) {
		full := do(t, c, "XINFO", "STREAM", key, "FULL", "COUNT", "0")
		fmt.Fprintf(&b, "full %s\n", normalize(full, drop))
	}
	groups := do(t, c, "XINFO", "GROUPS", key)
	fmt.Fprintf(&b, "groups %s\n", normalize(groups, drop))
	idle := map[string]int64{}
	for _, g := range groups.Elems {
		name := field(g, "name")
		fmt.Fprintf(&b, "consumers of %s %s\n", name, normalize(do(t, c, "XINFO", "CONSUMERS", key, name), drop))
		fmt.Fprintf(&b, "pending summary of %s %s\n", name, do(t, c, "XPENDING", key, name))
		for _, p := range do(t, c, "XPENDING", key, name, "-", "+", "1000000").Elems {
			// id, consumer, idle ms, delivery count
			fmt.Fprintf(&b, "pending %s %s %s count %s\n", name, p.Elems[0].Text(), p.Elems[1].Text(), p.Elems[3].Text())
			idle[name+" "+p.Elems[0].Text()] = p.Elems[2].Int
		}
	}
	return b.String(), idle
}

// field returns the value of name in a reply of name, value pairs.
func field(v resp.Value, name string) string {
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if v.Elems[i].Text() == name {
			return v.Elems[i+1].Text()
		}
	}
	return ""
}

// normalize prints v without the pairs named in drop, in any array of
// name, value pairs inside it, and with those pairs sorted by name: each
// version lists XINFO's fields in its own order.
func normalize(v resp.Value, drop []string) string {
	return prune(v, drop).String()
}

func prune(v resp.Value, drop []string) resp.Value {
	if len(v.Elems) == 0 {
		return v
	}
	out := v
	out.Elems = nil
	if !isMap(v) {
		for _, e := range v.Elems {
			out.Elems = append(out.Elems, prune(e, drop))
		}
		return out
	}
	type pair struct {
		name  string
		value resp.Value
	}
	var pairs []pair
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if name := v.Elems[i].Text(); !slices.Contains(drop, name) {
			pairs = append(pairs, pair{name, prune(v.Elems[i+1], drop)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	for _, p := range pairs {
		out.Elems = append(out.Elems, resp.Value{Kind: resp.BulkString, Str: []byte(p.name)}, p.value)
	}
	return out
}

// isMap reports whether v looks like a RESP2 map: an even number of
// elements, each name in lower case letters and dashes.
func isMap(v resp.Value) bool {
	if len(v.Elems)%2 != 0 {
		return false
	}
	for i := 0; i < len(v.Elems); i += 2 {
		e := v.Elems[i]
		if e.Kind != resp.BulkString && e.Kind != resp.SimpleString || len(e.Str) == 0 {
			return false
		}
		for _, c := range e.Str {
			if (c < 'a' || c > 'z') && c != '-' {
				return false
			}
		}
	}
	return true
}

// checkStreams compares the stream details on both sides, as far as the
// oldest of the two servers and the target the rewrite was for know them.
func checkStreams(t *testing.T, src, dst *dialer.Conn, keys []string, versions ...redisproc.Version) {
	t.Helper()
	oldest := versions[0]
	for _, v := range versions {
		if !v.AtLeast(oldest.Major, oldest.Minor) {
			oldest = v
		}
	}
	for _, k := range keys {
		a, ai := streamDetails(t, src, k, oldest)
		b, bi := streamDetails(t, dst, k, oldest)
		if a != b {
			t.Errorf("stream %q differs:\nsource:\n%s\ntarget:\n%s", k, a, b)
			continue
		}
		for id, ms := range ai {
			// Same delivery time, read moments apart.
			if d := bi[id] - ms; d < -1000 || d > 1000 {
				t.Errorf("stream %q: pending %s idle %d ms on the source, %d on the target", k, id, ms, bi[id])
			}
		}
	}
}

// checkFieldTTLs compares the absolute expiry of every field.
func checkFieldTTLs(t *testing.T, src, dst *dialer.Conn, keys []string, wantNone bool) {
	t.Helper()
	for _, k := range keys {
		fields := do(t, src, "HKEYS", k)
		args := []string{"HPEXPIRETIME", k, "FIELDS", strconv.Itoa(len(fields.Elems))}
		for _, f := range fields.Elems {
			args = append(args, f.Text())
		}
		a, b := do(t, src, args...), do(t, dst, args...)
		if wantNone {
			for i, e := range b.Elems {
				if e.Int != -1 {
					t.Errorf("hash %q field %s: expiry %d on the target, want none", k, fields.Elems[i].Text(), e.Int)
				}
			}
			continue
		}
		withTTL := 0
		for _, e := range a.Elems {
			if e.Int > 0 {
				withTTL++
			}
		}
		if withTTL == 0 {
			t.Errorf("hash %q has no field TTL on the source", k)
		}
		if a.String() != b.String() {
			t.Errorf("hash %q field expiries differ:\nsource %s\ntarget %s", k, a, b)
		}
	}
}

func compareAll(t *testing.T, src, dst *redisproc.Server) *compare.Report {
	t.Helper()
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(), compare.Options{Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRoundTrip(t *testing.T) {
	src := redistest.Start(t)
	sc := redistest.Dial(t, src)
	sc.SetIOTimeout(time.Minute)
	d := fill(t, sc, src.Version)

	for _, tc := range []struct {
		name string
		o    rewrite.Options
	}{
		{"default chunks", rewrite.Options{}},
		{"small chunks", rewrite.Options{ChunkElements: 7, ChunkBytes: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := redistest.Start(t)
			dc := redistest.Dial(t, dst)
			dc.SetIOTimeout(time.Minute)
			// What the target holds is replaced, whatever its type.
			do(t, dc, "RPUSH", "list:small", "stale", "stale")
			do(t, dc, "RPUSH", "str:int", "wrong type")
			do(t, dc, "SADD", "set:big", "extra")
			do(t, dc, "HMSET", "hash:small", "stale", "field")
			if dst.Version.AtLeast(5, 0) {
				do(t, dc, "XADD", "stream:main", "9999999-0", "stale", "entry")
			}
			o := tc.o
			o.Target = dst.Version
			// Twice: a key synced again is replaced, not appended to.
			for range 2 {
				dropped, s := rewriteAll(t, src, dc, o)
				if len(dropped) != 0 {
					t.Errorf("dropped %v", dropped)
				}
				if tc.o.ChunkBytes == 1000 && (s.counts["APPEND"] < 2500 || s.counts["RPUSH"] < 5000/7) {
					t.Errorf("small chunks: %d APPEND, %d RPUSH", s.counts["APPEND"], s.counts["RPUSH"])
				}
			}
			if rep := compareAll(t, src, dst); !rep.Equal() || rep.Keys < 25 {
				t.Errorf("%d keys, differences:\n%v", rep.Keys, rep.Diffs)
			}
			checkStreams(t, sc, dc, d.streams, src.Version, dst.Version, o.Target)
			checkFieldTTLs(t, sc, dc, d.fieldTTLs, false)
			if v := do(t, dc, "LLEN", "list:small"); v.Int != 6 {
				t.Errorf("list:small has %d elements after two syncs, want 6", v.Int)
			}
		})
	}
}

// A target older than the server it runs on, as Options.Target says:
// the older commands and options are used, and what the older version
// cannot hold is dropped (with DropUnsupported) and reported.
func TestRoundTripOlderTarget(t *testing.T) {
	src := redistest.Start(t)
	sc := redistest.Dial(t, src)
	sc.SetIOTimeout(time.Minute)
	d := fill(t, sc, src.Version)
	for _, target := range []redisproc.Version{
		{Major: 7, Minor: 0, Patch: 15}, {Major: 6, Minor: 2, Patch: 16}, {Major: 5, Minor: 0, Patch: 14},
		{Major: 4, Minor: 0, Patch: 14}, {Major: 3, Minor: 2, Patch: 13},
	} {
		if !src.Version.AtLeast(target.Major, target.Minor) || src.Version == target {
			continue
		}
		t.Run(target.String(), func(t *testing.T) {
			dst := redistest.Start(t)
			dc := redistest.Dial(t, dst)
			dc.SetIOTimeout(time.Minute)
			o := rewrite.Options{Target: target, DropUnsupported: true, ChunkElements: 7}
			dropped, s := rewriteAll(t, src, dc, o)
			checkDropped(t, dropped, d, target)
			if !target.AtLeast(4, 0) && s.counts["HMSET"] == 0 {
				t.Error("no HMSET for a target before 4.0")
			}
			rep := compareAll(t, src, dst)
			checkMissingStreams(t, rep, d, target)
			if target.AtLeast(5, 0) {
				checkStreams(t, sc, dc, d.streams, src.Version, dst.Version, target)
			}
			checkFieldTTLs(t, sc, dc, d.fieldTTLs, true)
		})
	}
}

// checkDropped checks that exactly the keys the target cannot hold are
// reported dropped, with the reason.
func checkDropped(t *testing.T, dropped map[string]string, d data, target redisproc.Version) {
	t.Helper()
	want := map[string]string{}
	if !target.AtLeast(5, 0) {
		for _, k := range d.streams {
			want["0:"+k] = fmt.Sprintf("the whole key: a stream (target %s has no streams)", target)
		}
	}
	if !target.AtLeast(7, 4) && len(d.fieldTTLs) > 0 {
		want["0:hash:fttl:small"] = fmt.Sprintf("field TTLs of 3 fields (target %s has no hash field expiry)", target)
		want["0:hash:fttl:big"] = fmt.Sprintf("field TTLs of 150 fields (target %s has no hash field expiry)", target)
	}
	for k, w := range want {
		if dropped[k] != w {
			t.Errorf("key %s: dropped %q, want %q", k, dropped[k], w)
		}
	}
	for k, got := range dropped {
		if _, ok := want[k]; !ok {
			t.Errorf("key %s: dropped %q unexpectedly", k, got)
		}
	}
}

// checkMissingStreams checks that the only differences are the streams
// a target before 5.0 cannot hold.
func checkMissingStreams(t *testing.T, rep *compare.Report, d data, target redisproc.Version) {
	t.Helper()
	var missing []string
	for _, df := range rep.Diffs {
		if df.Kind == "missing" && slices.Contains(d.streams, df.Key) && !target.AtLeast(5, 0) {
			missing = append(missing, df.Key)
			continue
		}
		t.Errorf("difference: %v", df)
	}
	if !target.AtLeast(5, 0) && len(missing) != len(d.streams) {
		t.Errorf("missing streams %q, want all of %q", missing, d.streams)
	}
}

// TestRoundTripOtherTarget writes into another redis-server version, named
// by $RESYNC_TARGET_SERVER (e.g. a 7.4 source into a 6.2 target, whose
// RDB version cannot load the source's payloads).
func TestRoundTripOtherTarget(t *testing.T) {
	bin := os.Getenv(targetServerEnv)
	if bin == "" {
		t.Skipf("$%s is not set: no cross-version target", targetServerEnv)
	}
	src := redistest.Start(t)
	sc := redistest.Dial(t, src)
	sc.SetIOTimeout(time.Minute)
	d := fill(t, sc, src.Version)
	o := redistest.Options(t)
	o.Binary = bin
	dst := redistest.StartWith(t, o)
	dc := redistest.Dial(t, dst)
	dc.SetIOTimeout(time.Minute)
	t.Logf("source %s, target %s", src.Version, dst.Version)
	ro := rewrite.Options{Target: dst.Version, DropUnsupported: true, ChunkElements: 50, ChunkBytes: 64 << 10}
	dropped, _ := rewriteAll(t, src, dc, ro)
	checkDropped(t, dropped, d, dst.Version)
	rep := compareAll(t, src, dst)
	// Versions print scores their own way (shortest form from 7.2, %.17g
	// before; -0 as 0 on some): compare zsets by value.
	var others []compare.Diff
	for _, df := range rep.Diffs {
		if df.Kind == "value" && strings.HasPrefix(df.Key, "zset:") {
			checkZSet(t, sc, dc, df.Key)
			continue
		}
		others = append(others, df)
	}
	rep.Diffs = others
	checkMissingStreams(t, rep, d, dst.Version)
	if dst.Version.AtLeast(5, 0) {
		checkStreams(t, sc, dc, d.streams, src.Version, dst.Version, dst.Version)
	}
	if dst.Version.AtLeast(7, 4) {
		checkFieldTTLs(t, sc, dc, d.fieldTTLs, false)
	}
}

// A pending entry whose message was deleted from the stream cannot be
// reproduced: XCLAIM FORCE ignores an ID the stream does not hold. All
// the rest of the group is.
func TestStreamPendingOfDeletedMessage(t *testing.T) {
	redistest.RequireVersion(t, 5, 0, "introduced streams")
	src := redistest.Start(t)
	sc := redistest.Dial(t, src)
	for i := 1; i <= 5; i++ {
		do(t, sc, "XADD", "s", fmt.Sprintf("%d-0", i), "f", "v")
	}
	do(t, sc, "XGROUP", "CREATE", "s", "g", "0")
	do(t, sc, "XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
	do(t, sc, "XDEL", "s", "2-0", "4-0")
	dst := redistest.Start(t)
	dc := redistest.Dial(t, dst)
	rewriteAll(t, src, dc, rewrite.Options{Target: dst.Version})

	pel := func(c *dialer.Conn) []string {
		var ids []string
		for _, p := range do(t, c, "XPENDING", "s", "g", "-", "+", "100").Elems {
			ids = append(ids, p.Elems[0].Text())
		}
		return ids
	}
	if got, want := pel(sc), []string{"1-0", "2-0", "3-0", "4-0", "5-0"}; !slices.Equal(got, want) {
		t.Fatalf("source PEL %q, want %q", got, want)
	}
	if got, want := pel(dc), []string{"1-0", "3-0", "5-0"}; !slices.Equal(got, want) {
		t.Errorf("target PEL %q, want %q (the deleted messages' entries dropped)", got, want)
	}
	if rep := compareAll(t, src, dst); len(rep.Diffs) != 1 || rep.Diffs[0].Key != "s" {
		t.Errorf("differences %v, want only the pending count of s", rep.Diffs)
	}
}

// checkZSet compares a zset's members and scores as numbers.
func checkZSet(t *testing.T, src, dst *dialer.Conn, key string) {
	t.Helper()
	read := func(c *dialer.Conn) ([]string, []float64) {
		var members []string
		var scores []float64
		v := do(t, c, "ZRANGE", key, "0", "-1", "WITHSCORES")
		for i := 0; i+1 < len(v.Elems); i += 2 {
			f, err := strconv.ParseFloat(v.Elems[i+1].Text(), 64)
			if err != nil {
				t.Fatalf("zset %q: score %q: %v", key, v.Elems[i+1].Text(), err)
			}
			members, scores = append(members, v.Elems[i].Text()), append(scores, f)
		}
		return members, scores
	}
	am, as := read(src)
	bm, bs := read(dst)
	if !slices.Equal(am, bm) || !slices.Equal(as, bs) {
		t.Errorf("zset %q differs:\nsource %q %v\ntarget %q %v", key, am, as, bm, bs)
	}
}
