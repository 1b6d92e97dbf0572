package task_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// keysOf lists every key of every db of s as "db:key", sorted.
func keysOf(t *testing.T, s *redisproc.Server) []string {
	t.Helper()
	c := redistest.Dial(t, s)
	var out []string
	for db := range 16 {
		doAll(t, c, []string{"SELECT", strconv.Itoa(db)})
		v, err := c.Do("KEYS", "*")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range v.Elems {
			if !strings.HasPrefix(k.Text(), task.ReservedPrefix) { // the task's own
				out = append(out, strconv.Itoa(db)+":"+k.Text())
			}
		}
	}
	slices.Sort(out)
	return out
}

// wantKeys fails the test unless s holds exactly keys ("db:key"), besides
// the task's own.
func wantKeys(t *testing.T, s *redisproc.Server, keys ...string) {
	t.Helper()
	slices.Sort(keys)
	if got := keysOf(t, s); !slices.Equal(got, keys) {
		t.Fatalf("target keys:\n got  %q\n want %q", got, keys)
	}
}

// compareFiltered compares source and target as the filter sees them and
// returns the differences.
func compareFiltered(t *testing.T, src, dst *redisproc.Server, fc filter.Config) []string {
	t.Helper()
	fc.ReservedPrefix = task.ReservedPrefix
	f, err := filter.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(),
		compare.Options{Reverse: true, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Keys == 0 {
		t.Fatal("compared no keys")
	}
	var out []string
	for _, d := range rep.Diffs {
		out = append(out, d.String())
	}
	return out
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, r *running, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if st := r.task.Status(); st.State == task.StateFailed {
			t.Fatalf("task failed: %s", st.LastError)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// intercept refuses a target whose selected databases hold keys, writing
// nothing; overwrite replaces same-name keys and leaves the others.
func TestConflictModes(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	doAll(t, redistest.Dial(t, src), []string{"SET", "a", "new"}, []string{"SET", "b", "1"})
	doAll(t, redistest.Dial(t, dst),
		[]string{"SET", "a", "old"}, []string{"SET", "mine", "1"},
		[]string{"SELECT", "2"}, []string{"SET", "other", "1"})
	fc := filter.Config{DBs: []int{0}}

	err := task.New(task.Config{Source: src.DialOptions(), Target: dst.DialOptions(), Filter: fc}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "db0 holds 2 keys") || strings.Contains(err.Error(), "db2") {
		t.Fatalf("intercept: got %v, want a refusal naming db0 (2 keys) and not db2 (not selected)", err)
	}
	wantKeys(t, dst, "0:a", "0:mine", "2:other")
	if v := redistest.Do(t, dst, "GET", "a"); v != "old" {
		t.Fatalf("intercept wrote to the target: a=%q", v)
	}

	r := startWith(t, src, dst, func(c *task.Config) { c.Filter, c.OnConflict = fc, task.ConflictOverwrite })
	r.waitState(t, task.StateSynchronizing)
	redistest.Do(t, src, "SET", "c", "1")
	r.waitCaughtUp(t, src)
	wantKeys(t, dst, "0:a", "0:b", "0:c", "0:mine", "2:other")
	if v := redistest.Do(t, dst, "GET", "a"); v != "new" {
		t.Fatalf("overwrite: a=%q, want new", v)
	}
	if d := compareFiltered(t, src, dst, fc); len(d) != 1 || !strings.Contains(d[0], `"mine": extra`) {
		t.Fatalf("differences %q, want only the target's own key", d)
	}
}

// --dbs, --map-db, key prefixes and regexes, a blocked command and a
// multi-key command under a prefix filter: exactly what was asked lands,
// in the full sync and in the stream.
func TestSelectionMappingFilters(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fc := filter.Config{DBs: []int{0, 3}, MapDB: map[int]int{3: 5},
		AllowKeyPrefix: []string{"a:", "m:"}, BlockKeyPrefix: []string{"a:secret"}, BlockKeyRegex: []string{"tmp$"},
		BlockCommand: []string{"SETRANGE"}, OnPartial: filter.Skip}
	c := redistest.Dial(t, src)
	doAll(t, c,
		[]string{"SET", "a:1", "1"}, []string{"SET", "a:secret", "1"}, []string{"SET", "b:1", "1"},
		[]string{"SET", "a:xtmp", "1"}, []string{"HSET", "m:h", "f", "v"},
		[]string{"SELECT", "1"}, []string{"SET", "a:2", "1"},
		[]string{"SELECT", "3"}, []string{"SET", "a:3", "1"}, []string{"SET", "c:3", "1"})
	r := startWith(t, src, dst, func(c *task.Config) { c.Filter = fc })
	r.waitState(t, task.StateSynchronizing)
	wantKeys(t, dst, "0:a:1", "0:m:h", "5:a:3")

	doAll(t, c,
		[]string{"SELECT", "0"},
		[]string{"SET", "a:new", "1"}, []string{"SET", "b:new", "1"}, []string{"SET", "a:new:tmp", "1"},
		[]string{"MSET", "a:m1", "1", "b:m2", "2", "a:m3", "3"},
		[]string{"DEL", "a:1", "b:1"},
		[]string{"SETRANGE", "a:new", "0", "X"}, // blocked
		[]string{"RENAME", "m:h", "b:h"},        // half in the filter: skipped
		[]string{"SELECT", "1"}, []string{"SET", "a:x", "1"},
		[]string{"SELECT", "3"}, []string{"SET", "a:y", "1"}, []string{"SET", "a:3", "2"})
	r.waitCaughtUp(t, src)
	wantKeys(t, dst, "0:a:m1", "0:a:m3", "0:a:new", "0:m:h", "5:a:3", "5:a:y")
	if v := redistest.Do(t, dst, "GET", "a:new"); v != "1" {
		t.Fatalf("a blocked SETRANGE reached the target: a:new=%q", v)
	}
	st := r.task.Status()
	// Five keys filtered, and the heartbeat when it was written before
	// the snapshot.
	if st.PartialSkipped != 1 || st.CommandsFiltered == 0 || st.KeysFiltered < 5 || st.KeysFiltered > 6 {
		t.Fatalf("partial skipped %d (want 1), commands filtered %d, keys filtered %d (want 5, or 6 with the heartbeat)", st.PartialSkipped, st.CommandsFiltered, st.KeysFiltered)
	}
	d := compareFiltered(t, src, dst, fc)
	slices.Sort(d)
	if len(d) != 2 || !strings.Contains(d[0], `db 0 key "a:new": value`) || !strings.Contains(d[1], `db 0 key "m:h": extra`) {
		t.Fatalf("differences %q, want only the blocked SETRANGE's and the skipped RENAME's", d)
	}
}

// Under --on-partial-filter fail, a command the filters can only partly
// apply stops the task with a message naming it.
func TestPartialFilterFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		fc   filter.Config
		cmds [][]string
		want string
	}{
		{"rename across the prefix", filter.Config{AllowKeyPrefix: []string{"a:"}},
			[][]string{{"SET", "a:1", "1"}, {"RENAME", "a:1", "b:1"}}, "RENAME"},
		{"swapdb across the selection", filter.Config{DBs: []int{0}},
			[][]string{{"SET", "x", "1"}, {"SWAPDB", "0", "3"}}, "SWAPDB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := redistest.Start(t), redistest.Start(t)
			r := startWith(t, src, dst, func(c *task.Config) { c.Filter = tc.fc })
			r.waitState(t, task.StateSynchronizing)
			doAll(t, redistest.Dial(t, src), tc.cmds...)
			select {
			case err := <-r.done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want a failure naming %s", err, tc.want)
				}
				r.done <- err // for the cleanup
			case <-time.After(10 * time.Second):
				t.Fatal("the task did not fail")
			}
		})
	}
}

