package task_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/task"
)

// compareCluster compares the source, through fc, with a cluster target
// reached from any of its nodes.
func compareCluster(t *testing.T, src *redisproc.Server, dst *redisproc.Cluster, fc filter.Config) {
	t.Helper()
	fc.ReservedPrefix = task.ReservedPrefix
	f, err := filter.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.Masters[1].DialOptions(), compare.Options{Filter: f, Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() || rep.Keys == 0 {
		t.Fatalf("%d keys compared, differences: %v", rep.Keys, rep.Diffs)
	}
}

// TestStandaloneIntoCluster syncs db 3 of a standalone source into a
// cluster of three masters: the full sync, then a stream of commands of
// every kind, cross-slot MSET and DEL split per slot, a one-slot
// transaction kept whole.
func TestStandaloneIntoCluster(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	fill(t, src)

	// db 3 holds keys and would stay db 3: a cluster has db 0 only.
	r := start(t, src, dst.Masters[0])
	r.waitState(t, task.StateFailed)
	if e := r.task.Status().LastError; !strings.Contains(e, "source databases 3 hold keys") || !strings.Contains(e, "--map-db") {
		t.Fatalf("error %q", e)
	}

	fc := filter.Config{DBs: []int{3}, MapDB: map[int]int{3: 0}}
	r = startWith(t, src, dst.Masters[0], func(c *task.Config) { c.Filter = fc })
	r.waitState(t, task.StateSynchronizing)
	compareCluster(t, src, dst, fc)

	c := redistest.Dial(t, src)
	doAll(t, c, []string{"SELECT", "3"})
	for i := range 200 {
		n := strconv.Itoa(i)
		doAll(t, c,
			[]string{"SET", "s:" + n, n},
			[]string{"MSET", "m1:" + n, n, "m2:" + n, n, "m3:" + n, n},
			[]string{"HSET", "h:" + n, "f", n},
			[]string{"RPUSH", "l:" + n, n, n},
			[]string{"ZADD", "z:" + n, n, "m"},
			[]string{"EXPIRE", "s:" + n, "1000"},
			[]string{"MULTI"}, []string{"INCR", "{tx}" + n}, []string{"SET", "{tx}last", n}, []string{"EXEC"})
		if i%10 == 0 {
			doAll(t, c, []string{"DEL", "m1:" + n, "m2:" + n, "h:" + n, "list:large"})
		}
	}
	doAll(t, c, []string{"SELECT", "0"}, []string{"SET", "not-synced", "1"})
	r.waitCaughtUp(t, src)
	compareCluster(t, src, dst, fc)
	if n := redistest.Do(t, dst.Masters[0], "DBSIZE"); n == "0" {
		t.Fatal("a master holds nothing: the keys were not spread")
	}

	// A cross-slot RENAME cannot be applied: the task fails, naming it.
	doAll(t, c, []string{"SELECT", "3"}, []string{"RENAME", "s:1", "s:2"})
	r.waitState(t, task.StateFailed)
	if e := r.task.Status().LastError; !strings.Contains(e, "RENAME") || !strings.Contains(e, `"s:1" "s:2"`) || !strings.Contains(e, "--cross-slot skip") {
		t.Fatalf("error %q", e)
	}
}

// TestCrossSlotSkip goes on past what a cluster cannot take, with
// --cross-slot skip.
func TestCrossSlotSkip(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	r := startWith(t, src, dst.Masters[0], func(c *task.Config) {
		c.CrossSlot, c.SplitTransactions = router.CrossSlotSkip, true
	})
	r.waitState(t, task.StateSynchronizing)
	c := redistest.Dial(t, src)
	doAll(t, c, []string{"SET", "a", "1"}, []string{"SET", "b", "2"},
		[]string{"RENAME", "a", "c"},                                                              // skipped: a and c differ in slot
		[]string{"MULTI"}, []string{"SET", "x", "1"}, []string{"SET", "y", "1"}, []string{"EXEC"}, // split
		[]string{"SET", "last", "1"})
	r.waitCaughtUp(t, src)
	if st := r.task.Status(); st.State != task.StateSynchronizing {
		t.Fatalf("state %s: %s", st.State, st.LastError)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, k := range []string{"x", "y", "last", "a"} {
		for !exists(t, dst, k) {
			if time.Now().After(deadline) {
				t.Fatalf("%s is not on the target", k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if exists(t, dst, "c") {
		t.Fatal("the skipped RENAME was applied")
	}
}

// exists looks a key up on the master that serves it.
func exists(t *testing.T, c *redisproc.Cluster, key string) bool {
	top, err := cluster.Load(redistest.Dial(t, c.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	addr := top.Masters[top.Owner(cluster.Slot([]byte(key)))].Addr
	for _, m := range c.Masters {
		if m.Addr == addr {
			return redistest.Do(t, m, "EXISTS", key) == "1"
		}
	}
	t.Fatalf("no master %s", addr)
	return false
}
