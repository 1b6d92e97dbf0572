package task_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// stat reads a number from INFO stats.
func stat(t *testing.T, s *redisproc.Server, field string) int {
	t.Helper()
	n, err := strconv.Atoi(redisproc.InfoField(redistest.Do(t, s, "INFO", "stats"), field))
	if err != nil {
		t.Fatalf("INFO stats %s: %v", field, err)
	}
	return n
}

// TestSourceDropsLink: the source drops resync's link 20 times under a
// load of non-idempotent commands. Each time resync reconnects with PSYNC
// from its applied offset and the source continues (no full sync); the
// target ends exactly equal.
func TestSourceDropsLink(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "before", "1")
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan error, 1)
	c := redistest.Dial(t, src)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			n := strconv.Itoa(i % 100)
			for _, cmd := range [][]string{{"INCR", "n:" + n}, {"RPUSH", "l:" + n, strconv.Itoa(i)}, {"APPEND", "s:" + n, "x"}, {"HINCRBY", "h", n, "1"}} {
				if _, err := c.Do(cmd...); err != nil {
					loadDone <- err
					return
				}
			}
			time.Sleep(500 * time.Microsecond)
		}
		loadDone <- nil
	}()
	for range 20 {
		time.Sleep(250 * time.Millisecond)
		redistest.Do(t, src, "CLIENT", "KILL", "TYPE", "slave")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	r.waitState(t, task.StateSynchronizing)
	r.waitCaughtUp(t, src)
	assertEqual(t, src, dst)
	full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok")
	st := r.task.Status()
	t.Logf("sync_full %d, sync_partial_ok %d, retries %d", full, partial, st.Retries)
	if full != 1 || partial < 20 || st.Retries < 20 {
		t.Fatalf("sync_full %d (want 1), sync_partial_ok %d and retries %d (want 20 or more)", full, partial, st.Retries)
	}
}