// FLUSHDB, SWAPDB, MOVE and FLUSHALL in the stream follow the selection
// and the mapping; target databases outside it are never touched.
func TestFlushSwapMoveUnderMapping(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fc := filter.Config{DBs: []int{0, 1, 2}, MapDB: map[int]int{1: 4, 2: 5}}
	doAll(t, redistest.Dial(t, dst),
		[]string{"SELECT", "3"}, []string{"SET", "keep", "1"},
		[]string{"SELECT", "7"}, []string{"SET", "keep", "1"})
	c := redistest.Dial(t, src)
	for db := range 4 {
		n := strconv.Itoa(db)
		doAll(t, c, []string{"SELECT", n}, []string{"SET", "k" + n, n})
	}
	r := startWith(t, src, dst, func(c *task.Config) { c.Filter = fc })
	r.waitState(t, task.StateSynchronizing)
	wantKeys(t, dst, "0:k0", "3:keep", "4:k1", "5:k2", "7:keep")

	step := func(want []string, cmds ...[]string) {
		t.Helper()
		doAll(t, c, cmds...)
		r.waitCaughtUp(t, src)
		wantKeys(t, dst, want...)
		if d := compareFiltered(t, src, dst, fc); len(d) != 0 {
			t.Fatalf("differences: %q", d)
		}
	}
	step([]string{"0:k0", "3:keep", "4:k1", "5:k2b", "7:keep"},
		[]string{"SELECT", "2"}, []string{"FLUSHDB"}, []string{"SET", "k2b", "1"})
	step([]string{"0:k1", "3:keep", "4:k0", "5:k2b", "7:keep"},
		[]string{"SWAPDB", "0", "1"})
	// Out of the selection (db 3): the key leaves the synced set.
	step([]string{"3:keep", "4:k0", "5:k2b", "7:keep"},
		[]string{"SELECT", "0"}, []string{"MOVE", "k1", "3"})
	step([]string{"3:keep", "5:k0", "5:k2b", "7:keep"},
		[]string{"SELECT", "1"}, []string{"MOVE", "k0", "2"})
	// FLUSHALL empties only the mapped databases, and the stream goes on
	// in the right one.
	step([]string{"3:keep", "4:after", "7:keep"},
		[]string{"SELECT", "1"}, []string{"SET", "z", "1"}, []string{"FLUSHALL"}, []string{"SET", "after", "1"})
}

// The allow forms: a key regex and a command list, in both phases.
func TestAllowRegexAndCommands(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fc := filter.Config{AllowKeyRegex: []string{`^u:[0-9]+$`}, AllowCommand: []string{"SET", "DEL"}}
	doAll(t, redistest.Dial(t, src), []string{"SET", "u:1", "1"}, []string{"SET", "u:x", "1"}, []string{"SET", "v:1", "1"})
	r := startWith(t, src, dst, func(c *task.Config) { c.Filter = fc })
	r.waitState(t, task.StateSynchronizing)
	wantKeys(t, dst, "0:u:1")
	doAll(t, redistest.Dial(t, src),
		[]string{"SET", "u:2", "1"}, []string{"HSET", "u:3", "f", "v"}, []string{"DEL", "u:1"},
		[]string{"SET", "v:2", "1"}, []string{"SET", "u:22x", "1"})
	r.waitCaughtUp(t, src)
	wantKeys(t, dst, "0:u:2")
}
