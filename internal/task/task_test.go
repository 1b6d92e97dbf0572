package task_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
	"github.com/resync/resync/internal/writer"
)

// doAll runs commands on one connection, failing the test on an error.
func doAll(t *testing.T, c *dialer.Conn, cmds ...[]string) {
	t.Helper()
	for _, cmd := range cmds {
		if _, err := c.Do(cmd...); err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
	}
}

func numbered(cmd []string, prefix string, n int, pairs bool) []string {
	out := append([]string(nil), cmd...)
	for i := range n {
		if pairs {
			out = append(out, strconv.Itoa(i), fmt.Sprintf("%s%d", prefix, i))
		} else {
			out = append(out, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	return out
}

// fill writes every type, small and large (so each has its compact and
// its full encoding), with TTLs, in db 0 and db 3.
func fill(t *testing.T, s *redisproc.Server) {
	t.Helper()
	v := redistest.Version(t)
	c := redistest.Dial(t, s)
	for _, db := range []string{"0", "3"} {
		doAll(t, c,
			[]string{"SELECT", db},
			[]string{"SET", "str", "value"}, []string{"SET", "int", "12345"},
			[]string{"SET", "big", strings.Repeat("abc", 100000)},
			[]string{"SET", "ttl", "v"}, []string{"PEXPIREAT", "ttl", "4102444800123"},
			[]string{"RPUSH", "list", "a", "b", "1"},
			numbered([]string{"RPUSH", "list:large"}, "element-", 1000, false),
			[]string{"SADD", "set:int", "1", "2", "3"}, []string{"SADD", "set", "a", "b"},
			numbered([]string{"SADD", "set:large"}, "m", 1000, false),
			[]string{"ZADD", "zset", "1", "a", "2.5", "b", "-inf", "c"},
			numbered([]string{"ZADD", "zset:large"}, "m", 300, true),
			[]string{"HMSET", "hash", "f", "v", "n", "1"},
			numbered([]string{"HMSET", "hash:large"}, "v", 600, true),
			[]string{"PEXPIREAT", "hash:large", "4102444800456"},
		)
		if v.AtLeast(5, 0) {
			doAll(t, c,
				[]string{"XADD", "stream", "1-1", "f", "v"}, []string{"XADD", "stream", "2-1", "g", "w"},
				[]string{"XGROUP", "CREATE", "stream", "grp", "0"},
				[]string{"XREADGROUP", "GROUP", "grp", "alice", "COUNT", "1", "STREAMS", "stream", ">"},
			)
		}
		if v.AtLeast(7, 4) {
			doAll(t, c, []string{"HSET", "hfe", "a", "1", "b", "2"}, []string{"HPEXPIREAT", "hfe", "4102444800789", "FIELDS", "1", "a"})
		}
	}
	doAll(t, c, []string{"SET", "resync:heartbeat:other", "1"}) // never travels
}

type running struct {
	task *task.Task
	dst  *redisproc.Server
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, src, dst *redisproc.Server) *running {
	t.Helper()
	return startWith(t, src, dst, nil)
}

// startWith starts a task whose configuration set adjusts.
func startWith(t *testing.T, src, dst *redisproc.Server, set func(*task.Config)) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := task.Config{Name: "t", Source: src.DialOptions(), Target: dst.DialOptions()}
	if set != nil {
		set(&cfg)
	}
	tk := task.New(cfg)
	r := &running{task: tk, dst: dst, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- tk.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("the task did not stop")
		}
	})
	return r
}

