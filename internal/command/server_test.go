package command

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
)

// getKeysCases are commands of every key spec form, writes above all, for
// COMMAND GETKEYS; the key names are distinct so that the order shows.
var getKeysCases = []string{
	// One key, or a fixed range.
	"SET k v",
	"SET k v NX GET",
	"GET k",
	"GETDEL k",
	"GETEX k PERSIST",
	"APPEND k v",
	"INCR k",
	"SETRANGE k 0 v",
	"EXPIRE k 10",
	"PEXPIREAT k 1 NX",
	"RESTORE k 0 payload REPLACE ABSTTL",
	"HSET h f v",
	"LPUSH l a b",
	"SADD s m",
	"ZADD z 1 m",
	"XADD s * f v",
	"XADD s MAXLEN ~ 10 * f v",
	"XACK s g 1-1",
	"XCLAIM s g c 0 1-1",
	"XAUTOCLAIM s g c 0 0",
	"XTRIM s MAXLEN 10",
	"XSETID s 1-1",
	"BITFIELD k SET u8 0 1",
	"LCS a b",
	"RENAME src dst",
	"RENAMENX src dst",
	"SMOVE src dst m",
	"LMOVE src dst LEFT RIGHT",
	"BLMOVE src dst LEFT RIGHT 0",
	"RPOPLPUSH src dst",
	"BRPOPLPUSH src dst 0",
	"COPY src dst DB 1 REPLACE",
	"MOVE k 1",
	"ZRANGESTORE dst src 0 -1",
	"GEOSEARCHSTORE dst src FROMLONLAT 0 0 BYRADIUS 1 km",
	// To the end.
	"MSET a 1 b 2 c 3",
	"MSETNX a 1 b 2",
	"DEL a b c",
	"UNLINK a b",
	"EXISTS a b",
	"TOUCH a b",
	"BLPOP a b 0",
	"BZPOPMIN a b 0",
	"SUNIONSTORE dst a b",
	"SINTERSTORE dst a b",
	"SDIFFSTORE dst a b",
	"BITOP AND dst a b",
	"BITOP NOT dst a",
	"PFMERGE dst a b",
	"PFCOUNT a b",
	// A key count.
	"EVAL return 2 a b x",
	"EVALSHA 0123456789012345678901234567890123456789 1 a",
	"EVAL_RO return 1 a",
	"FCALL f 2 a b x",
	"FCALL_RO f 1 a",
	"ZUNIONSTORE dst 2 a b WEIGHTS 1 2",
	"ZINTERSTORE dst 2 a b AGGREGATE MAX",
	"ZDIFFSTORE dst 2 a b",
	"ZUNION 2 a b",
	"ZINTER 2 a b WITHSCORES",
	"ZDIFF 2 a b",
	"SINTERCARD 2 a b",
	"ZINTERCARD 2 a b LIMIT 5",
	"LMPOP 2 a b LEFT COUNT 2",
	"ZMPOP 2 a b MIN",
	"BLMPOP 0 2 a b RIGHT",
	"BZMPOP 1 2 a b MAX",
	// A keyword, or a parser of its own.
	"XREAD COUNT 1 STREAMS a b 0 0",
	"XREADGROUP GROUP g c COUNT 1 STREAMS a b > >",
	"XREADGROUP GROUP streams c NOACK STREAMS a >",
	"SORT src",
	"SORT src STORE dst",
	"SORT src BY w_* GET # LIMIT 0 5 ALPHA STORE dst",
	"SORT_RO src",
	"GEORADIUS src 0 0 1 km STORE dst",
	"GEORADIUS src 0 0 1 km STOREDIST dst",
	"GEORADIUSBYMEMBER src m 1 km STORE dst",
	"MIGRATE h 6379 k 0 1000",
	`MIGRATE h 6379 "" 0 1000 COPY REPLACE KEYS a b c`,
	`MIGRATE h 6379 "" 0 1000 AUTH pw KEYS a b`,
	// Subcommands.
	"XGROUP CREATE s g $ MKSTREAM",
	"XGROUP SETID s g 0",
	"XGROUP DESTROY s g",
	"XGROUP CREATECONSUMER s g c",
	"XGROUP DELCONSUMER s g c",
	"XINFO STREAM s",
	"OBJECT ENCODING k",
	"OBJECT FREQ k",
	"MEMORY USAGE k",
	// No keys: COMMAND GETKEYS refuses them, Keys finds none.
	"EVAL return 0",
	"PUBLISH ch m",
	"SPUBLISH ch m",
	"FLUSHALL ASYNC",
	"SWAPDB 0 1",
}

// TestGetKeysLikeServer checks that Keys finds the keys a real server's
// COMMAND GETKEYS finds, in the same order.
func TestGetKeysLikeServer(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "has every command of the list")
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	for _, line := range getKeysCases {
		args := cmd(line)
		strs := make([]string, len(args))
		for i, a := range args {
			strs[i] = string(a)
		}
		reply, err := c.Do(append([]string{"COMMAND", "GETKEYS"}, strs...)...)
		var want []string
		if err == nil {
			for _, e := range reply.Elems {
				want = append(want, string(e.Str))
			}
		} else if !strings.Contains(err.Error(), "no key arguments") && !strings.Contains(err.Error(), "Invalid arguments") {
			t.Errorf("COMMAND GETKEYS %s: %v", line, err)
			continue
		}
		idx, ok := Keys(args, nil)
		if !ok {
			t.Errorf("%s: not known", line)
		}
		var got []string
		for _, i := range idx {
			got = append(got, string(args[i]))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Keys finds %q, the server %q", line, got, want)
		}
	}
}

