package task_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/status"
	"github.com/resync/resync/internal/task"
)

// TestSeveralTargets: one source into three targets in one task. The
// source serves one full sync to one replica (it is read once). Under a
// write load, the third target is stopped for 10 s: the other two stay
// current (lag under a second, sampled all along), the source is
// acknowledged no more than the stopped target applied, and the stopped
// one catches up from its own queue once back. All three end equal to
// the source, and the source's link never dropped. With a spool
// directory the snapshot is shared through a file, without one through
// memory.
func TestSeveralTargets(t *testing.T) {
	for _, spooled := range []bool{true, false} {
		t.Run(map[bool]string{true: "spool-dir", false: "memory"}[spooled], func(t *testing.T) { severalTargets(t, spooled) })
	}
}

func severalTargets(t *testing.T, spooled bool) {
	src := redistest.Start(t)
	fill(t, src)
	bulk(t, src, 20000)
	d1, d2 := redistest.Start(t), redistest.Start(t)
	d3 := redistest.Start(t, "appendonly yes", "appendfsync always")
	r := startWith(t, src, d1, func(c *task.Config) {
		c.ExtraTargets = []dialer.Options{d2.DialOptions(), d3.DialOptions()}
		if spooled {
			c.SpoolDir = t.TempDir()
		}
		c.HeartbeatInterval = 100 * time.Millisecond
	})
	r.waitState(t, task.StateSynchronizing)
	if n := redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "connected_slaves"); n != "1" {
		t.Fatalf("%s replicas connected to the source: want one link for the three targets", n)
	}
	if full := stat(t, src, "sync_full"); full != 1 {
		t.Fatalf("the source served %d full syncs: want one for the three targets", full)
	}
	st := r.task.Status()
	if len(st.Targets) != 3 || st.Targets[2].TargetAddr != d3.Addr {
		t.Fatalf("status targets %+v", st.Targets)
	}

	o := src.DialOptions()
	o.DB = 2
	load := redistest.StartLoad(t, o, 300, time.Millisecond, nil)
	time.Sleep(time.Second)
	d3.Kill()
	release := redistest.HoldPort(t, d3)
	var worst [2]int64
	samples := 0
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st := r.task.Status()
		for i := range 2 {
			ts := st.Targets[i]
			if ts.State != task.StateSynchronizing || ts.LagMs < 0 {
				t.Fatalf("target %s while %s is stopped: state %s, lag %d ms", ts.TargetAddr, d3.Addr, ts.State, ts.LagMs)
			}
			worst[i] = max(worst[i], ts.LagMs)
		}
		samples++
	}
	st = r.task.Status()
	t.Logf("over %d samples in 10 s, %d commands sent: worst lag %d ms and %d ms; stopped target %s, applied %d of %d received, last error %q",
		samples, load.Sent(), worst[0], worst[1], st.Targets[2].State, st.Targets[2].Applied, st.Received, st.Targets[2].LastError)
	for i, w := range worst {
		if w >= 1000 {
			t.Errorf("target %d's lag reached %d ms while another was stopped: want under a second", i+1, w)
		}
	}
	if st.Targets[2].State != task.StateRetrying || st.State != task.StateRetrying {
		t.Errorf("stopped target %s, task %s: want both retrying", st.Targets[2].State, st.State)
	}
	d := status.FromTask(st)
	if len(d.Targets) != 3 || d.Targets[2].Address != d3.Addr || d.Targets[2].State != task.StateRetrying || d.Targets[2].LastError == "" ||
		d.Targets[0].LagMs == nil || *d.Targets[0].LagMs >= 1000 || d.Targets[1].State != task.StateSynchronizing {
		b, _ := json.Marshal(d.Targets)
		t.Errorf("the status document's targets: %s", b)
	}
	if acked := redistest.ReplicaOffset(t, src); acked > st.Targets[2].Applied || acked >= st.Targets[0].Applied {
		t.Errorf("the source was acknowledged %d; the stopped target applied %d, the others %d: want the slowest's",
			acked, st.Targets[2].Applied, st.Targets[0].Applied)
	}
	release()
	if err := d3.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	for _, d := range []*redisproc.Server{d1, d2, d3} {
		assertEqual(t, src, d)
	}
	// The heartbeat moves the offsets on; ACKs go every second.
	caughtUp := r.task.Status().Applied
	time.Sleep(1500 * time.Millisecond)
	if acked := redistest.ReplicaOffset(t, src); acked < caughtUp {
		t.Errorf("the source was acknowledged %d, after every target applied %d", acked, caughtUp)
	}
	if lag := r.task.Status().Targets[2].LagMs; lag < 0 || lag >= 1000 {
		t.Errorf("the target back from its stop has a lag of %d ms", lag)
	}
	wantLinkKept(t, src)
}

