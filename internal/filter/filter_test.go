package filter

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// cmd splits a command written with spaces.
func cmd(s string) [][]byte {
	var args [][]byte
	for _, f := range strings.Fields(s) {
		args = append(args, []byte(f))
	}
	return args
}

// render writes a Result for comparison: the commands joined by " | ",
// then "+dropped" when Dropped; "(skipped)" or "(error)"; "" for nothing.
func render(r Result, err error) string {
	var e *Error
	switch {
	case errors.As(err, &e):
		return "(error)"
	case err != nil:
		return "(bad: " + err.Error() + ")"
	case r.Skipped != "":
		if len(r.Cmds) > 0 || r.Dropped {
			return "(skipped, yet sent or dropped)"
		}
		return "(skipped)"
	}
	var parts []string
	for _, c := range r.Cmds {
		parts = append(parts, string(bytes.Join(c, []byte(" "))))
	}
	out := strings.Join(parts, " | ")
	if r.Dropped {
		out = strings.TrimSpace(out + " +dropped")
	}
	return out
}

// step is one source command and what Apply makes of it.
type step struct{ in, want string }

// same is a step whose command passes as it is.
func same(in string) step { return step{in, in} }

func dropped(in string) step { return step{in, "+dropped"} }

func partial(in string) step { return step{in, "(error)"} }

