package command

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// cmd splits a command written with spaces; `""` stands for an empty
// argument.
func cmd(s string) [][]byte {
	var args [][]byte
	for _, f := range strings.Fields(s) {
		if f == `""` {
			f = ""
		}
		args = append(args, []byte(f))
	}
	return args
}

func TestKeys(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int // nil: no keys
		ok   bool  // the command is known
	}{
		// A fixed range.
		{"SET k v", []int{1}, true},
		{"set k v EX 10 GET", []int{1}, true},
		{"SeT k v", []int{1}, true},
		{"GET k", []int{1}, true},
		{"LCS a b", []int{1, 2}, true},
		{"RENAME a b", []int{1, 2}, true},
		{"SMOVE a b m", []int{1, 2}, true},
		{"LMOVE a b LEFT RIGHT", []int{1, 2}, true},
		{"BLMOVE a b LEFT RIGHT 0", []int{1, 2}, true},
		{"RPOPLPUSH a b", []int{1, 2}, true},
		{"COPY a b DB 1 REPLACE", []int{1, 2}, true},
		{"MOVE k 1", []int{1}, true},
		{"BITOP AND d a b", []int{2, 3, 4}, true},
		{"PFMERGE d a b", []int{1, 2, 3}, true},
		{"SUNIONSTORE d a b", []int{1, 2, 3}, true},
		{"ZRANGESTORE d s 0 -1", []int{1, 2}, true},
		{"GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 km", []int{1, 2}, true},
		// To the end, every second or every one.
		{"MSET a 1 b 2", []int{1, 3}, true},
		{"MSETNX a 1 b 2 c 3", []int{1, 3, 5}, true},
		{"MSET a 1 b", []int{1, 3}, true},
		{"DEL a b c", []int{1, 2, 3}, true},
		{"UNLINK a", []int{1}, true},
		{"DEL", nil, true},
		{"EXISTS a b", []int{1, 2}, true},
		// A key count.
		{"EVAL s 2 a b x", []int{3, 4}, true},
		{"EVAL s 0", nil, true},
		{"EVAL s 0 x", nil, true},
		{"EVALSHA sha 1 a", []int{3}, true},
		{"EVAL_RO s 1 a", []int{3}, true},
		{"EVALSHA_RO sha 1 a", []int{3}, true},
		{"FCALL f 2 a b", []int{3, 4}, true},
		{"FCALL_RO f 1 a x y", []int{3}, true},
		{"ZUNIONSTORE d 2 a b WEIGHTS 1 2", []int{1, 3, 4}, true},
		{"ZINTERSTORE d 1 a", []int{1, 3}, true},
		{"ZDIFFSTORE d 2 a b", []int{1, 3, 4}, true},
		{"ZUNION 2 a b WITHSCORES", []int{2, 3}, true},
		{"ZINTER 1 a", []int{2}, true},
		{"ZDIFF 2 a b", []int{2, 3}, true},
		{"SINTERCARD 2 a b LIMIT 1", []int{2, 3}, true},
		{"ZINTERCARD 2 a b", []int{2, 3}, true},
		{"LMPOP 2 a b LEFT", []int{2, 3}, true},
		{"ZMPOP 1 a MIN", []int{2}, true},
		{"BLMPOP 0 2 a b LEFT", []int{3, 4}, true},
		{"BZMPOP 0.5 1 a MAX", []int{3}, true},
		// Malformed key counts: the other specs still count.
		{"EVAL s 3 a b", nil, true},
		{"EVAL s -1 a", nil, true},
		{"EVAL s x a", nil, true},
		{"EVAL s 01 a", nil, true},
		{"EVAL s +1 a", nil, true},
		{"EVAL s 99999999999999999999999 a", nil, true},
		{"EVAL s 2147483648 a", nil, true},
		{"EVAL s", nil, true},
		{"EVAL", nil, true},
		{"ZUNIONSTORE d x a", []int{1}, true},
		{"ZUNIONSTORE d 3 a b", []int{1}, true},
		{"ZUNIONSTORE d", []int{1}, true},
		{"ZUNIONSTORE", nil, true},
		{"BLMPOP 0", nil, true},
		// A keyword.
		{"XREAD COUNT 2 STREAMS a b 0 0", []int{4, 5}, true},
		{"xread streams a 0", []int{2}, true},
		{"XREAD BLOCK 0 STREAMS a b 0", []int{4}, true},
		{"XREAD COUNT 1", nil, true},
		{"XREAD STREAMS", nil, true},
		{"XREAD \u017fTREAMS a 0", nil, true}, // strcasecmp folds no Unicode
		{"XREADGROUP GROUP g c COUNT 1 STREAMS a b > >", []int{7, 8}, true},
		{"XREADGROUP GROUP streams c STREAMS a >", []int{5}, true},
		{"XREADGROUP GROUP g streams NOACK STREAMS a >", []int{6}, true},
		{"GEORADIUS k 0 0 1 km STORE d", []int{1, 7}, true},
		{"GEORADIUS k 0 0 1 km STOREDIST d", []int{1, 7}, true},
		{"GEORADIUS k 0 0 1 km WITHDIST COUNT 3 STORE d STOREDIST e", []int{1, 10, 12}, true},
		{"GEORADIUS k 0 0 1 km", []int{1}, true},
		{"GEORADIUS k 0 0 1 km STORE", []int{1}, true},
		{"GEORADIUSBYMEMBER k m 1 km STORE d", []int{1, 6}, true},
		{"GEORADIUS_RO k 0 0 1 km", []int{1}, true},
		// SORT's own parser.
		{"SORT k", []int{1}, true},
		{"SORT k STORE d", []int{1, 3}, true},
		{"SORT k BY w_* LIMIT 0 10 GET # GET store ALPHA DESC STORE d", []int{1, 14}, true},
		{"SORT k STORE a STORE b", []int{1, 5}, true},
		{"SORT k GET store", []int{1}, true},
		{"SORT k LIMIT store 1 STORE d", []int{1, 6}, true},
		{"SORT k BOGUS STORE d", []int{1}, true},
		{"SORT k STORE", []int{1}, true},
		{"SORT", nil, true},
		{"SORT_RO k BY x GET y", []int{1}, true},
		// MIGRATE's own parser.
		{"MIGRATE h 6379 k 0 1000", []int{3}, true},
		{"MIGRATE h 6379 k 0 1000 COPY REPLACE", []int{3}, true},
		{`MIGRATE h 6379 "" 0 1000 KEYS a b`, []int{7, 8}, true},
		{`MIGRATE h 6379 "" 0 1000 COPY AUTH keys KEYS a`, []int{10}, true},
		{`MIGRATE h 6379 "" 0 1000 AUTH2 keys keys KEYS a b`, []int{10, 11}, true},
		{`MIGRATE h 6379 "" 0 1000 KEYS`, nil, true},
		{"MIGRATE h 6379 k 0 1000 KEYS a", nil, true},
		{"MIGRATE h 6379", nil, true},
		// Subcommands.
		{"XGROUP CREATE s g $ MKSTREAM", []int{2}, true},
		{"xgroup create s g $", []int{2}, true},
		{"XGROUP SETID s g 0", []int{2}, true},
		{"XGROUP HELP", nil, true},
		{"XGROUP", nil, false},
		{"XGROUP NOSUCH s", nil, false},
		{"XINFO STREAM s", []int{2}, true},
		{"OBJECT ENCODING k", []int{2}, true},
		{"MEMORY USAGE k", []int{2}, true},
		{"FUNCTION LOAD code", nil, true},
		// No keys, or no such command.
		{"SPUBLISH ch msg", nil, true},
		{"PUBLISH ch msg", nil, true},
		{"FLUSHALL ASYNC", nil, true},
		{"PING", nil, true},
		{"JSON.SET k . 1", nil, false},
		{"\u017fET k v", nil, false},
		{strings.Repeat("x", 100) + " k", nil, false},
		{"", nil, false},
	} {
		args := cmd(c.in)
		got, ok := Keys(args, nil)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("Keys(%s) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
		// dst is appended to, never overwritten.
		got, _ = Keys(args, []int{-7})
		if got[0] != -7 || !slices.Equal(got[1:], c.want) {
			t.Errorf("Keys(%s, [-7]) = %v", c.in, got)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "": not found
		write    bool
	}{
		{"set k v", "set", true},
		{"GET k", "get", false},
		{"XGROUP CREATE s g $", "xgroup|create", true},
		{"xGroup DeStRoY s g", "xgroup|destroy", true},
		{"OBJECT ENCODING k", "object|encoding", false},
		{"CLIENT NO-EVICT on", "client|no-evict", false},
		{"FUNCTION FLUSH", "function|flush", true},
		{"RESTORE-ASKING k 0 x", "restore-asking", true},
		{"XGROUP", "", false},
		{"NOSUCH k", "", false},
		{"SENTINEL MASTERS", "", false}, // Sentinel's own commands are left out
	} {
		s, ok := Lookup(cmd(c.in))
		if c.want == "" {
			if ok {
				t.Errorf("Lookup(%s) = %s, want none", c.in, s.Name)
			}
			continue
		}
		if !ok || s.Name != c.want || s.Write != c.write {
			t.Errorf("Lookup(%s) = %+v, %v; want %s write=%v", c.in, s, ok, c.want, c.write)
		}
	}
	if _, ok := Lookup(nil); ok {
		t.Error("Lookup(nil) found a command")
	}
}

func TestAppendKeyArgs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []KeyArg
	}{
		{"SET k v", []KeyArg{{1, false}}},
		{"GET k", []KeyArg{{1, true}}},
		{"ZUNIONSTORE d 2 a b", []KeyArg{{1, false}, {3, true}, {4, true}}},
		{"COPY a b", []KeyArg{{1, true}, {2, false}}},
		{"RENAME a b", []KeyArg{{1, false}, {2, false}}},
		{"SORT k STORE d", []KeyArg{{1, true}, {3, false}}},
		{"SORT k", []KeyArg{{1, true}}},
		{"GEORADIUS k 0 0 1 km STORE d", []KeyArg{{1, true}, {7, false}}},
		{`MIGRATE h 6379 "" 0 1000 KEYS a b`, []KeyArg{{7, false}, {8, false}}},
		{"EVAL s 1 a", []KeyArg{{3, false}}},
		{"EVAL s x a", nil},
	} {
		args := cmd(c.in)
		s, ok := Lookup(args)
		if !ok {
			t.Fatalf("%s: not found", c.in)
		}
		if got := s.AppendKeyArgs(args, nil); !slices.Equal(got, c.want) {
			t.Errorf("AppendKeyArgs(%s) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestIsContainer(t *testing.T) {
	for name, want := range map[string]bool{"XGROUP": true, "object": true, "xgroup|create": false, "SET": false, "nosuch": false, strings.Repeat("x", 100): false} {
		if got := IsContainer([]byte(name)); got != want {
			t.Errorf("IsContainer(%s) = %v", name, got)
		}
	}
}

// TestTable checks the table's own consistency: unique lower-case names,
// every subcommand under a container and every container with
// subcommands, key specs of a known form.
func TestTable(t *testing.T) {
	subs := map[string]int{}
	seen := map[string]bool{}
	for _, s := range table {
		if seen[s.Name] {
			t.Errorf("%s: listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Name != strings.ToLower(s.Name) || len(s.Name) > MaxName || s.Arity == 0 {
			t.Errorf("%s: bad name or arity %d", s.Name, s.Arity)
		}
		if c, _, ok := strings.Cut(s.Name, "|"); ok {
			subs[c]++
		}
		for _, k := range s.Keys {
			known := (k.Begin == BeginIndex && k.Index > 0 || k.Begin == BeginKeyword && k.Keyword != "") &&
				(k.Find == FindRange || k.Find == FindKeyNum)
			if !known && s.find == nil && k.Begin != BeginUnknown {
				t.Errorf("%s: key spec %+v of no known form", s.Name, k)
			}
			if k.Begin == BeginUnknown && s.find == nil && s.Name != "sort_ro" {
				t.Errorf("%s: an unknown key spec and no parser", s.Name)
			}
		}
	}
	for _, s := range table {
		if s.Container != (subs[s.Name] > 0) {
			t.Errorf("%s: Container is %v with %d subcommands", s.Name, s.Container, subs[s.Name])
		}
	}
	for c := range subs {
		if !seen[c] {
			t.Errorf("subcommands of %s, which is not listed", c)
		}
	}
	if len(table) < 350 {
		t.Errorf("only %d commands", len(table))
	}
}

func TestNoAllocation(t *testing.T) {
	set := cmd("SET key value")
	sub := cmd("XGROUP CREATE stream group $")
	mset := cmd("MSET a 1 b 2 c 3")
	dst := make([]int, 0, 8)
	refs := make([]KeyArg, 0, 8)
	spec, _ := Lookup(mset)
	if n := testing.AllocsPerRun(100, func() {
		Lookup(set)
		Lookup(sub)
		IsContainer(sub[0])
		dst, _ = Keys(mset, dst[:0])
		dst, _ = Keys(set, dst[:0])
		refs = spec.AppendKeyArgs(mset, refs[:0])
	}); n != 0 {
		t.Errorf("Lookup and Keys allocate %v times", n)
	}
}

// FuzzKeys runs Keys on arbitrary arguments after a command of the table
// (its first byte picks which): it must not panic, and every index must be
// an argument's.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{
		"\x00k\x00v", "\x012\x00a\x00b", "\x05x\x00y", "\xffSTREAMS\x00a\x000",
	} {
		f.Add([]byte(s))
	}
	for _, name := range []string{"eval", "zunionstore", "xread", "xreadgroup", "sort", "migrate", "georadius", "mset", "blmpop"} {
		i := slices.IndexFunc(table, func(s Spec) bool { return s.Name == name })
		f.Add(append([]byte{byte(i)}, "k\x002\x00a\x00b\x00STORE\x00KEYS\x00\x00d"...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		s := table[int(data[0])*len(table)/256]
		var args [][]byte
		for _, p := range strings.Split(s.Name, "|") {
			args = append(args, []byte(p))
		}
		if len(data) > 1 {
			args = append(args, bytes.Split(data[1:], []byte{0})...)
		}
		keys, ok := Keys(args, nil)
		if !ok && !s.Container {
			t.Fatalf("%s not found", s.Name)
		}
		for _, k := range keys {
			if k < 1 || k >= len(args) {
				t.Fatalf("%q: key index %d out of %d arguments", args, k, len(args))
			}
		}
		if spec, ok := Lookup(args); ok {
			refs := spec.AppendKeyArgs(args, nil)
			if len(refs) != len(keys) {
				t.Fatalf("%q: AppendKeyArgs finds %v, Keys %v", args, refs, keys)
			}
			for i, r := range refs {
				if r.Index != keys[i] {
					t.Fatalf("%q: AppendKeyArgs finds %v, Keys %v", args, refs, keys)
				}
			}
		}
	})
}

func ExampleKeys() {
	args := [][]byte{[]byte("ZUNIONSTORE"), []byte("dest"), []byte("2"), []byte("a"), []byte("b"), []byte("WEIGHTS"), []byte("1"), []byte("2")}
	keys, ok := Keys(args, nil)
	for _, i := range keys {
		fmt.Printf("%s ", args[i])
	}
	fmt.Println(ok)
	// Output: dest a b true
}