// TestSeveralTargetsResume: a task of two targets is stopped; the
// source is written meanwhile; the task starts again with a third,
// empty target. The two resume from their checkpoints through one
// shared link (one partial resync), the new one gets a link of its own
// and a full sync; all three end equal to the source.
func TestSeveralTargetsResume(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	d1, d2, d3 := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	set := func(extra ...*redisproc.Server) func(*task.Config) {
		return func(c *task.Config) {
			for _, d := range extra {
				c.ExtraTargets = append(c.ExtraTargets, d.DialOptions())
			}
			c.SpoolDir = t.TempDir()
		}
	}
	r := startWith(t, src, d1, set(d2))
	r.waitState(t, task.StateSynchronizing)
	runLoad(t, src, 10)
	r.waitCaughtUp(t, src)
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the cleanup
	runLoad(t, src, 10)
	r = startWith(t, src, d1, set(d2, d3))
	r.waitState(t, task.StateSynchronizing)
	runLoad(t, src, 10)
	r.waitCaughtUpWithin(t, src, 10*time.Second)
	for _, d := range []*redisproc.Server{d1, d2, d3} {
		assertEqual(t, src, d)
	}
	if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 2 || partial != 1 {
		t.Fatalf("sync_full %d, sync_partial_ok %d: want 2 (the first start, the new target) and 1 (the two resuming, together)", full, partial)
	}
}

// TestSeveralTargetsFallBehind: with small buffers and no spool
// directory, a target paused under load falls out of the shared link
// (its queue is full): the others stay current, and it gets a link of
// its own, continuing from what it had received (a partial resync from
// the source's backlog); all three end equal.
func TestSeveralTargetsFallBehind(t *testing.T) {
	src := redistest.Start(t, "repl-backlog-size 64mb")
	d1, d2, d3 := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, d1, func(c *task.Config) {
		c.ExtraTargets = []dialer.Options{d2.DialOptions(), d3.DialOptions()}
		c.BufferBytes = 1 << 20 // each target's share: the 1 MiB floor
		c.HeartbeatInterval = 100 * time.Millisecond
	})
	r.waitState(t, task.StateSynchronizing)
	o := src.DialOptions()
	o.DB = 2
	load := redistest.StartLoad(t, o, 300, time.Millisecond, nil)
	time.Sleep(500 * time.Millisecond)
	syscall.Kill(d3.Pid(), syscall.SIGSTOP)
	var worst int64
	big := strings.Repeat("x", 100<<10)
	c := redistest.Dial(t, src)
	for i := 0; i < 50; i++ { // 5 MB: more than the paused target's share
		if _, err := c.Do("SET", "big:"+strconv.Itoa(i%10), big); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		st := r.task.Status()
		worst = max(worst, st.Targets[0].LagMs, st.Targets[1].LagMs)
	}
	st := r.task.Status().Targets[2]
	t.Logf("the paused target: %s, %d bytes queued, last error %q", st.State, st.SpoolMemBytes, st.LastError)
	syscall.Kill(d3.Pid(), syscall.SIGCONT)
	if worst >= 1000 {
		t.Errorf("the other targets' lag reached %d ms", worst)
	}
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	for _, d := range []*redisproc.Server{d1, d2, d3} {
		assertEqual(t, src, d)
	}
	if n := redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "connected_slaves"); n != "2" {
		t.Errorf("%s replicas connected: want the shared link and the fallen-behind target's own", n)
	}
	if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 1 || partial != 1 {
		t.Errorf("sync_full %d, sync_partial_ok %d: want 1 and 1 (the target's own link continues)", full, partial)
	}
}