func mustNew(t testing.TB, c Config) *Filter {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// runSteps applies the steps in order on one stream.
func runSteps(t *testing.T, c Config, steps []step) {
	t.Helper()
	s := mustNew(t, c).NewStream()
	for i, st := range steps {
		if got := render(s.Apply(cmd(st.in))); got != st.want {
			t.Errorf("step %d, %s (db %d): got %q, want %q", i, st.in, s.DB(), got, st.want)
		}
	}
}

func TestApplyIdentity(t *testing.T) {
	runSteps(t, Config{ReservedPrefix: "resync:"}, []step{
		same("MULTI"),
		same("SET k v"),
		same("set k v PXAT 1"),
		same("EXEC"),
		same("DISCARD"),
		dropped("PING"),
		dropped("REPLCONF GETACK *"),
		dropped("PUBLISH ch m"),
		dropped("publish ch m"),
		dropped("SPUBLISH ch m"),
		same("SELECT 3"),
		same("FLUSHALL"),
		same("FLUSHALL ASYNC"),
		same("FLUSHDB SYNC"),
		same("SWAPDB 0 1"),
		same("MOVE k 1"),
		same("COPY a b DB 2 REPLACE"),
		same("FUNCTION LOAD code"),
		same("EVAL s 0"),
		same("EVAL s 2 a b"),
		same("XGROUP CREATE s g $"),
		same("JSON.SET k . 1"),
		same("NOSUCHCOMMAND"),
		// The reserved prefix, whatever the rules.
		dropped("SET resync:heartbeat:default 1700000000000"),
		step{"MSET resync:x 1 a 2", "MSET a 2 +dropped"},
		step{"DEL resync:a b resync:c", "DEL b +dropped"},
		dropped("DEL resync:a resync:b"),
		dropped("JSON.SET resync:x . 1"),
		dropped("MOVE resync:x 1"),
		dropped("COPY a resync:b"),
		partial("COPY resync:a b"),
		partial("EVAL s 2 resync:a b"),
		partial("RENAME resync:a b"),
		dropped("RENAME resync:a resync:b"),
		same("SET resyncx v"),
	})
}

func TestApplySelection(t *testing.T) {
	runSteps(t, Config{DBs: []int{0, 2}, ReservedPrefix: "resync:"}, []step{
		same("SET a 1"), // db 0 until a SELECT
		dropped("SELECT 1"),
		dropped("SET a 1"),
		dropped("DEL a b"),
		dropped("JSON.SET k . 1"),
		same("NOSUCHCOMMAND"),
		dropped("EVAL s 0"),
		dropped("EVAL s 1 a"),
		dropped("FCALL f 0"),
		dropped("FLUSHDB"),
		dropped("XGROUP CREATE s g $"),
		same("FUNCTION LOAD code"),
		same("FUNCTION FLUSH"),
		same("MULTI"),
		dropped("INCR a"),
		same("EXEC"),
		dropped("PUBLISH ch m"),
		step{"FLUSHALL", "SELECT 0 | FLUSHDB | SELECT 2 | FLUSHDB"}, // db 1: nowhere to go back to
		same("SELECT 2"),
		same("SET a 1"),
		step{"FLUSHALL ASYNC", "SELECT 0 | FLUSHDB ASYNC | SELECT 2 | FLUSHDB ASYNC | SELECT 2"},
		same("FLUSHDB"),
		same("SELECT 0"),
		same("SWAPDB 0 2"),
		partial("SWAPDB 0 1"),
		partial("SWAPDB 3 2"),
		dropped("SWAPDB 1 3"),
		same("MOVE k 2"),
		step{"MOVE k 1", "DEL k +dropped"},
		same("COPY a b DB 2"),
		dropped("COPY a b DB 1"),
		same("COPY a b"),
		dropped("SELECT 3"),
		partial("MOVE k 0"),
		dropped("MOVE k 1"),
		partial("COPY a b DB 0"),
		dropped("COPY a b DB 1"),
		dropped("COPY a b"),
		dropped("SET resync:x 1"),
	})
}

func TestApplyMapping(t *testing.T) {
	c := Config{DBs: []int{0, 2}, MapDB: map[int]int{0: 5, 2: 6}}
	runSteps(t, c, []step{
		step{"SET a 1", "SET a 1"}, // the target connection's db is the caller's
		step{"SELECT 0", "SELECT 5"},
		step{"select 2", "SELECT 6"},
		step{"FLUSHALL SYNC", "SELECT 5 | FLUSHDB SYNC | SELECT 6 | FLUSHDB SYNC | SELECT 6"},
		same("FLUSHDB"),
		step{"SWAPDB 0 2", "SWAPDB 5 6"},
		step{"SWAPDB 2 0", "SWAPDB 6 5"},
		partial("SWAPDB 0 1"),
		step{"MOVE k 0", "MOVE k 5"},
		step{"MOVE k 1", "DEL k +dropped"},
		step{"COPY a b DB 0 REPLACE", "COPY a b DB 5 REPLACE"},
		step{"COPY a b replace db 0", "COPY a b replace db 5"},
		same("COPY a b"),
		dropped("COPY a b DB 7"),
		dropped("SELECT 1"),
		partial("MOVE k 2"),
		dropped("MOVE k 3"),
		step{"FLUSHALL", "SELECT 5 | FLUSHDB | SELECT 6 | FLUSHDB"},
	})
	// Every database, two swapped: FLUSHALL flushes each target db.
	runSteps(t, Config{MapDB: map[int]int{0: 1, 1: 0}, Databases: 3}, []step{
		step{"SELECT 1", "SELECT 0"},
		step{"FLUSHALL", "SELECT 0 | FLUSHDB | SELECT 1 | FLUSHDB | SELECT 2 | FLUSHDB | SELECT 0"},
		step{"SWAPDB 0 1", "SWAPDB 1 0"},
		step{"SWAPDB 0 2", "SWAPDB 1 2"},
		step{"MOVE k 2", "MOVE k 2"},
		step{"MOVE k 0", "MOVE k 1"},
		same("SELECT 2"),
	})
}

func TestApplyMerge(t *testing.T) {
	c := Config{DBs: []int{0, 1, 2}, MapDB: map[int]int{1: 0}, AllowDBMerge: true}
	runSteps(t, c, []step{
		partial("FLUSHDB"),
		step{"FLUSHALL", "SELECT 0 | FLUSHDB | SELECT 2 | FLUSHDB | SELECT 0"},
		partial("SWAPDB 0 2"),
		partial("SWAPDB 1 2"),
		dropped("MOVE k 1"), // one target db: the key already is there
		step{"COPY a b DB 1", "COPY a b DB 0"},
		partial("COPY k k DB 1"),
		step{"SELECT 1", "SELECT 0"},
		step{"MOVE k 2", "MOVE k 2"},
		same("SELECT 2"),
		same("FLUSHDB"),
	})
}

func TestApplyKeyRules(t *testing.T) {
	c := Config{
		AllowKeyPrefix: []string{"a:"},
		AllowKeyRegex:  []string{"^user:[0-9]+$"},
		BlockKeyRegex:  []string{"secret"},
		BlockKeyPrefix: []string{"a:tmp:"},
		ReservedPrefix: "resync:",
	}
	runSteps(t, c, []step{
		same("SET a:1 v"),
		same("SET user:42 v"),
		dropped("SET user:42x v"),
		dropped("SET b v"),
		dropped("SET a:secret v"),
		dropped("SET a:tmp:1 v"),
		dropped("SET resync:a:1 v"),
		// Split.
		step{"DEL a:1 b a:2", "DEL a:1 a:2 +dropped"},
		step{"UNLINK b a:1", "UNLINK a:1 +dropped"},
		step{"EXISTS a:1 b", "EXISTS a:1 +dropped"},
		step{"TOUCH b a:1", "TOUCH a:1 +dropped"},
		step{"MSET a:1 x b y a:2 z", "MSET a:1 x a:2 z +dropped"},
		step{"MSETNX b y a:1 x", "MSETNX a:1 x +dropped"},
		dropped("MSET b 1 c 2"),
		same("MSET a:1 1 a:2 2"),
		// A value moves out of the synced keys, or in: partial (the
		// value moving in is not on the target).
		partial("RENAME a:1 b"),
		partial("RENAMENX a:1 resync:b"),
		partial("SMOVE a:1 b m"),
		partial("LMOVE a:1 b LEFT RIGHT"),
		partial("RPOPLPUSH a:1 b"),
		partial("RENAME b a:1"),
		partial("SMOVE b a:1 m"),
		partial("LMOVE b a:1 LEFT RIGHT"),
		dropped("RENAME b c"),
		same("RENAME a:1 a:2"),
		// Written keys from read ones: the written keys decide, unless
		// a kept one is computed from one left out.
		dropped("SUNIONSTORE b a:1 a:2"),
		dropped("ZUNIONSTORE b 2 a:1 a:2"),
		dropped("GEOSEARCHSTORE b a:1 FROMMEMBER m BYRADIUS 1 km"),
		dropped("PFMERGE b a:1"),
		dropped("BITOP AND b a:1"),
		dropped("SORT a:1 STORE b"),
		partial("SUNIONSTORE a:d a:1 b"),
		partial("ZUNIONSTORE a:d 2 a:1 b"),
		partial("ZRANGESTORE a:d b 0 -1"),
		partial("BITOP AND a:d a:1 b"),
		partial("SORT b STORE a:1"),
		same("ZUNIONSTORE a:d 2 a:1 a:2 WEIGHTS 1 2"),
		same("SORT a:1 STORE a:2"),
		same("SORT a:1 BY nosort GET # STORE a:2"),
		partial("SORT a:1 BY w_* STORE a:2"),
		partial("SORT a:1 GET #->f GET h_*->f STORE a:2"),
		// Cannot split.
		partial("EVAL s 2 a:1 b"),
		dropped("EVAL s 2 b c"),
		same("EVAL s 2 a:1 a:2"),
		same("EVAL s 0"),
		partial("FCALL f 2 b a:1"),
		partial("GEORADIUS a:1 0 0 1 km STORE a:2 STOREDIST b"),
		// Subcommands and unknown commands.
		same("XGROUP CREATE a:s g $"),
		dropped("XGROUP CREATE b g $"),
		same("XGROUP NEWSUB a:s g"), // a later release's: its key at 2
		dropped("XGROUP NEWSUB b g"),
		same("XGROUP NEWSUB"),
		same("JSON.SET a:1 . 1"),
		dropped("JSON.SET b . 1"),
		same("NOSUCHCOMMAND"),
		same("FUNCTION LOAD code"),
		// Whole databases.
		partial("FLUSHALL"),
		partial("FLUSHDB"),
		partial("SWAPDB 0 1"),
		same("MOVE a:1 1"),
		dropped("MOVE b 1"),
		dropped("COPY a:1 b"),
		dropped("COPY b c"),
		partial("COPY b a:1"),
		same("COPY a:1 a:2 DB 1"),
		// Transactions keep their shape.
		same("MULTI"),
		dropped("SET b 1"),
		dropped("INCR c"),
		same("EXEC"),
	})
}

func TestApplyCommandRules(t *testing.T) {
	runSteps(t, Config{BlockCommand: []string{"FlushAll", "xgroup destroy", "json.set"}}, []step{
		dropped("FLUSHALL"),
		dropped("flushall async"),
		same("FLUSHDB"),
		dropped("XGROUP DESTROY s g"),
		same("XGROUP CREATE s g $"),
		dropped("JSON.SET k . 1"),
		same("SET k v"),
	})
	runSteps(t, Config{AllowCommand: []string{"set", "DEL", "xgroup"}, DBs: []int{1}}, []step{
		same("SELECT 1"),
		same("MULTI"),
		same("SET k v"),
		same("DEL k"),
		dropped("HSET h f v"),
		same("XGROUP DESTROY s g"),
		same("XGROUP CREATECONSUMER s g c"),
		dropped("FLUSHALL"),
		dropped("JSON.SET k . 1"),
		dropped("PING"),
		same("EXEC"),
		dropped("SELECT 0"),
		dropped("SET k v"),
	})
	runSteps(t, Config{AllowCommand: []string{"xgroup|create"}, BlockCommand: []string{"xgroup|setid"}}, []step{
		same("XGROUP CREATE s g $"),
		dropped("XGROUP DESTROY s g"),
		dropped("XGROUP SETID s g 0"),
		dropped("XGROUP"),
		dropped("SET k v"),
	})
	runSteps(t, Config{AllowCommand: []string{"xgroup"}, BlockCommand: []string{"xgroup|destroy"}}, []step{
		same("XGROUP CREATE s g $"),
		dropped("XGROUP DESTROY s g"),
	})

	f := mustNew(t, Config{AllowCommand: []string{"set", "xgroup"}, BlockCommand: []string{"xgroup|destroy"}})
	for name, want := range map[string]bool{
		"set": true, "SET": true, "get": false, "xgroup|create": true, "XGROUP|DESTROY": false,
		"select": true, "MULTI": true, strings.Repeat("x", 100): false,
	} {
		if got := f.Command([]byte(name)); got != want {
			t.Errorf("Command(%s) = %v, want %v", name, got, want)
		}
	}
	if !mustNew(t, Config{}).Command([]byte("anything")) {
		t.Error("no rules, yet a command is refused")
	}
}

func TestPolicy(t *testing.T) {
	c := Config{AllowKeyPrefix: []string{"a:"}, ReservedPrefix: "resync:"}

	s := mustNew(t, c).NewStream()
	_, err := s.Apply(cmd("RENAME a:1 b"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Fail: got %v, want an *Error", err)
	}
	if e.Command != "RENAME" || !slices.Equal(e.Keys, []string{"a:1", "b"}) || e.Reason == "" {
		t.Errorf("Error = %+v", e)
	}
	for _, want := range []string{"RENAME", `"a:1"`, `"b"`, "--on-partial-filter skip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	_, err = s.Apply(cmd("EVAL s 2 a:1 resync:x"))
	if err == nil || !strings.Contains(err.Error(), `reserved prefix "resync:"`) {
		t.Errorf("EVAL on a reserved key: %v", err)
	}
	_, err = s.Apply(cmd("XGROUP SETID a:1 g 0"))
	if err != nil {
		t.Errorf("XGROUP SETID: %v", err)
	}
	_, err = s.Apply(cmd("FLUSHALL"))
	if !errors.As(err, &e) || e.Command != "FLUSHALL" || len(e.Keys) != 0 {
		t.Errorf("FLUSHALL: %v", err)
	}

	c.OnPartial = Skip
	s = mustNew(t, c).NewStream()
	r, err := s.Apply(cmd("rename a:1 b"))
	if err != nil || len(r.Cmds) != 0 || r.Dropped || !strings.HasPrefix(r.Skipped, "RENAME: ") || !strings.Contains(r.Skipped, `"b"`) {
		t.Errorf("Skip: %+v, %v", r, err)
	}
	r, err = s.Apply(cmd("SET b v"))
	if err != nil || r.Skipped != "" || !r.Dropped {
		t.Errorf("a filtered key under Skip: %+v, %v", r, err)
	}

	// An error quotes a bounded part of a huge command.
	args := [][]byte{[]byte("RENAME"), []byte("b"), bytes.Repeat([]byte("a:"), 1000)}
	_, err = mustNew(t, Config{AllowKeyPrefix: []string{"a:"}}).NewStream().Apply(args)
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("huge key: %d bytes of message", len(err.Error()))
	}

	for in, want := range map[string]Policy{"fail": Fail, "skip": Skip, "SKIP": Skip} {
		if p, err := ParsePolicy(in); p != want || err != nil {
			t.Errorf("ParsePolicy(%s) = %v, %v", in, p, err)
		}
		var p Policy
		if err := p.UnmarshalText([]byte(in)); err != nil || p != want {
			t.Errorf("UnmarshalText(%s) = %v, %v", in, p, err)
		}
	}
	if _, err := ParsePolicy("ignore"); err == nil || !strings.Contains(err.Error(), "fail or skip") {
		t.Errorf("ParsePolicy(ignore): %v", err)
	}
	if Skip.String() != "skip" || Fail.String() != "fail" {
		t.Error("Policy.String")
	}
}

func TestSelect(t *testing.T) {
	f := mustNew(t, Config{DBs: []int{3}, MapDB: map[int]int{3: 0}})
	s := f.NewStream()
	if s.DB() != 0 {
		t.Errorf("a new stream is on db %d", s.DB())
	}
	if got := render(s.Apply(cmd("SET k v"))); got != "+dropped" {
		t.Errorf("db 0 is not selected, yet: %s", got)
	}
	s.SetDB(3)
	if got := render(s.Apply(cmd("SET k v"))); got != "SET k v" {
		t.Errorf("after SetDB(3): %s", got)
	}
	for _, bad := range []string{"SELECT", "SELECT x", "SELECT -1", "SELECT 01", "SELECT 1 2", "SELECT 99999999999"} {
		_, err := s.Apply(cmd(bad))
		var e *Error
		if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "database") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if r, err := s.Apply(nil); err != nil || len(r.Cmds) != 0 {
		t.Errorf("an empty command: %+v, %v", r, err)
	}
}

func TestMalformed(t *testing.T) {
	runSteps(t, Config{DBs: []int{0, 1}, MapDB: map[int]int{1: 2}}, []step{
		partial("SWAPDB 0"),
		partial("SWAPDB 0 x"),
		partial("MOVE k"),
		partial("MOVE k -1"),
		partial("COPY a"),
		partial("COPY a b DB"),
		partial("COPY a b DB x"),
		partial("COPY a b BOGUS"),
		same("EVAL s x a"),
		same("MSET a"),
	})
	runSteps(t, Config{AllowKeyPrefix: []string{"a"}}, []step{
		partial("MSET a 1 b"),
		step{"MSET a 1 b 2 a", "(error)"},
	})
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want []string
	}{
		{Config{DBs: []int{-1}}, []string{"--dbs", "-1", "negative"}},
		{Config{DBs: []int{0}, MapDB: map[int]int{3: 5}}, []string{"--map-db 3:5", "source database 3", "not selected by --dbs 0"}},
		{Config{MapDB: map[int]int{-2: 5}}, []string{"--map-db -2:5", "negative"}},
		{Config{MapDB: map[int]int{2: -5}}, []string{"--map-db 2:-5", "negative"}},
		{Config{DBs: []int{0, 1}, MapDB: map[int]int{1: 0}}, []string{"source databases 0 and 1", "target database 0", "--allow-db-merge"}},
		{Config{MapDB: map[int]int{5: 0}}, []string{"source databases 0 and 5", "target database 0", "--allow-db-merge"}},
		{Config{DBs: []int{1, 2, 3}, MapDB: map[int]int{1: 7, 2: 7, 3: 7}}, []string{"source databases 1, 2 and 3", "target database 7"}},
		{Config{AllowKeyRegex: []string{"a(b"}}, []string{"--allow-key-regex", `"a(b"`, "missing closing )"}},
		{Config{BlockKeyRegex: []string{"[z-a]"}}, []string{"--block-key-regex", `"[z-a]"`}},
		{Config{AllowKeyRegex: []string{""}}, []string{"--allow-key-regex", "empty"}},
		{Config{AllowKeyPrefix: []string{""}}, []string{"--allow-key-prefix", "empty"}},
		{Config{BlockKeyPrefix: []string{""}}, []string{"--block-key-prefix", "empty"}},
		{Config{AllowKeyPrefix: []string{"resync:x"}, ReservedPrefix: "resync:"}, []string{"--allow-key-prefix", "reserved prefix"}},
		{Config{AllowCommand: []string{"SET"}, BlockCommand: []string{"set"}}, []string{`"set"`, "--allow-command", "--block-command"}},
		{Config{AllowCommand: []string{"xgroup create"}, BlockCommand: []string{"XGROUP|CREATE"}}, []string{`"xgroup|create"`, "both"}},
		{Config{BlockCommand: []string{"select"}}, []string{"--block-command", "SELECT", "structural"}},
		{Config{AllowCommand: []string{"publish"}}, []string{"--allow-command", "PUBLISH", "never"}},
		{Config{AllowCommand: []string{""}}, []string{"--allow-command", "not a command"}},
		{Config{BlockCommand: []string{"a b c"}}, []string{"--block-command", "not a command"}},
		{Config{OnPartial: Policy(7)}, []string{"--on-partial-filter"}},
		{Config{Databases: -1}, []string{"databases", "negative"}},
	} {
		_, err := New(c.cfg)
		if err == nil {
			t.Errorf("New(%+v) accepted", c.cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) = %q, which does not say %q", c.cfg, err, w)
			}
		}
	}
	// All errors at once.
	_, err := New(Config{DBs: []int{-1}, AllowKeyRegex: []string{"("}})
	if err == nil || !strings.Contains(err.Error(), "--dbs") || !strings.Contains(err.Error(), "--allow-key-regex") {
		t.Errorf("two errors: %v", err)
	}
	// What is fine.
	for _, c := range []Config{
		{},
		{DBs: []int{0, 1}, MapDB: map[int]int{1: 0}, AllowDBMerge: true},
		{MapDB: map[int]int{0: 1, 1: 0}},
		{MapDB: map[int]int{3: 3}},
		{MapDB: map[int]int{0: 20}},
		{DBs: []int{2, 2}},
		{AllowCommand: []string{"xgroup"}, BlockCommand: []string{"xgroup|destroy"}},
		{BlockCommand: []string{"publish"}},
		{AllowKeyPrefix: []string{"resync"}, ReservedPrefix: "resync:"},
	} {
		if _, err := New(c); err != nil {
			t.Errorf("New(%+v): %v", c, err)
		}
	}
}