// TestRetryWindowRunsOut: a source that stays away is retried for
// --retry-for, state retrying with the last error, then the task fails
// saying why.
func TestRetryWindowRunsOut(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, dst, func(c *task.Config) { c.RetryFor = 1500 * time.Millisecond })
	r.waitState(t, task.StateSynchronizing)
	src.Kill()
	deadline := time.Now().Add(5 * time.Second)
	sawRetrying := false
	for st := r.task.Status(); st.State != task.StateFailed; st = r.task.Status() {
		sawRetrying = sawRetrying || st.State == task.StateRetrying && st.LastError != ""
		if time.Now().After(deadline) {
			t.Fatalf("state %s after 5 s", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e := r.task.Status().LastError; !sawRetrying || !strings.Contains(e, "gave up after retrying for 1.5s (--retry-for)") {
		t.Fatalf("retrying seen: %v; error %q", sawRetrying, e)
	}
}

// TestTargetStopped: the target (AOF on) is down for 10 s under a load
// of non-idempotent commands in db 2. The task retries the target while
// it goes on reading the source into the spool, then resumes from the
// checkpoint the target kept: the source's link never drops, exact.
func TestTargetStopped(t *testing.T) {
	src := redistest.Start(t)
	dst := redistest.Start(t, "appendonly yes", "appendfsync always")
	r := startWith(t, src, dst, func(c *task.Config) {
		c.BufferBytes = 1 << 20
		c.SpoolDir = t.TempDir()
	})
	r.waitState(t, task.StateSynchronizing)
	o := src.DialOptions()
	o.DB = 2
	load := redistest.StartLoad(t, o, 300, time.Millisecond, nil)
	time.Sleep(500 * time.Millisecond)
	dst.Kill()
	release := redistest.HoldPort(t, dst)
	deadline := time.Now().Add(5 * time.Second)
	for st := r.task.Status(); st.State != task.StateRetrying || st.LastError == ""; st = r.task.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, last error %q: want retrying with the error", st.State, st.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("retrying: %s", r.task.Status().LastError)
	time.Sleep(10 * time.Second)
	st := r.task.Status()
	t.Logf("after 10 s: %d bytes queued in memory, %d in the spool", st.SpoolMemBytes, st.SpoolDiskBytes)
	if st.SpoolDiskBytes == 0 {
		t.Error("nothing was spooled to disk while the target was down")
	}
	release()
	if err := dst.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, task.StateSynchronizing)
	time.Sleep(500 * time.Millisecond)
	// The 4 MB backlog goes into a target that fsyncs every write: on an
	// idle machine it is applied in the half second above; under CI's
	// parallel packages (fsyncs queueing behind theirs) it once was not
	// within 2 s. What is tested is that nothing is lost and the source's
	// link stayed up.
	r.settle(t, load, src, 10*time.Second)
	wantLinkKept(t, src)
}

// TestTargetPausedSmallOutputBuffer: the source drops a replica whose
// output buffer passes 1 MiB; the target is paused (SIGSTOP) for 10 s
// under load. resync keeps reading the source into its spool, so the
// source never drops it: no resync of any kind, and the target is exact.
func TestTargetPausedSmallOutputBuffer(t *testing.T) {
	src := redistest.Start(t, "client-output-buffer-limit slave 1mb 1mb 0")
	dst := redistest.Start(t)
	r := startWith(t, src, dst, func(c *task.Config) {
		c.BufferBytes = 256 << 10
		c.SpoolDir = t.TempDir()
	})
	r.waitState(t, task.StateSynchronizing)
	load := redistest.StartLoad(t, src.DialOptions(), 300, time.Millisecond, nil)
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(dst.Pid(), syscall.SIGSTOP)
	time.Sleep(10 * time.Second)
	st := r.task.Status()
	syscall.Kill(dst.Pid(), syscall.SIGCONT)
	t.Logf("after 10 s paused: %d commands sent, %d bytes queued in memory, %d in the spool", load.Sent(), st.SpoolMemBytes, st.SpoolDiskBytes)
	if st.SpoolDiskBytes < 1<<20 {
		t.Errorf("%d bytes spooled: the pause should have queued more than the source's 1 MiB buffer", st.SpoolDiskBytes)
	}
	time.Sleep(300 * time.Millisecond)
	r.settle(t, load, src, 30*time.Second)
	wantLinkKept(t, src)
}

// TestForcedFullResyncIntercept: while the target is down and the
// source unreachable, the source deletes keys and writes past its
// backlog, so that it answers the next PSYNC with a full resync. In
// intercept mode the task empties its target databases first: no key
// the source deleted remains.
func TestForcedFullResyncIntercept(t *testing.T) {
	src := redistest.Start(t, "repl-backlog-size 16kb")
	dst := redistest.Start(t, "appendonly yes", "appendfsync always")
	c := redistest.Dial(t, src)
	for i := range 200 {
		doAll(t, c, []string{"SET", "old:" + strconv.Itoa(i), "v"})
	}
	proxy := startCutProxy(t, src.Addr)
	r := startWith(t, src, dst, func(cfg *task.Config) { cfg.Source.Addr = proxy.ln.Addr().String() })
	r.waitState(t, task.StateSynchronizing)
	r.waitCaughtUp(t, src)
	dst.Kill()
	release := redistest.HoldPort(t, dst)
	proxy.refuse.Store(true)
	redistest.Do(t, src, "CLIENT", "KILL", "TYPE", "slave")
	for i := range 200 {
		doAll(t, c, []string{"DEL", "old:" + strconv.Itoa(i)})
	}
	big := strings.Repeat("x", 1000)
	for i := range 100 { // 100 kB: past the backlog
		doAll(t, c, []string{"SET", "new:" + strconv.Itoa(i), big})
	}
	proxy.refuse.Store(false)
	release()
	if err := dst.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, task.StateSynchronizing)
	r.waitCaughtUpWithin(t, src, 10*time.Second)
	if n := redistest.Do(t, dst, "EXISTS", "old:7"); n != "0" {
		t.Fatal("a key the source deleted is still on the target")
	}
	assertEqual(t, src, dst)
	if full := stat(t, src, "sync_full"); full != 2 {
		t.Fatalf("sync_full %d, want 2 (the forced one)", full)
	}
}

