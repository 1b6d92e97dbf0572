package task_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/status"
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
	return redistest.Do(t, onMaster(t, c, key), "EXISTS", key) == "1"
}

// onMaster returns the master of c that serves key.
func onMaster(t *testing.T, c *redisproc.Cluster, key string) *redisproc.Server {
	t.Helper()
	top, err := cluster.Load(redistest.Dial(t, c.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	addr := top.Masters[top.Owner(cluster.Slot([]byte(key)))].Addr
	for _, m := range c.Masters {
		if m.Addr == addr {
			return m
		}
	}
	t.Fatalf("no master %s", addr)
	return nil
}

// clusterLoad writes keys of every type to a source cluster, each group
// of commands (a transaction among them) on the master of its key.
func clusterLoad(t *testing.T, c *redisproc.Cluster, prefix string, n int) {
	t.Helper()
	conns := map[string]*dialer.Conn{}
	for i := range n {
		k := prefix + strconv.Itoa(i)
		tag := "{" + k + "}"
		group := [][]string{
			{"SET", k, k},
			{"HSET", tag + "h", "f", k},
			{"RPUSH", tag + "l", "a", k},
			{"ZADD", tag + "z", "1.5", k},
			{"MSET", tag + "m1", "1", tag + "m2", "2"},
			{"MULTI"}, {"INCR", tag + "n"}, {"PEXPIRE", tag + "n", "600000"}, {"EXEC"},
		}
		if i%7 == 0 {
			group = append(group, []string{"DEL", tag + "m1", tag + "m2"})
		}
		if redistest.Version(t).AtLeast(5, 0) && i%5 == 0 {
			group = append(group, []string{"XADD", tag + "x", "*", "f", k})
		}
		m := onMaster(t, c, k)
		conn := conns[m.Addr]
		if conn == nil {
			conn = redistest.Dial(t, m)
			conns[m.Addr] = conn
		}
		doAll(t, conn, group...)
	}
}

// waitShards waits until every shard has applied its master's offset.
func (r *running) waitShards(t *testing.T, src *redisproc.Cluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.task.Status()
		if st.State == task.StateFailed {
			t.Fatalf("task failed: %s", st.LastError)
		}
		done := len(st.Shards) == len(src.Masters)
		for _, sh := range st.Shards {
			for _, m := range src.Masters {
				if m.Addr == sh.SourceAddr {
					want, _ := strconv.ParseInt(redisproc.InfoField(redistest.Do(t, m, "INFO", "replication"), "master_repl_offset"), 10, 64)
					done = done && sh.Applied == want && sh.State == task.StateSynchronizing
				}
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shards did not catch up: %+v", st.Shards)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noReservedKeys checks that none of resync's own keys (heartbeats)
// reached a target.
func noReservedKeys(t *testing.T, servers ...*redisproc.Server) {
	t.Helper()
	for _, s := range servers {
		v, err := redistest.Dial(t, s).Do("KEYS", task.ReservedPrefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range v.Elems {
			if !strings.HasPrefix(k.Text(), task.ReservedPrefix+"checkpoint:") && !strings.HasPrefix(k.Text(), task.ReservedPrefix+"lock:") {
				t.Fatalf("%s holds %s", s.Addr, k.Text())
			}
		}
	}
}

// TestClusterSource syncs a cluster of three masters into clusters of
// three and four and into a standalone server at once: full syncs of every shard in
// parallel, a load on every master, a FLUSHALL on one master that empties
// only its slots on the targets.
func TestClusterSource(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.StartCluster(t, 3, 0)
	three := redistest.StartCluster(t, 3, 0)
	four := redistest.StartCluster(t, 4, 0)
	single := redistest.Start(t)
	clusterLoad(t, src, "before:", 300)

	seed := src.Masters[2] // any node: the others are found
	toThree := start(t, seed, three.Masters[0])
	toFour := start(t, seed, four.Masters[0])
	toSingle := start(t, seed, single)
	all := []*running{toThree, toFour, toSingle}
	for _, r := range all {
		r.waitShards(t, src)
	}
	clusterLoad(t, src, "after:", 300)
	if redistest.Version(t).AtLeast(7, 0) {
		lib := "#!lua name=lib\nredis.register_function('f', function() return 1 end)"
		for _, m := range src.Masters {
			redistest.Do(t, m, "FUNCTION", "LOAD", lib)
		}
	}
	for _, r := range all {
		r.waitShards(t, src)
	}
	compare := func(dst *redisproc.Server) {
		t.Helper()
		rep, err := compare.Compare(context.Background(), seed.DialOptions(), dst.DialOptions(),
			compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
		if err != nil || !rep.Equal() || rep.Keys < 600 {
			t.Fatalf("%s: %v, %d keys, %v", dst.Addr, err, rep.Keys, rep.Diffs)
		}
	}
	compare(three.Masters[1])
	compare(four.Masters[3])
	compare(single)

	st := toFour.task.Status()
	if len(st.Shards) != 3 || st.State != task.StateSynchronizing || st.LagMs < 0 {
		t.Fatalf("status: %d shards, state %s, lag %d", len(st.Shards), st.State, st.LagMs)
	}
	// Per shard in /status and /metrics too.
	rec := httptest.NewRecorder()
	status.Handler(toFour.task, status.Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if n := strings.Count(rec.Body.String(), "resync_lag_seconds{"); n != 3 {
		t.Fatalf("%d shard lag series:\n%s", n, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	status.Handler(toFour.task, status.Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if n := strings.Count(rec.Body.String(), `"received_offset"`); n != 3 {
		t.Fatalf("%d shards in /status: %s", n, rec.Body.String())
	}
	noReservedKeys(t, append(append(four.Masters, three.Masters...), single)...)
	if redistest.Version(t).AtLeast(7, 0) {
		for _, m := range four.Masters {
			if v, err := redistest.Dial(t, m).Do("FUNCTION", "LIST"); err != nil || len(v.Elems) != 1 {
				t.Fatalf("%s: FUNCTION LIST %v %v", m.Addr, v, err)
			}
		}
	}

	// One master's FLUSHALL empties its slots, and only those.
	flushed := src.Masters[1]
	gone := redistest.Do(t, flushed, "DBSIZE")
	redistest.Do(t, flushed, "FLUSHALL")
	for _, r := range all {
		r.waitShards(t, src)
	}
	compare(three.Masters[0])
	compare(four.Masters[0])
	compare(single)
	total := 0
	for _, m := range src.Masters {
		n, _ := strconv.Atoi(redistest.Do(t, m, "DBSIZE"))
		v, err := redistest.Dial(t, m).Do("KEYS", task.ReservedPrefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		total += n - len(v.Elems) // heartbeats stay home
	}
	if n := len(keysOf(t, single)); n != total || gone == "0" {
		t.Fatalf("after one master's FLUSHALL (%s keys): the target holds %d keys, the source %d", gone, n, total)
	}
}

// TestTargetReshardUnderLoad moves 150 slots of the target cluster, the
// busy ones among them, while a steady load flows through the task: no
// write is lost, no error, the target ends equal.
func TestTargetReshardUnderLoad(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	var logs lockedBuffer
	r := startWith(t, src, dst.Masters[0], func(c *task.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	r.waitState(t, task.StateSynchronizing)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan error, 1)
	c := redistest.Dial(t, src)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			n := strconv.Itoa(i)
			for _, cmd := range [][]string{{"RPUSH", "{busy}list", n}, {"SET", "k:" + strconv.Itoa(i%2000), n}, {"INCR", "{busy}n"}} {
				if _, err := c.Do(cmd...); err != nil {
					loadDone <- err
					return
				}
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		loadDone <- nil
	}()

	from := onMaster(t, dst, "{busy}list")
	var to *redisproc.Server
	for _, m := range dst.Masters {
		if m != from {
			to = m
			break
		}
	}
	top, err := cluster.Load(redistest.Dial(t, from))
	if err != nil {
		t.Fatal(err)
	}
	busy := cluster.Slot([]byte("busy"))
	slots := []int{busy}
	for _, m := range top.Masters {
		if m.Addr == from.Addr {
			for s := m.Slots[0][0]; len(slots) < 150; s++ {
				if s != busy {
					slots = append(slots, s)
				}
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, s := range slots {
		if err := dst.MoveSlot(ctx, s, from, to); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUp(t, src)
	compareCluster(t, src, dst, filter.Config{})
	if st := r.task.Status(); st.State != task.StateSynchronizing {
		t.Fatalf("state %s: %s", st.State, st.LastError)
	}
	if n := redistest.Do(t, to, "LLEN", "{busy}list"); n == "0" {
		t.Fatal("the busy list did not move")
	}
	if !strings.Contains(logs.String(), "sending again what came back") {
		t.Fatal("no command came back while the slots moved: the test moved nothing busy")
	}
}

// lockedBuffer is a log destination written by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