func TestDBs(t *testing.T) {
	f := mustNew(t, Config{DBs: []int{0, 2, 20}, MapDB: map[int]int{2: 9}})
	for db, want := range map[int]int{0: 0, 2: 9, 20: 20, 1: -1, -1: -1} {
		got, ok := f.DB(db)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("DB(%d) = %d, want %d", db, got, want)
		}
	}
	for n, want := range map[int][]int{16: {0, 9}, 21: {0, 9, 20}, 1: {0}, 0: {0, 9}} {
		if got := f.TargetDBs(n); !slices.Equal(got, want) {
			t.Errorf("TargetDBs(%d) = %v, want %v", n, got, want)
		}
	}
	all := mustNew(t, Config{MapDB: map[int]int{0: 1, 1: 0}})
	if got := all.TargetDBs(3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("all dbs, swapped: %v", got)
	}
	merged := mustNew(t, Config{MapDB: map[int]int{1: 0}, AllowDBMerge: true})
	if got := merged.TargetDBs(4); !slices.Equal(got, []int{0, 2, 3}) {
		t.Errorf("all dbs, merged: %v", got)
	}
}

func TestIdentity(t *testing.T) {
	for _, c := range []struct {
		cfg      Config
		identity bool
		keyRules bool
	}{
		{Config{}, true, false},
		{Config{ReservedPrefix: "resync:", OnPartial: Skip}, true, false},
		{Config{MapDB: map[int]int{2: 2}}, true, false},
		{Config{DBs: []int{0}}, false, false},
		{Config{MapDB: map[int]int{0: 1, 1: 0}}, false, false},
		{Config{AllowKeyPrefix: []string{"a"}}, false, true},
		{Config{BlockKeyRegex: []string{"a"}}, false, true},
		{Config{BlockCommand: []string{"flushall"}}, false, false},
	} {
		f := mustNew(t, c.cfg)
		if f.Identity() != c.identity || f.HasKeyRules() != c.keyRules {
			t.Errorf("%+v: Identity %v, HasKeyRules %v", c.cfg, f.Identity(), f.HasKeyRules())
		}
	}
}

