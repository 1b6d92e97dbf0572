package repair_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/repair"
	"github.com/resync/resync/internal/resp"
)

const buildDir = "/work/redis-builds/bin/"

// do runs one command and fails the test on an error reply.
func do(t *testing.T, c *dialer.Conn, args ...string) resp.Value {
	t.Helper()
	v, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return v
}

// startBinary starts a server of a specific build, skipping the test when
// the build is missing.
func startBinary(t *testing.T, bin string) *redisproc.Server {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s: %v", bin, err)
	}
	o := redistest.Options(t)
	o.Binary = bin
	return redistest.StartWith(t, o)
}

// fill writes one key of every type the server holds into db, with a
// prefix, and returns their names. The stream has a consumer group with
// a consumer and pending entries.
func fill(t *testing.T, c *dialer.Conn, v redisproc.Version, db int, prefix string) []string {
	t.Helper()
	do(t, c, "SELECT", strconv.Itoa(db))
	p := func(s string) string { return prefix + s }
	do(t, c, "SET", p("str"), "hello "+prefix)
	do(t, c, "SET", p("num"), "12345")
	do(t, c, "RPUSH", p("list"), "a", "b", "c", "a")
	do(t, c, "SADD", p("set"), "x", "y", "z")
	do(t, c, "SADD", p("intset"), "1", "2", "3")
	do(t, c, "ZADD", p("zset"), "1.5", "m1", "-2", "m2", "3", "m3")
	do(t, c, "HMSET", p("hash"), "f1", "v1", "f2", "v2")
	// Not ziplist-encoded: long values.
	long := strings.Repeat("L", 100)
	do(t, c, "HMSET", p("bighash"), "f1", long, "f2", long+"2")
	do(t, c, "SET", p("ttl"), "expires")
	do(t, c, "PEXPIRE", p("ttl"), "100000")
	keys := []string{p("str"), p("num"), p("list"), p("set"), p("intset"), p("zset"), p("hash"), p("bighash"), p("ttl")}
	if v.AtLeast(5, 0) {
		s := p("stream")
		for i := range 5 {
			do(t, c, "XADD", s, fmt.Sprintf("%d-1", i+1), "field", strconv.Itoa(i))
		}
		do(t, c, "XGROUP", "CREATE", s, "grp", "0")
		do(t, c, "XREADGROUP", "GROUP", "grp", "alice", "COUNT", "3", "STREAMS", s, ">")
		do(t, c, "XACK", s, "grp", "1-1")
		keys = append(keys, s)
	}
	return keys
}

// state renders a key's type, value and whether it has a TTL, in a form
// two servers of any version give alike, and returns its PTTL apart.
func state(t *testing.T, c *dialer.Conn, key string) (string, int64) {
	t.Helper()
	typ := do(t, c, "TYPE", key).Text()
	pttl := do(t, c, "PTTL", key).Int
	var val string
	switch typ {
	case "none":
	case "string":
		val = do(t, c, "GET", key).Text()
	case "list":
		val = do(t, c, "LRANGE", key, "0", "-1").String()
	case "set":
		val = strings.Join(sorted(do(t, c, "SMEMBERS", key)), ",")
	case "zset":
		val = do(t, c, "ZRANGE", key, "0", "-1", "WITHSCORES").String()
	case "hash":
		v := do(t, c, "HGETALL", key)
		var pairs []string
		for i := 0; i+1 < len(v.Elems); i += 2 {
			pairs = append(pairs, v.Elems[i].Text()+"="+v.Elems[i+1].Text())
		}
		slices.Sort(pairs)
		val = strings.Join(pairs, ",")
	case "stream":
		val = do(t, c, "XRANGE", key, "-", "+").String()
		for _, g := range do(t, c, "XINFO", "GROUPS", key).Elems {
			f := fields(g)
			val += fmt.Sprintf(" group %s consumers=%s pending=%s last=%s", f["name"], f["consumers"], f["pending"], f["last-delivered-id"])
			for _, p := range do(t, c, "XPENDING", key, f["name"], "-", "+", "100").Elems {
				val += fmt.Sprintf(" pel %s@%s", p.Elems[0].Text(), p.Elems[1].Text())
			}
		}
	default:
		t.Fatalf("key %q: type %s", key, typ)
	}
	return fmt.Sprintf("%s %s ttl=%v", typ, val, pttl >= 0), pttl
}

func sorted(v resp.Value) []string {
	var out []string
	for _, e := range v.Elems {
		out = append(out, e.Text())
	}
	slices.Sort(out)
	return out
}