// TestIOTimeout: a target that stops answering (SIGSTOP) is a lost
// connection after the I/O timeout, not a wait forever: the task goes to
// retrying, and catches up once the target answers again.
func TestIOTimeout(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, dst, func(c *task.Config) {
		c.Target.IOTimeout = 500 * time.Millisecond
		c.Target.ConnectTimeout = 500 * time.Millisecond
	})
	r.waitState(t, task.StateSynchronizing)
	load := redistest.StartLoad(t, src.DialOptions(), 100, time.Millisecond, nil)
	syscall.Kill(dst.Pid(), syscall.SIGSTOP)
	deadline := time.Now().Add(5 * time.Second)
	for st := r.task.Status(); st.State != task.StateRetrying; st = r.task.Status() {
		if time.Now().After(deadline) {
			syscall.Kill(dst.Pid(), syscall.SIGCONT)
			t.Fatalf("state %s 5 s after the target stopped answering", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("retrying: %s", r.task.Status().LastError)
	if e := r.task.Status().LastError; !strings.Contains(e, "timed out") && !strings.Contains(e, "timeout") {
		t.Errorf("last error %q does not say it timed out", e)
	}
	time.Sleep(time.Second)
	syscall.Kill(dst.Pid(), syscall.SIGCONT)
	r.waitState(t, task.StateSynchronizing)
	r.settle(t, load, src, 20*time.Second)
}

// TestCheckpointSurvivesFlushAndSwap: FLUSHALL, SWAPDB and FLUSHDB in
// the stream leave the checkpoint in its database (rewritten in the same
// transaction), no stale copy in another, and a restart resumes from it.
func TestCheckpointSurvivesFlushAndSwap(t *testing.T) {
	redistest.RequireVersion(t, 4, 0, "introduced SWAPDB")
	src, dst := redistest.Start(t), redistest.Start(t)
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	c := redistest.Dial(t, src)
	key := "resync:checkpoint:t"
	for _, step := range [][][]string{
		{{"SET", "a", "1"}, {"SELECT", "1"}, {"SET", "b", "1"}},
		{{"FLUSHALL"}, {"SET", "c", "1"}},
		{{"SWAPDB", "0", "1"}, {"SET", "d", "1"}},
		{{"SELECT", "0"}, {"FLUSHDB"}, {"SET", "e", "1"}},
	} {
		doAll(t, c, step...)
		r.waitCaughtUp(t, src)
		assertEqual(t, src, dst)
		if v := redistest.Do(t, dst, "GET", key); !strings.Contains(v, "state=stream") {
			t.Fatalf("after %q: checkpoint %q", step, v)
		}
		d := redistest.Dial(t, dst)
		doAll(t, d, []string{"SELECT", "1"})
		if v, err := d.Do("EXISTS", key); err != nil || v.Int != 0 {
			t.Fatalf("after %q: a checkpoint in db 1 (%v)", step, err)
		}
	}
	// Stopped and started again: it resumes (a partial resync).
	r.stop()
	err := <-r.done
	r.done <- err // for the cleanup
	if err != nil {
		t.Fatal(err)
	}
	doAll(t, c, []string{"SET", "f", "1"})
	r2 := start(t, src, dst)
	r2.waitState(t, task.StateSynchronizing)
	r2.waitCaughtUp(t, src)
	assertEqual(t, src, dst)
	if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 1 || partial != 1 {
		t.Fatalf("sync_full %d, sync_partial_ok %d: want 1 and 1", full, partial)
	}
}

// TestFullSyncPausedTarget: the target is paused (SIGSTOP) for 10 s
// during the full sync while the source takes writes, behind a 4 MiB
// replica output buffer limit (what the source buffers while it sends
// the snapshot fits; what it would buffer during the pause does not).
// resync takes the snapshot into its spool as fast as the source sends
// it and reads the stream meanwhile: the source never drops it, one
// full sync, exact.
func TestFullSyncPausedTarget(t *testing.T) {
	src := redistest.Start(t, "client-output-buffer-limit slave 4mb 4mb 0")
	dst := redistest.Start(t)
	redistest.Do(t, src, "DEBUG", "POPULATE", "300000")
	load := redistest.StartLoad(t, src.DialOptions(), 300, time.Millisecond, nil)
	r := startWith(t, src, dst, func(c *task.Config) {
		c.BufferBytes = 1 << 20
		c.SpoolDir = t.TempDir()
		c.Target.IOTimeout = 30 * time.Second // the pause is not a lost target
	})
	// Mid-copy: once keys are being written.
	for deadline := time.Now().Add(20 * time.Second); r.task.Status().KeysWritten < 1000; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the full sync wrote no keys: %+v", r.task.Status())
		}
	}
	syscall.Kill(dst.Pid(), syscall.SIGSTOP)
	time.Sleep(10 * time.Second)
	st := r.task.Status()
	syscall.Kill(dst.Pid(), syscall.SIGCONT)
	t.Logf("after 10 s paused in the full sync: state %s, %d snapshot bytes received, %d stream bytes queued in memory, %d in the spool",
		st.State, st.RDBBytes, st.SpoolMemBytes, st.SpoolDiskBytes)
	if st.SpoolDiskBytes == 0 {
		t.Error("the stream was not read into the spool during the full sync")
	}
	r.waitState(t, task.StateSynchronizing)
	r.settle(t, load, src, 30*time.Second)
	wantLinkKept(t, src)
}