func TestKey(t *testing.T) {
	f := mustNew(t, Config{
		AllowKeyPrefix: []string{"user:", "order:"},
		AllowKeyRegex:  []string{"session"}, // unanchored, as grep
		BlockKeyPrefix: []string{"user:tmp:"},
		BlockKeyRegex:  []string{`:\d+:draft$`},
		ReservedPrefix: "resync:",
	})
	for key, want := range map[string]bool{
		"user:1": true, "order:9": true, "x:session:1": true, "session": true,
		"user:tmp:1": false, "order:1:draft": false, "order:1:drafts": true,
		"other": false, "": false, "resync:user:1": false, "use": false,
	} {
		if got := f.Key([]byte(key)); got != want {
			t.Errorf("Key(%q) = %v, want %v", key, got, want)
		}
	}
	none := mustNew(t, Config{})
	if !none.Key(nil) || !none.Key([]byte("resync:x")) {
		t.Error("no rules and no reserved prefix, yet a key is refused")
	}

	prefixes := mustNew(t, Config{AllowKeyPrefix: []string{"a:", "b:"}, BlockKeyPrefix: []string{"a:x"}, ReservedPrefix: "resync:"})
	key := []byte("b:some-key")
	if n := testing.AllocsPerRun(100, func() { prefixes.Key(key) }); n != 0 {
		t.Errorf("Key with prefix rules allocates %v times", n)
	}
}