// serverDiffs are the known differences between the table (Redis 7.4)
// and older servers, by command: the release that brought the table's
// form, and what it changed. A server at least that recent must agree,
// and an older one must differ, so that the list stays true.
var serverDiffs = map[string]struct {
	since [2]int
	what  string
}{
	"zrank":                   {[2]int{7, 2}, "WITHSCORE made the arity -3"},
	"zrevrank":                {[2]int{7, 2}, "WITHSCORE made the arity -3"},
	"command|getkeys":         {[2]int{7, 2}, "a command without arguments is accepted: arity -3"},
	"command|getkeysandflags": {[2]int{7, 2}, "a command without arguments is accepted: arity -3"},
}

// TestTableLikeServer compares the table with the commands a real server
// lists (COMMAND): the WRITE flag, the arity and the key specs of every
// command both know.
func TestTableLikeServer(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "introduced key specs")
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	v := redistest.Version(t)
	reply, err := c.Do("COMMAND")
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[string]resp.Value{}
	var walk func([]resp.Value)
	walk = func(list []resp.Value) {
		for _, e := range list {
			if len(e.Elems) < 3 {
				t.Fatalf("COMMAND entry %v", e)
			}
			theirs[strings.ToLower(string(e.Elems[0].Str))] = e
			if len(e.Elems) > 9 {
				walk(e.Elems[9].Elems)
			}
		}
	}
	walk(reply.Elems)
	if len(theirs) < 200 {
		t.Fatalf("the server lists only %d commands", len(theirs))
	}
	compared := 0
	differs := map[string]string{}
	for i := range table {
		ours := &table[i]
		e, ok := theirs[ours.Name]
		if !ok {
			continue // a command of a later release
		}
		compared++
		write := false
		for _, f := range e.Elems[2].Elems {
			write = write || string(f.Str) == "write"
		}
		var d []string
		if write != ours.Write {
			d = append(d, fmt.Sprintf("write %v", write))
		}
		if int(e.Elems[1].Int) != ours.Arity {
			d = append(d, fmt.Sprintf("arity %d", e.Elems[1].Int))
		}
		if len(e.Elems) > 8 {
			if specs := serverKeySpecs(t, e.Elems[8]); !slices.Equal(specs, ours.Keys) {
				d = append(d, fmt.Sprintf("key specs %+v", specs))
			}
		}
		if len(d) > 0 {
			differs[ours.Name] = strings.Join(d, ", ")
		}
	}
	for name, d := range differs {
		if known, ok := serverDiffs[name]; !ok || v.AtLeast(known.since[0], known.since[1]) {
			t.Errorf("%s: redis-server %s has %s; the table %+v", name, v, d, *byName[name])
		}
	}
	for name, known := range serverDiffs {
		if _, ok := theirs[name]; ok && differs[name] == "" && !v.AtLeast(known.since[0], known.since[1]) {
			t.Errorf("%s: listed as differing from servers before %d.%d (%s), but redis-server %s does not",
				name, known.since[0], known.since[1], known.what, v)
		}
	}
	t.Logf("compared %d commands with redis-server %s", compared, v)
}

// serverKeySpecs converts the key specs of a COMMAND reply (RESP2: maps
// as arrays of name, value) to the table's form.
func serverKeySpecs(t *testing.T, v resp.Value) []KeySpec {
	var out []KeySpec
	for _, e := range v.Elems {
		m := fields(e)
		var k KeySpec
		for _, f := range m["flags"].Elems {
			switch string(f.Str) {
			case "RO":
				k.ReadOnly = true
			case "incomplete":
				k.Incomplete = true
			case "not_key":
				k.NotKey = true
			}
		}
		bs, fk := fields(m["begin_search"]), fields(m["find_keys"])
		bspec, fspec := fields(bs["spec"]), fields(fk["spec"])
		switch string(bs["type"].Str) {
		case "index":
			k.Begin, k.Index = BeginIndex, int(bspec["index"].Int)
		case "keyword":
			k.Begin, k.Keyword, k.StartFrom = BeginKeyword, string(bspec["keyword"].Str), int(bspec["startfrom"].Int)
		}
		switch string(fk["type"].Str) {
		case "range":
			k.Find, k.LastKey, k.Step, k.Limit = FindRange, int(fspec["lastkey"].Int), int(fspec["keystep"].Int), int(fspec["limit"].Int)
		case "keynum":
			k.Find, k.KeyNumIdx, k.FirstKey, k.Step = FindKeyNum, int(fspec["keynumidx"].Int), int(fspec["firstkey"].Int), int(fspec["keystep"].Int)
		}
		out = append(out, k)
	}
	return out
}

func fields(v resp.Value) map[string]resp.Value {
	m := map[string]resp.Value{}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[string(v.Elems[i].Str)] = v.Elems[i+1]
	}
	return m
}