// TestClusterSourceSeveralTargets: a cluster of three masters into a
// cluster and a standalone server in one task. Each source master serves
// one link (one replica, one full sync) for both targets; both end equal
// to the source, and the status lists three shards and two targets.
func TestClusterSourceSeveralTargets(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.StartCluster(t, 3, 0)
	three := redistest.StartCluster(t, 3, 0)
	single := redistest.Start(t)
	clusterLoad(t, src, "before:", 300)
	r := startWith(t, src.Masters[0], three.Masters[0], func(c *task.Config) {
		c.ExtraTargets = []dialer.Options{single.DialOptions()}
		c.SpoolDir = t.TempDir()
	})
	r.waitShards(t, src)
	clusterLoad(t, src, "after:", 300)
	r.waitShards(t, src)
	for _, dst := range []*redisproc.Server{three.Masters[1], single} {
		rep, err := compare.Compare(context.Background(), src.Masters[0].DialOptions(), dst.DialOptions(),
			compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
		if err != nil || !rep.Equal() || rep.Keys < 600 {
			t.Fatalf("%s: %v, %d keys, %v", dst.Addr, err, rep.Keys, rep.Diffs)
		}
	}
	for _, m := range src.Masters {
		if n := redisproc.InfoField(redistest.Do(t, m, "INFO", "replication"), "connected_slaves"); n != "1" || stat(t, m, "sync_full") != 1 {
			t.Errorf("source master %s: %s replicas, %d full syncs: want one link for both targets", m.Addr, n, stat(t, m, "sync_full"))
		}
	}
	st := r.task.Status()
	if len(st.Shards) != 3 || len(st.Targets) != 2 || len(st.Targets[0].Shards) != 3 || st.State != task.StateSynchronizing {
		t.Fatalf("status: %d shards, %d targets, state %s", len(st.Shards), len(st.Targets), st.State)
	}
}

// TestScanModeSeveralTargets: scan mode into two targets, each scanning
// and following notifications on its own; both end equal under a load.
func TestScanModeSeveralTargets(t *testing.T) {
	d2 := redistest.Start(t)
	src, d1, r := scanSource(t, func(src *redisproc.Server) { fill(t, src) }, func(cfg *task.Config) {
		cfg.ExtraTargets = []dialer.Options{d2.DialOptions()}
	})
	r.waitState(t, task.StateSynchronizing)
	scanLoad(t, src, 10)
	for _, dst := range []*redisproc.Server{d1, d2} {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(),
				compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Equal() && rep.Keys > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d keys compared, differences: %v", dst.Addr, rep.Keys, rep.Diffs)
			}
		}
	}
	if st := r.task.Status(); st.Mode != task.SourceScan || len(st.Targets) != 2 {
		t.Fatalf("status: mode %s, %d targets", st.Mode, len(st.Targets))
	}
}

// TestSeveralTargetsSourceLost: the source drops its replication link
// (CLIENT KILL) under load, twice. The three targets ask again together
// and share one link again: one partial resync each time, never a full
// one, one replica; all three end equal.
func TestSeveralTargetsSourceLost(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src)
	d1, d2, d3 := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, d1, func(c *task.Config) {
		c.ExtraTargets = []dialer.Options{d2.DialOptions(), d3.DialOptions()}
		c.SpoolDir = t.TempDir()
	})
	r.waitState(t, task.StateSynchronizing)
	o := src.DialOptions()
	o.DB = 2
	load := redistest.StartLoad(t, o, 100, time.Millisecond, nil)
	for range 2 {
		time.Sleep(time.Second)
		redistest.Do(t, src, "CLIENT", "KILL", "TYPE", "slave") // "slave": every version
	}
	time.Sleep(time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	for _, d := range []*redisproc.Server{d1, d2, d3} {
		assertEqual(t, src, d)
	}
	if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 1 || partial != 2 {
		t.Errorf("sync_full %d, sync_partial_ok %d: want 1 and 2 (the targets asked again together)", full, partial)
	}
	if n := redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "connected_slaves"); n != "1" {
		t.Errorf("%s replicas connected: want the one shared link", n)
	}
}