func TestApplyNoAllocation(t *testing.T) {
	s := mustNew(t, Config{ReservedPrefix: "resync:"}).NewStream()
	cmds := [][][]byte{cmd("SET key:1 value"), cmd("MSET a 1 b 2"), cmd("XGROUP CREATE s g $"), cmd("SELECT 0"), cmd("HSET h f v"), cmd("MULTI"), cmd("EXEC"), cmd("PING")}
	for _, c := range cmds {
		s.Apply(c) // grow the buffers
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, c := range cmds {
			s.Apply(c)
		}
	}); n != 0 {
		t.Errorf("Apply allocates %v times", n)
	}
	r, _ := s.Apply(cmds[0])
	if len(r.Cmds) != 1 || &r.Cmds[0][0] != &cmds[0][0] {
		t.Error("a passing command is not sent as it is")
	}
}

// FuzzApply gives random commands to streams of a few configurations: no
// panic, and every command sent is non-empty.
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		"SET k v", "MSET resync:x 1 a 2", "SELECT 1", "FLUSHALL ASYNC", "SWAPDB 0 1", "MOVE a:1 2",
		"COPY a b DB 2 REPLACE", "EVAL s 2 a:1 b", "DEL a b", "MSET a", "XGROUP CREATE a:s g $",
		"SORT a:1 STORE b", "COPY a", "MOVE k x", "SELECT",
	} {
		f.Add([]byte(strings.ReplaceAll(s, " ", "\x00")))
	}
	cfgs := []Config{
		{ReservedPrefix: "resync:"},
		{DBs: []int{0, 2}, MapDB: map[int]int{0: 5, 2: 6}, AllowKeyPrefix: []string{"a"}, OnPartial: Skip},
		{DBs: []int{0, 1, 2}, MapDB: map[int]int{1: 0}, AllowDBMerge: true, BlockKeyRegex: []string{"^b"}, AllowCommand: []string{"set", "del", "xgroup"}},
	}
	var filters []*Filter
	for _, c := range cfgs {
		filters = append(filters, mustNew(f, c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		args := bytes.Split(data, []byte{0})
		for _, fl := range filters {
			s := fl.NewStream()
			for _, line := range [][][]byte{args, cmd("SELECT 1"), args, cmd("SELECT 2"), args} {
				r, err := s.Apply(line)
				if err != nil && (len(r.Cmds) > 0 || r.Dropped) {
					t.Fatalf("%q: an error, yet %+v", line, r)
				}
				for _, c := range r.Cmds {
					if len(c) == 0 {
						t.Fatalf("%q: an empty command sent", line)
					}
				}
			}
		}
	})
}