// fields reads a flat field/value reply such as XINFO's.
func fields(v resp.Value) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[v.Elems[i].Text()] = v.Elems[i+1].Text()
	}
	return m
}

// sameKeys checks that each key of source db is in target db tdb alike,
// TTLs within 2 s.
func sameKeys(t *testing.T, src, dst *dialer.Conn, db, tdb int, keys []string) {
	t.Helper()
	for _, k := range keys {
		do(t, src, "SELECT", strconv.Itoa(db))
		want, wantTTL := state(t, src, k)
		do(t, dst, "SELECT", strconv.Itoa(tdb))
		got, gotTTL := state(t, dst, k)
		if got != want {
			t.Errorf("db %d key %q:\n source %s\n target %s", tdb, k, want, got)
		}
		if d := gotTTL - wantTTL; d < -2000 || d > 2000 {
			t.Errorf("db %d key %q: PTTL %d on the target, %d on the source", tdb, k, gotTTL, wantTTL)
		}
	}
}

// calls returns how many times a server ran a command (INFO commandstats).
func calls(t *testing.T, c *dialer.Conn, cmd string) int {
	t.Helper()
	for line := range strings.Lines(do(t, c, "INFO", "commandstats").Text()) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if ok {
			n, _, _ := strings.Cut(rest, ",")
			v, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("commandstats line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func keysOf(db int, names []string) []repair.Key {
	var out []repair.Key
	for _, n := range names {
		out = append(out, repair.Key{DB: db, Key: []byte(n)})
	}
	return out
}

func options(src, dst *redisproc.Server) repair.Options {
	return repair.Options{Source: src.DialOptions(), Target: dst.DialOptions()}
}

func TestCopyEveryType(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	k0 := fill(t, sc, src.Version, 0, "")
	k2 := fill(t, sc, src.Version, 2, "two:")

	// The target: db0 holds every key, wrong; db2 holds none of them.
	do(t, dc, "SELECT", "0")
	for i, k := range k0 {
		switch i % 3 {
		case 0: // another type
			do(t, dc, "RPUSH", k, "wrong")
		case 1: // another value of the same type, where it is easy
			do(t, dc, "SET", k, "wrong")
		case 2: // with a TTL the source does not have, or none
			do(t, dc, "SET", k, "wrong")
			do(t, dc, "PEXPIRE", k, "500000")
		}
	}
	do(t, dc, "SET", "untouched", "target's own")
	do(t, dc, "SELECT", "2")
	do(t, dc, "SET", "two:other", "target's own")

	keys := append(keysOf(0, k0), keysOf(2, k2)...)
	sets := calls(t, dc, "set")
	got, err := repair.Copy(context.Background(), options(src, dst), keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := (repair.Counts{Copied: int64(len(keys))}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	sameKeys(t, sc, dc, 0, 0, k0)
	sameKeys(t, sc, dc, 2, 2, k2)
	// A plain string goes as SET, the rest as RESTORE.
	restores, plain := calls(t, dc, "restore"), calls(t, dc, "set")-sets
	if restores+plain != len(keys) || plain == 0 || restores == 0 {
		t.Errorf("the target ran RESTORE %d times and SET %d, want %d in all (one per key), some of each", restores, plain, len(keys))
	}

	// The TTL is absolute and kept: PEXPIRE 100000 on the source.
	do(t, dc, "SELECT", "0")
	if pttl := do(t, dc, "PTTL", "ttl").Int; pttl < 98000 || pttl > 100000 {
		t.Errorf("PTTL of ttl on the target is %d, want about 100000", pttl)
	}
	// Keys not named are left alone.
	if v := do(t, dc, "GET", "untouched").Text(); v != "target's own" {
		t.Errorf("untouched = %q", v)
	}
	do(t, dc, "SELECT", "2")
	if v := do(t, dc, "GET", "two:other").Text(); v != "target's own" {
		t.Errorf("two:other = %q", v)
	}
}

func TestCopyDeletesKeysGoneFromSource(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	do(t, sc, "SET", "kept", "v")
	do(t, dc, "SET", "gone", "stale")
	do(t, dc, "SELECT", "1")
	do(t, dc, "SET", "gone", "stale in db1")

	keys := []repair.Key{{DB: 0, Key: []byte("kept")}, {DB: 0, Key: []byte("gone")}, {DB: 0, Key: []byte("gone nowhere")}}
	got, err := repair.Copy(context.Background(), options(src, dst), keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := (repair.Counts{Copied: 1, Deleted: 1}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	do(t, dc, "SELECT", "0")
	if n := do(t, dc, "EXISTS", "gone").Int; n != 0 {
		t.Errorf("gone is still on the target")
	}
	if v := do(t, dc, "GET", "kept").Text(); v != "v" {
		t.Errorf("kept = %q", v)
	}
	do(t, dc, "SELECT", "1")
	if n := do(t, dc, "EXISTS", "gone").Int; n != 1 {
		t.Errorf("gone was deleted from db1, which the key does not map to")
	}
}

func TestCopyMapDB(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	do(t, sc, "SELECT", "1")
	do(t, sc, "HSET", "h", "f", "v")
	do(t, sc, "PEXPIRE", "h", "100000")
	do(t, dc, "SELECT", "3")
	do(t, dc, "SET", "gone", "stale")

	o := options(src, dst)
	// Every db selected, 1 mapped to 3, would merge db3 into db3: select 1 alone.
	o.Filter = filter.Config{DBs: []int{1}, MapDB: map[int]int{1: 3}}
	got, err := repair.Copy(context.Background(), o, []repair.Key{{DB: 1, Key: []byte("h")}, {DB: 1, Key: []byte("gone")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (repair.Counts{Copied: 1, Deleted: 1}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	sameKeys(t, sc, dc, 1, 3, []string{"h", "gone"})
	do(t, dc, "SELECT", "1")
	if n := do(t, dc, "DBSIZE").Int; n != 0 {
		t.Errorf("target db1 holds %d keys, want none: db1 maps to db3", n)
	}

	// A key of a db the filter does not select is the caller's mistake.
	if _, err := repair.Copy(context.Background(), o, []repair.Key{{DB: 0, Key: []byte("h")}}); err == nil || !strings.Contains(err.Error(), "not selected") {
		t.Errorf("copy from an unselected db: %v, want an error", err)
	}
}

func TestCopyBigKey(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	const fields, perCommand = 300_000, 1000
	w := sc.Writer()
	for i := 0; i < fields; i += perCommand {
		args := []string{"HMSET", "big"} // HSET takes one field before 4.0
		for j := i; j < i+perCommand; j++ {
			args = append(args, "field:"+strconv.Itoa(j), "value:"+strconv.Itoa(j))
		}
		w.WriteCommandStrings(args...)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < fields; i += perCommand {
		if _, err := sc.Receive("HMSET"); err != nil {
			t.Fatal(err)
		}
	}
	do(t, sc, "PEXPIRE", "big", "100000")
	do(t, dc, "SET", "big", "small and wrong")

	got, err := repair.Copy(context.Background(), options(src, dst), []repair.Key{{DB: 0, Key: []byte("big")}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Copied != 1 {
		t.Errorf("copied %d, want 1", got.Copied)
	}
	if n := do(t, dc, "HLEN", "big").Int; n != fields {
		t.Errorf("HLEN %d on the target, want %d", n, fields)
	}
	for _, i := range []int{0, 1, 123_456, fields - 1} {
		f := strconv.Itoa(i)
		if v := do(t, dc, "HGET", "big", "field:"+f).Text(); v != "value:"+f {
			t.Errorf("field:%s = %q", f, v)
		}
	}
	if pttl := do(t, dc, "PTTL", "big").Int; pttl < 98000 || pttl > 100000 {
		t.Errorf("PTTL %d on the target, want about 100000", pttl)
	}
}

// TestCopyToOlderTarget copies into a target whose RDB version cannot load
// the source's payloads: the keys are rewritten as commands.
func TestCopyToOlderTarget(t *testing.T) {
	bin := os.Getenv("RESYNC_TARGET_SERVER")
	if bin == "" {
		bin = buildDir + "redis-server-6.2.16"
	}
	src := redistest.Start(t)
	redistest.RequireVersion(t, 7, 0, "a 6.2 target must be older than the source")
	dst := startBinary(t, bin)
	if dst.Version.AtLeast(src.Version.Major, src.Version.Minor) {
		t.Skipf("target %s is not older than source %s", dst.Version, src.Version)
	}
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	k0 := fill(t, sc, src.Version, 0, "")
	k1 := fill(t, sc, src.Version, 1, "one:")
	do(t, dc, "SET", "list", "wrong type")
	do(t, dc, "SET", "str", "wrong value")

	keys := append(keysOf(0, k0), keysOf(1, k1)...)
	got, err := repair.Copy(context.Background(), options(src, dst), keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := (repair.Counts{Copied: int64(len(keys))}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	sameKeys(t, sc, dc, 0, 0, k0)
	sameKeys(t, sc, dc, 1, 1, k1)
	if n := calls(t, dc, "restore"); n != 0 {
		t.Errorf("the target ran RESTORE %d times: it cannot load the source's payloads", n)
	}
	if n := calls(t, dc, "rpush"); n == 0 {
		t.Error("the target ran no RPUSH: the list was not rewritten as commands")
	}
}

// TestCopyFromOldSource copies payloads of an old RDB version (2.8: RDB 6)
// into the default server, which RESTOREs them.
func TestCopyFromOldSource(t *testing.T) {
	src := startBinary(t, buildDir+"redis-server-2.8.24")
	dst := redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	k0 := fill(t, sc, src.Version, 0, "")
	got, err := repair.Copy(context.Background(), options(src, dst), keysOf(0, k0))
	if err != nil {
		t.Fatal(err)
	}
	if got.Copied != int64(len(k0)) {
		t.Errorf("copied %d, want %d", got.Copied, len(k0))
	}
	sameKeys(t, sc, dc, 0, 0, k0)
}

func TestDelete(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	dc := redistest.Dial(t, dst)
	do(t, dc, "SET", "a", "1")
	do(t, dc, "RPUSH", "b", "1")
	do(t, dc, "SET", "stays", "1")
	do(t, dc, "SET", "resync:checkpoint", "1")
	do(t, dc, "SELECT", "5")
	do(t, dc, "SADD", "c", "1")

	o := options(src, dst)
	keys := []repair.Key{{DB: 0, Key: []byte("a")}, {DB: 0, Key: []byte("b")}, {DB: 5, Key: []byte("c")}, {DB: 0, Key: []byte("absent")}}
	got, err := repair.Delete(context.Background(), o, keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := (repair.Counts{Deleted: 3}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	do(t, dc, "SELECT", "5")
	if n := do(t, dc, "DBSIZE").Int; n != 0 {
		t.Errorf("db5 holds %d keys, want none", n)
	}
	do(t, dc, "SELECT", "0")
	if v := do(t, dc, "KEYS", "*"); !slices.Equal(sorted(v), []string{"resync:checkpoint", "stays"}) {
		t.Errorf("db0 holds %s, want resync:checkpoint and stays", v)
	}

	// resync's own keys are never deleted.
	if _, err := repair.Delete(context.Background(), o, []repair.Key{{DB: 0, Key: []byte("stays")}, {DB: 0, Key: []byte("resync:checkpoint")}}); err == nil {
		t.Error("deleting a key under the reserved prefix: no error")
	}
	if n := do(t, dc, "DBSIZE").Int; n != 2 {
		t.Errorf("a refused Delete deleted keys: db0 holds %d, want 2", n)
	}
}

// TestCopyMany copies more keys than one round reads, across dbs, and
// keys whose names take each form of RDB's length encoding.
func TestCopyMany(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	var keys []repair.Key
	odd := []string{"", "\x00\xff\r\n binary", strings.Repeat("k", 63), strings.Repeat("k", 64),
		strings.Repeat("m", 16383), strings.Repeat("m", 16384), strings.Repeat("z", 70000)}
	do(t, sc, "SELECT", "3")
	for i, k := range odd {
		do(t, sc, "SET", k, "odd"+strconv.Itoa(i))
		keys = append(keys, repair.Key{DB: 3, Key: []byte(k)})
	}
	for db := range 2 {
		do(t, sc, "SELECT", strconv.Itoa(db))
		args := []string{"MSET"}
		for i := range 1000 {
			k := fmt.Sprintf("k%d", i)
			args = append(args, k, fmt.Sprintf("v%d-%d", db, i))
			keys = append(keys, repair.Key{DB: db, Key: []byte(k)})
		}
		do(t, sc, args...)
	}
	got, err := repair.Copy(context.Background(), options(src, dst), keys)
	if err != nil {
		t.Fatal(err)
	}
	if got.Copied != int64(len(keys)) {
		t.Errorf("copied %d, want %d", got.Copied, len(keys))
	}
	do(t, dc, "SELECT", "3")
	for i, k := range odd {
		if v := do(t, dc, "GET", k).Text(); v != "odd"+strconv.Itoa(i) {
			t.Errorf("key of %d bytes = %q", len(k), v)
		}
	}
	for db := range 2 {
		do(t, dc, "SELECT", strconv.Itoa(db))
		if n := do(t, dc, "DBSIZE").Int; n != 1000 {
			t.Errorf("db%d holds %d keys, want 1000", db, n)
		}
		if v := do(t, dc, "GET", "k999").Text(); v != fmt.Sprintf("v%d-999", db) {
			t.Errorf("db%d k999 = %q", db, v)
		}
	}
}