// TestResumeInAnotherDB: resumed with the source's stream in db 2 and no
// heartbeat (the source's user may not SET), the task checkpoints (in db
// 0) before it writes anything; the next commands still go to db 2.
func TestResumeInAnotherDB(t *testing.T) {
	redistest.RequireVersion(t, 6, 0, "ACL users")
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "ACL", "SETUSER", "syncer", "on", ">pw", "~*", "+@all", "-set")
	as := src.DialOptions()
	as.Username, as.Password = "syncer", "pw"
	c := redistest.Dial(t, src)
	doAll(t, c, []string{"SELECT", "2"}, []string{"SET", "a", "1"})
	run := func() *running {
		r := startWith(t, src, dst, func(cfg *task.Config) {
			cfg.Source = as
			cfg.HeartbeatInterval = 100 * time.Millisecond
		})
		r.waitState(t, task.StateSynchronizing)
		return r
	}
	r := run()
	doAll(t, c, []string{"SET", "b", "1"})
	r.waitCaughtUp(t, src)
	r.stop()
	err := <-r.done
	r.done <- err // for the cleanup
	if err != nil {
		t.Fatal(err)
	}
	r = run()
	time.Sleep(1100 * time.Millisecond)
	// A batch with nothing to write (the reserved prefix is never
	// forwarded), a second after the last checkpoint: a checkpoint alone.
	doAll(t, c, []string{"SET", task.ReservedPrefix + "other", "1"})
	time.Sleep(300 * time.Millisecond)
	doAll(t, c, []string{"SET", "c", "1"})
	r.waitCaughtUp(t, src)
	assertEqual(t, src, dst)
}

// settle stops the load, waits until the task has applied the source's
// whole stream, and compares the target with the source.
func (r *running) settle(t *testing.T, load *redistest.Load, src *redisproc.Server, within time.Duration) {
	t.Helper()
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, src, within)
	assertEqual(t, src, r.dst)
}

// wantLinkKept fails the test unless the source served one full sync and
// no partial one: its link to resync never dropped.
func wantLinkKept(t *testing.T, src *redisproc.Server) {
	t.Helper()
	if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 1 || partial != 0 {
		t.Fatalf("sync_full %d, sync_partial_ok %d: want 1 and 0 (the link stayed up)", full, partial)
	}
}

// TestTargetRestartsEmpty: the target comes back from a restart with
// nothing (no persistence), its checkpoint gone with the rest. The task
// starts over with a full sync instead of resuming a stream the target
// never kept (this used to dereference the dropped stream filter).
func TestTargetRestartsEmpty(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "before", "1")
	r := start(t, src, dst)
	r.waitState(t, task.StateSynchronizing)
	redistest.Do(t, src, "SET", "streamed", "1")
	r.waitCaughtUp(t, src)
	dst.Kill()
	release := redistest.HoldPort(t, dst)
	redistest.Do(t, src, "SET", "while-down", "1")
	time.Sleep(1500 * time.Millisecond)
	release()
	if err := dst.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	redistest.Do(t, src, "SET", "after", "1")
	waitFor(t, r, "the target filled again", func() bool {
		return redistest.Do(t, dst, "EXISTS", "before", "streamed", "while-down", "after") == "4"
	})
	r.waitCaughtUpWithin(t, src, 10*time.Second)
	assertEqual(t, src, dst)
	if full, _ := strconv.Atoi(redisproc.InfoField(redistest.Do(t, src, "INFO", "stats"), "sync_full")); full != 2 {
		t.Errorf("sync_full %d: want 2 (the first, and one for the empty target)", full)
	}
}