// BenchmarkApply measures Apply on the hot path: a SET whose key passes,
// under an identity filter (only the reserved prefix), prefix rules and
// regular expressions, and an MSET of ten keys.
func BenchmarkApply(b *testing.B) {
	value := strings.Repeat("v", 64)
	for _, c := range []struct {
		name string
		cfg  Config
		cmd  string
	}{
		{"identity/SET", Config{ReservedPrefix: "resync:"}, "SET key:00001234 " + value},
		{"identity/MSET10", Config{ReservedPrefix: "resync:"}, strings.Repeat(" key:00001234 "+value, 10)},
		{"prefix/SET", Config{ReservedPrefix: "resync:", AllowKeyPrefix: []string{"user:", "key:"}, BlockKeyPrefix: []string{"key:tmp:"}}, "SET key:00001234 " + value},
		{"regex/SET", Config{ReservedPrefix: "resync:", AllowKeyRegex: []string{`^key:\d+$`}}, "SET key:00001234 " + value},
		{"mapped/SET", Config{ReservedPrefix: "resync:", DBs: []int{0}, MapDB: map[int]int{0: 3}}, "SET key:00001234 " + value},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustNew(b, c.cfg).NewStream()
			args := cmd(c.cmd)
			if c.name == "identity/MSET10" {
				args = append([][]byte{[]byte("MSET")}, args...)
			}
			if r, err := s.Apply(args); err != nil || len(r.Cmds) != 1 || r.Dropped {
				b.Fatalf("%+v, %v", r, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Apply(args)
			}
		})
	}
}