func (r *running) waitState(t *testing.T, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for st := r.task.Status(); st.State != state; st = r.task.Status() {
		if st.State == task.StateFailed {
			t.Fatalf("task failed: %s", st.LastError)
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", st.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCaughtUp waits until the applied offset reaches the source's:
// within 2 s of the writes stopping (the bound).
func (r *running) waitCaughtUp(t *testing.T, src *redisproc.Server) {
	t.Helper()
	r.waitCaughtUpWithin(t, src, 2*time.Second)
}

// waitCaughtUpWithin is waitCaughtUp with a longer wait, after a backlog.
func (r *running) waitCaughtUpWithin(t *testing.T, src *redisproc.Server, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		want, _ := strconv.ParseInt(redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "master_repl_offset"), 10, 64)
		st := r.task.Status()
		if st.State == task.StateFailed {
			t.Fatalf("task failed: %s", st.LastError)
		}
		if st.Applied == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied %d, received %d, the source is at %d", st.Applied, st.Received, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertEqual(t *testing.T, src, dst *redisproc.Server) {
	t.Helper()
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(),
		compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range rep.Diffs {
		if i < 20 {
			t.Error(d)
		}
	}
	if rep.Keys == 0 {
		t.Fatal("compared no keys")
	}
	if n := redistest.Do(t, dst, "EXISTS", "resync:heartbeat:other"); n != "0" {
		t.Fatal("a key under the reserved prefix reached the target")
	}
}

func testFullThenIncremental(t *testing.T, diskless bool) {
	cfg := "repl-diskless-sync no"
	if diskless {
		cfg = "repl-diskless-sync yes"
	}
	src, dst := redistest.Start(t, cfg), redistest.Start(t)
	fill(t, src)
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	st := r.task.Status()
	if st.KeysWritten == 0 || diskless != (st.RDBBytesTotal < 0) {
		t.Fatalf("status after the full sync: %+v", st)
	}
	assertEqual(t, src, dst)

	c := redistest.Dial(t, src)
	doAll(t, c,
		[]string{"SET", "new", "1"}, []string{"INCR", "int"}, []string{"APPEND", "str", "-more"},
		[]string{"DEL", "list"}, []string{"LPUSH", "list:large", "head"}, []string{"LTRIM", "list:large", "0", "99"},
		[]string{"SREM", "set", "a"}, []string{"ZINCRBY", "zset", "10", "a"}, []string{"HSET", "hash", "f", "changed"},
		[]string{"PEXPIREAT", "str", "4102444800999"}, []string{"PERSIST", "ttl"},
		[]string{"MULTI"}, []string{"INCR", "counter"}, []string{"RPUSH", "tx", "a"}, []string{"EXEC"},
		[]string{"SELECT", "3"}, []string{"RENAME", "str", "renamed"}, []string{"SETEX", "ex", "1000", "v"},
		[]string{"SET", "resync:heartbeat:other", "2"},
	)
	r.waitCaughtUp(t, src)
	assertEqual(t, src, dst)

	r.stop()
	if err := <-r.done; err != nil {
		t.Fatalf("stop: %v", err)
	}
	r.done <- nil // for the cleanup
	if st := r.task.Status(); st.State != task.StateStopped {
		t.Fatalf("state %s after stop", st.State)
	}
}

func TestFullThenIncrementalDisk(t *testing.T)     { testFullThenIncremental(t, false) }
func TestFullThenIncrementalDiskless(t *testing.T) { testFullThenIncremental(t, true) }

// PUBLISH on the source reaches no subscriber of the target.
func TestPublishNotReplayed(t *testing.T) {
	redistest.RequireVersion(t, 3, 2, "replicates PUBLISH")
	src, dst := redistest.Start(t), redistest.Start(t)
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	sub := redistest.Dial(t, dst)
	doAll(t, sub, []string{"SUBSCRIBE", "ch"})
	redistest.Do(t, src, "PUBLISH", "ch", "hello")
	redistest.Do(t, src, "SET", "after", "1")
	r.waitCaughtUp(t, src)
	if r.task.Status().PublishSkipped != 1 {
		t.Fatalf("PUBLISH skipped %d times", r.task.Status().PublishSkipped)
	}
	sub.SetIOTimeout(300 * time.Millisecond)
	if v, err := sub.Receive("message"); err == nil {
		t.Fatalf("the target's subscriber got %v", v)
	}
}

// A target that refuses writes fails the task with a message naming the
// key: no hang, no skip.
func TestTargetRefusesWrites(t *testing.T) {
	src := redistest.Start(t)
	dst := redistest.Start(t, "maxmemory 3mb", "maxmemory-policy noeviction")
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	val := strings.Repeat("v", 100000)
	c := redistest.Dial(t, src)
	for i := range 100 {
		doAll(t, c, []string{"SET", fmt.Sprintf("key:%d", i), val})
	}
	select {
	case err := <-r.done:
		r.done <- err
		var we *writer.Error
		if !errors.As(err, &we) || !strings.HasPrefix(we.Reply, "OOM") || !strings.HasPrefix(we.Key, "key:") {
			t.Fatalf("task ended with %v, want an OOM naming the key", err)
		}
		if st := r.task.Status(); st.State != task.StateFailed || !strings.Contains(st.LastError, "key:") {
			t.Fatalf("status %+v", st)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the task did not fail")
	}
}

// A target holding keys of its own is refused before anything is written.
func TestTargetNotEmpty(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	doAll(t, redistest.Dial(t, dst),
		[]string{"SELECT", "2"}, []string{"SET", "mine", "1"},
		[]string{"SELECT", "0"}, []string{"SET", "resync:checkpoint", "1"}) // resync's own: allowed
	err := task.New(task.Config{Source: src.DialOptions(), Target: dst.DialOptions()}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "db2") || strings.Contains(err.Error(), "db0") {
		t.Fatalf("got %v, want a refusal naming db2 only", err)
	}
}

// Functions loaded on the source work on the target.
func TestFunctions(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "has functions")
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)")
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	if got := redistest.Do(t, dst, "FCALL", "hello", "0", "there"); got != "hi there" {
		t.Fatalf("FCALL on the target: %q", got)
	}
}

// The heartbeat measures the lag: reported, and small when idle; its key
// never reaches the target.
func TestHeartbeatLag(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	tk := task.New(task.Config{Name: "hb", Source: src.DialOptions(), Target: dst.DialOptions(), HeartbeatInterval: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for tk.Status().LagMs < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no lag measured: %+v", tk.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if lag := tk.Status().LagMs; lag > 500 {
		t.Fatalf("idle lag %d ms", lag)
	}
	if redistest.Do(t, src, "EXISTS", tk.HeartbeatKey()) != "1" || redistest.Do(t, dst, "EXISTS", tk.HeartbeatKey()) != "0" {
		t.Fatal("the heartbeat key is not on the source only")
	}
}

// A source that refuses the heartbeat (a read-only replica) is synced
// all the same, with the lag unknown.
func TestHeartbeatRefused(t *testing.T) {
	master := redistest.Start(t)
	redistest.Do(t, master, "SET", "k", "v")
	src := redistest.StartReplica(t, master)
	dst := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	tk := task.New(task.Config{Name: "ro", Source: src.DialOptions(), Target: dst.DialOptions(), HeartbeatInterval: 50 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() { cancel(); <-done }()
	redistest.Do(t, master, "SET", "later", "1")
	deadline := time.Now().Add(10 * time.Second)
	for redistest.Do(t, dst, "EXISTS", "later") != "1" {
		if st := tk.Status(); st.State == task.StateFailed || time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if st := tk.Status(); st.LagMs != -1 || st.State != task.StateSynchronizing {
		t.Fatalf("status %+v, want lag unknown while synchronizing", st)
	}
}

// Every command of the list, issued while the full sync runs and after:
// once quiet, the target equals the source and the applied offset is
// the source's.
func TestCommandLoad(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fill(t, src)
	bulk(t, src, 50000) // a full sync long enough to write during it
	r := start(t, src, dst)
	r.waitState(t, task.StateFullSync)
	runLoad(t, src, 30)
	if st := r.task.Status(); st.State != task.StateFullSync {
		t.Logf("the first load ended after the full sync (state %s): it overlapped only partly", st.State)
	}
	r.waitState(t, task.StateSynchronizing)
	runLoad(t, src, 30)
	r.waitCaughtUp(t, src)
	assertEqual(t, src, dst)
	if st := r.task.Status(); len(st.CommandsByName) < 20 {
		t.Fatalf("only %d distinct commands applied: %v", len(st.CommandsByName), st.CommandsByName)
	}
}

// bulk writes n small strings fast, through a writer.
func bulk(t *testing.T, s *redisproc.Server, n int) {
	t.Helper()
	w, err := writer.Open(context.Background(), writer.Options{Target: s.DialOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range n {
		if err := w.Write(writer.Op{Args: [][]byte{[]byte("SET"), fmt.Appendf(nil, "bulk:%d", i), []byte("0123456789abcdef0123456789abcdef")}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStopDuringPrecheck: a task stopped before its checks end (SIGTERM
// at start-up) stops cleanly instead of failing.
func TestStopDuringPrecheck(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	for _, wait := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		tk := task.New(task.Config{Name: "early", Source: src.DialOptions(), Target: dst.DialOptions(), OnConflict: task.ConflictOverwrite})
		done := make(chan error, 1)
		go func() { done <- tk.Run(ctx) }()
		time.Sleep(wait)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("stopped after %s: %v", wait, err)
		}
		if st := tk.Status().State; st != task.StateStopped {
			t.Fatalf("stopped after %s: state %s", wait, st)
		}
	}
}

// TestTargetThrottle: --target-max-ops holds for the stream, and the
// status says how long the writes waited.
func TestTargetThrottle(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, dst, func(c *task.Config) {
		c.TargetMaxOps = 2000
		c.Delivery = task.DeliveryAtLeastOnce // one command per command: the count is the source's
	})
	r.waitState(t, task.StateSynchronizing)
	c := redistest.Dial(t, src)
	const n = 6000
	for i := range n {
		c.Writer().WriteCommandStrings("SET", "k"+strconv.Itoa(i), "v")
	}
	if err := c.Writer().Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := c.Receive("SET"); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	took := time.Since(start)
	// 6000 commands (and a few PINGs and heartbeats) at 2000/s: about
	// 3 s, less the first burst.
	if took < 2500*time.Millisecond {
		t.Fatalf("caught up in %s: the throttle did not hold", took)
	}
	if st := r.task.Status(); st.ThrottledMs < 1000 || st.TargetMaxOps != 2000 {
		t.Fatalf("status: throttled %d ms, max ops %d", st.ThrottledMs, st.TargetMaxOps)
	}
}

// The first write after a full sync arrives at once: a source ending a
// diskless snapshot starts the stream on an ACK that comes after it
// reaped its fork, and the ACK sent as the stream began could come
// before, leaving the stream stalled until the next, a second later.
func TestFirstWriteAfterFullSync(t *testing.T) {
	src, dst := redistest.Start(t, "repl-diskless-sync yes", "repl-diskless-sync-delay 0"), redistest.Start(t)
	for range 3 {
		r := start(t, src, dst)
		r.waitState(t, task.StateSynchronizing)
		redistest.Do(t, src, "SET", "probe", "1")
		t0 := time.Now()
		for redistest.Do(t, dst, "EXISTS", "probe") != "1" {
			if time.Since(t0) > 5*time.Second {
				t.Fatal("the write never arrived")
			}
			time.Sleep(2 * time.Millisecond)
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("the first write after the full sync took %s", d)
		}
		r.stop()
		<-r.done
		r.done <- nil // for the cleanup
		redistest.Do(t, src, "DEL", "probe")
		redistest.Do(t, dst, "FLUSHALL")
	}
}
