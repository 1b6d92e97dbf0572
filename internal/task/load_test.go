package task_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// loadCommand is a write the replication stream carries, from a version.
type loadCommand struct {
	major, minor int
	args         func(i int) []string
}

func cmd(major, minor int, f func(i int) []string) loadCommand { return loadCommand{major, minor, f} }

func s(parts ...string) []string { return parts }

// loadCommands covers the writes the issue lists; i makes each round
// touch its own keys as well as shared ones.
func loadCommands() []loadCommand {
	n := func(i int) string { return strconv.Itoa(i) }
	return []loadCommand{
		cmd(2, 8, func(i int) []string { return s("SET", "str:"+n(i), "v"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("APPEND", "str:"+n(i), "-x") }),
		cmd(2, 8, func(i int) []string { return s("SETRANGE", "str:"+n(i), "1", "ZZ") }),
		cmd(2, 8, func(i int) []string { return s("SETBIT", "bits", n(i*7), "1") }),
		cmd(2, 8, func(i int) []string { return s("BITOP", "OR", "bits2", "bits", "bits") }),
		cmd(2, 8, func(i int) []string { return s("INCR", "counter") }),
		cmd(2, 8, func(i int) []string { return s("INCRBY", "counter", "5") }),
		cmd(2, 8, func(i int) []string { return s("DECR", "counter") }),
		cmd(2, 8, func(i int) []string { return s("DECRBY", "counter", "2") }),
		cmd(2, 8, func(i int) []string { return s("INCRBYFLOAT", "float", "1.5") }),
		cmd(2, 8, func(i int) []string { return s("GETSET", "gs", n(i)) }),
		cmd(2, 8, func(i int) []string { return s("SETNX", "nx:"+n(i%3), n(i)) }),
		cmd(2, 8, func(i int) []string { return s("SETEX", "ex:"+n(i), "1000", "v") }),
		cmd(2, 8, func(i int) []string { return s("PSETEX", "px:"+n(i), "1000000", "v") }),
		cmd(2, 8, func(i int) []string { return s("MSET", "m1", n(i), "m2", n(i+1)) }),
		cmd(2, 8, func(i int) []string { return s("MSETNX", "mnx:"+n(i), "1", "mnx2:"+n(i), "2") }),
		cmd(2, 8, func(i int) []string { return s("EXPIRE", "str:"+n(i), "1000") }),
		cmd(2, 8, func(i int) []string { return s("PEXPIRE", "m1", "1000000") }),
		cmd(2, 8, func(i int) []string { return s("EXPIREAT", "m2", "4102444800") }),
		cmd(2, 8, func(i int) []string { return s("PEXPIREAT", "gs", "4102444800123") }),
		cmd(2, 8, func(i int) []string { return s("PERSIST", "m1") }),
		cmd(2, 8, func(i int) []string { return s("RPUSH", "list", "a"+n(i), "b"+n(i), "c"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("LPUSH", "list", "h"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("LPUSHX", "list", "x"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("RPUSHX", "list", "y"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("LINSERT", "list", "BEFORE", "a"+n(i), "ins") }),
		cmd(2, 8, func(i int) []string { return s("LSET", "list", "0", "set"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("LREM", "list", "1", "ins") }),
		cmd(2, 8, func(i int) []string { return s("LPOP", "list") }),
		cmd(2, 8, func(i int) []string { return s("RPOP", "list") }),
		cmd(2, 8, func(i int) []string { return s("RPOPLPUSH", "list", "list2") }),
		cmd(2, 8, func(i int) []string { return s("BRPOPLPUSH", "list", "list2", "1") }),
		cmd(2, 8, func(i int) []string { return s("BLPOP", "list2", "1") }),
		cmd(2, 8, func(i int) []string { return s("BRPOP", "list2", "1") }),
		cmd(2, 8, func(i int) []string { return s("LTRIM", "list", "0", "50") }),
		cmd(2, 8, func(i int) []string { return s("SADD", "set", "m"+n(i), "n"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("SREM", "set", "n"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("SMOVE", "set", "set2", "m"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("SPOP", "set2") }),
		cmd(2, 8, func(i int) []string { return s("SADD", "set3", "m"+n(i%5)) }),
		cmd(2, 8, func(i int) []string { return s("SUNIONSTORE", "su", "set", "set3") }),
		cmd(2, 8, func(i int) []string { return s("SINTERSTORE", "si", "set", "set3") }),
		cmd(2, 8, func(i int) []string { return s("SDIFFSTORE", "sd", "set", "set3") }),
		cmd(2, 8, func(i int) []string { return s("ZADD", "zset", n(i), "m"+n(i), "0.5", "half") }),
		cmd(2, 8, func(i int) []string { return s("ZINCRBY", "zset", "2", "half") }),
		cmd(2, 8, func(i int) []string { return s("ZREM", "zset", "m"+n(i-3)) }),
		cmd(2, 8, func(i int) []string { return s("ZADD", "zlex", "0", "a"+n(i), "0", "b"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("ZREMRANGEBYLEX", "zlex", "[b", "(c") }),
		cmd(2, 8, func(i int) []string { return s("ZREMRANGEBYRANK", "zset", "0", "0") }),
		cmd(2, 8, func(i int) []string { return s("ZREMRANGEBYSCORE", "zset", "-inf", "1") }),
		cmd(2, 8, func(i int) []string { return s("ZUNIONSTORE", "zu", "2", "zset", "zlex") }),
		cmd(2, 8, func(i int) []string { return s("ZINTERSTORE", "zi", "2", "zset", "zlex") }),
		cmd(2, 8, func(i int) []string { return s("HSET", "hash", "f"+n(i), n(i)) }),
		cmd(2, 8, func(i int) []string { return s("HMSET", "hash", "a", n(i), "b", n(i)) }),
		cmd(2, 8, func(i int) []string { return s("HSETNX", "hash", "nx", n(i)) }),
		cmd(2, 8, func(i int) []string { return s("HINCRBY", "hash", "cnt", "3") }),
		cmd(2, 8, func(i int) []string { return s("HINCRBYFLOAT", "hash", "flt", "0.25") }),
		cmd(2, 8, func(i int) []string { return s("HDEL", "hash", "f"+n(i-2)) }),
		cmd(2, 8, func(i int) []string { return s("PFADD", "hll", "e"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("PFADD", "hll2", "x"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("PFMERGE", "hll3", "hll", "hll2") }),
		cmd(3, 2, func(i int) []string { return s("GEOADD", "geo", "13.36", "38.11", "p"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("RENAME", "str:"+n(i), "renamed:"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("RENAMENX", "renamed:"+n(i), "rnx:"+n(i)) }),
		cmd(2, 8, func(i int) []string { return s("DEL", "nx:"+n(i%3)) }),
		cmd(4, 0, func(i int) []string { return s("UNLINK", "ex:"+n(i-1)) }),
		cmd(2, 8, func(i int) []string { return s("MULTI") }),
		cmd(2, 8, func(i int) []string { return s("INCR", "tx") }),
		cmd(2, 8, func(i int) []string { return s("RPUSH", "txlist", n(i)) }),
		cmd(2, 8, func(i int) []string { return s("EXEC") }),
		cmd(2, 8, func(i int) []string {
			return s("EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return 1", "1", "eval:"+n(i), n(i))
		}),
		cmd(2, 8, func(i int) []string {
			return s("EVALSHA", "7e2b3c0b8c1a5c7d1a2e7c2b4f6c5a4d3e2f1a0b", "0") // replaced below by the real SHA
		}),
		cmd(2, 8, func(i int) []string { return s("SELECT", "4") }),
		cmd(2, 8, func(i int) []string { return s("SET", "db4:"+n(i), "v") }),
		cmd(2, 8, func(i int) []string { return s("MOVE", "db4:"+n(i), "0") }),
		cmd(2, 8, func(i int) []string { return s("SELECT", "0") }),
		cmd(4, 0, func(i int) []string { return s("SWAPDB", "5", "6") }),
		cmd(5, 0, func(i int) []string { return s("XADD", "stream", "*", "f", n(i)) }),
		cmd(5, 0, func(i int) []string { return s("XADD", "stream2", "MAXLEN", "5", "*", "g", n(i)) }),
		cmd(5, 0, func(i int) []string { return s("XTRIM", "stream", "MAXLEN", "30") }),
		cmd(5, 0, func(i int) []string {
			return s("XREADGROUP", "GROUP", "grp", "c1", "COUNT", "2", "STREAMS", "stream", ">")
		}),
		cmd(5, 0, func(i int) []string { return s("XCLAIM", "stream", "grp", "c2", "0", "0-1") }),
		cmd(6, 2, func(i int) []string { return s("XAUTOCLAIM", "stream", "grp", "c3", "0", "0-0", "COUNT", "1") }),
		cmd(5, 0, func(i int) []string { return s("XDEL", "stream", "0-1") }),
		cmd(5, 0, func(i int) []string { return s("XSETID", "stream3", "99999999999999-0") }),
		cmd(7, 0, func(i int) []string {
			return s("FUNCTION", "LOAD", "REPLACE", "#!lua name=loadlib\nredis.register_function('f"+n(i%2)+"', function(k, a) return 1 end)")
		}),
		cmd(2, 8, func(i int) []string { return s("SCRIPT", "LOAD", "return "+n(i)) }),
	}
}

// runLoad issues rounds of every command the server knows on one
// connection. Errors the source itself answers (a BRPOP on an empty list
// timing out, XSETID on a missing key) are fine: the source does not
// replicate what it refused.
func runLoad(t *testing.T, src *redisproc.Server, rounds int) {
	t.Helper()
	v := redistest.Version(t)
	c := redistest.Dial(t, src)
	script := "redis.call('INCR', 'evalsha:n') return 1"
	sha, err := c.Do("SCRIPT", "LOAD", script)
	if err != nil {
		t.Fatal(err)
	}
	if v.AtLeast(5, 0) {
		c.Do("XADD", "stream", "0-1", "f", "0")
		c.Do("XGROUP", "CREATE", "stream", "grp", "0")
		c.Do("SELECT", "5")
		c.Do("SET", "in5", "five")
		c.Do("SELECT", "0")
	}
	for i := 1; i <= rounds; i++ {
		for _, lc := range loadCommands() {
			if !v.AtLeast(lc.major, lc.minor) {
				continue
			}
			args := lc.args(i)
			if args[0] == "EVALSHA" {
				args[1] = sha.Text()
			}
			if _, err := c.Do(args...); err != nil && !strings.Contains(err.Error(), "ERR") && !strings.Contains(err.Error(), "NOSCRIPT") {
				t.Fatalf("%q: %v", args, err)
			}
		}
	}
	_ = fmt.Sprint
}

// A full sync writes plain strings with SET (PXAT for an expiry) and
// the rest with RESTORE; a string with LFU hints takes RESTORE, which
// carries them. Every encoding of a string arrives equal.
func TestFullSyncStringsBySet(t *testing.T) {
	redistest.RequireVersion(t, 6, 2, "introduced SET PXAT")
	src := redistest.Start(t)
	c := redistest.Dial(t, src)
	doAll(t, c,
		s("SET", "plain", "value"), s("SET", "int8", "7"), s("SET", "int16", "-3000"), s("SET", "int32", "123456789"),
		s("SET", "lzf", strings.Repeat("abc", 1000)), s("SET", "empty", ""),
		s("SET", "ttl", "v"), s("PEXPIREAT", "ttl", "4102444800123"),
		s("RPUSH", "list", "a"), s("HSET", "hash", "f", "v"),
	)
	dst := redistest.Start(t)
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	assertEqual(t, src, dst)
	if ms := redistest.Do(t, dst, "PEXPIRETIME", "ttl"); ms != "4102444800123" {
		t.Fatalf("the string's expiry on the target: %s", ms)
	}
	stats := redistest.Do(t, dst, "INFO", "commandstats")
	if n := cmdCalls(stats, "set"); n < 7 {
		t.Fatalf("%d SETs for 7 strings:\n%s", n, stats)
	}
	if n := cmdCalls(stats, "restore"); n != 2 {
		t.Fatalf("%d RESTOREs for the list and the hash, want 2", n)
	}

	// With LFU counters in the snapshot, RESTORE carries them.
	lfu := redistest.Start(t, "maxmemory-policy allkeys-lfu")
	doAll(t, redistest.Dial(t, lfu), s("SET", "hot", "v"), s("SET", "cold", "w"))
	for range 200 {
		redistest.Do(t, lfu, "GET", "hot")
	}
	want := redistest.Do(t, lfu, "OBJECT", "FREQ", "hot")
	dst2 := redistest.Start(t, "maxmemory-policy allkeys-lfu")
	r2 := start(t, lfu, dst2)
	r2.waitState(t, task.StateSynchronizing)
	if got := redistest.Do(t, dst2, "OBJECT", "FREQ", "hot"); got != want || want == "0" {
		t.Fatalf("the hot key's LFU counter: %s on the target, %s on the source", got, want)
	}
	if n := cmdCalls(redistest.Do(t, dst2, "INFO", "commandstats"), "restore"); n != 2 {
		t.Fatalf("%d RESTOREs for two strings with LFU counters, want 2", n)
	}
}

// cmdCalls reads a command's calls from INFO commandstats.
func cmdCalls(info, name string) int {
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}
