package task_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// waitReplicated waits until replica has every byte of master's stream.
func waitReplicated(t *testing.T, master, replica *redisproc.Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		want := redisproc.InfoField(redistest.Do(t, master, "INFO", "replication"), "master_repl_offset")
		got := redisproc.InfoField(redistest.Do(t, replica, "INFO", "replication"), "slave_repl_offset")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica at %s, master at %s", got, want)
		}
	}
}

// waitPromoted waits until a cluster replica is a master and the cluster
// is whole again as it and the other live nodes see it.
func waitPromoted(t *testing.T, replica *redisproc.Server, others ...*redisproc.Server) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok := redisproc.InfoField(redistest.Do(t, replica, "INFO", "replication"), "role") == "master"
		for _, n := range append(others, replica) {
			ok = ok && redisproc.InfoField(redistest.Do(t, n, "CLUSTER", "INFO"), "cluster_state") == "ok"
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica was not promoted")
		}
	}
}

// failover runs a load on the source's master, lets its replica catch up,
// kills the master, has promote make the replica master, and runs a load
// there: the task follows with a partial resync (PSYNC2 from the same
// offset) and the target ends equal to the new master.
func failover(t *testing.T, master, replica *redisproc.Server, r *running, promote func()) {
	t.Helper()
	r.waitState(t, task.StateSynchronizing)
	load := redistest.StartLoad(t, master.DialOptions(), 200, time.Millisecond, nil)
	time.Sleep(time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, master, replica)
	r.waitCaughtUp(t, master)
	master.Kill()
	redistest.HoldPort(t, master) // no other test's server there meanwhile
	promote()
	load = redistest.StartLoad(t, replica.DialOptions(), 200, time.Millisecond, nil)
	time.Sleep(time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, replica, 20*time.Second)
	assertEqual(t, replica, r.dst)
	if st := r.task.Status(); st.SourceAddr != replica.Addr {
		t.Fatalf("the task reads %s, want the new master %s", st.SourceAddr, replica.Addr)
	}
	full, partial := stat(t, replica, "sync_full"), stat(t, replica, "sync_partial_ok")
	if full != 0 || partial != 1 {
		t.Fatalf("the new master served sync_full %d, sync_partial_ok %d: want 0 and 1", full, partial)
	}
}

// waitSentinelSeesReplica waits until the Sentinel knows the source's
// replica: it must, before the master dies.
func waitSentinelSeesReplica(t *testing.T, s *redisproc.Server) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if v, err := redistest.Dial(t, s).Do("SENTINEL", "slaves", "src"); err == nil && len(v.Elems) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel never saw the replica")
		}
	}
}

// waitSentinelPromoted waits until the Sentinel names rep as the master.
func waitSentinelPromoted(t *testing.T, s, rep *redisproc.Server) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		v, err := redistest.Dial(t, s).Do("SENTINEL", "get-master-addr-by-name", "src")
		if err == nil && len(v.Elems) == 2 && v.Elems[1].Text() == strconv.Itoa(rep.Port) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel did not fail over")
		}
	}
}

// TestSourceFailoverCandidates: the source's replica, given as a
// candidate, is promoted by hand after its master dies.
func TestSourceFailoverCandidates(t *testing.T) {
	redistest.RequireVersion(t, 4, 0, "PSYNC2 lets a promoted replica continue its master's stream")
	m := redistest.Start(t)
	rep := redistest.StartReplica(t, m)
	dst := redistest.Start(t)
	r := startWith(t, m, dst, func(c *task.Config) { c.SourceCandidates = []string{rep.Addr} })
	failover(t, m, rep, r, func() { redistest.Do(t, rep, "SLAVEOF", "NO", "ONE") })
}

// TestSourceFailoverSentinel: a Sentinel promotes the replica; the task
// asks the Sentinel where the master is.
func TestSourceFailoverSentinel(t *testing.T) {
	redistest.RequireVersion(t, 4, 0, "PSYNC2 lets a promoted replica continue its master's stream")
	m := redistest.Start(t)
	rep := redistest.StartReplica(t, m, "slave-priority 10")
	s := redistest.StartSentinel(t, m, "src")
	waitSentinelSeesReplica(t, s)
	dst := redistest.Start(t)
	r := startWith(t, m, dst, func(c *task.Config) {
		c.SourceSentinels = []string{s.Addr}
		c.SourceMaster = "src"
	})
	failover(t, m, rep, r, func() { waitSentinelPromoted(t, s, rep) })
}

// TestSourceFailoverSentinelAuth: the Sentinel asks a password of its
// own; without it the task cannot learn where the master is and says
// so, with it the task follows the failover as above.
func TestSourceFailoverSentinelAuth(t *testing.T) {
	redistest.RequireVersion(t, 5, 0, "Sentinel's requirepass came with 5.0.1")
	m := redistest.Start(t)
	rep := redistest.StartReplica(t, m, "slave-priority 10")
	so := redistest.Options(t)
	so.Password = "sentinel-pw"
	s := redistest.StartSentinelWith(t, so, m, "src")
	waitSentinelSeesReplica(t, s)
	dst := redistest.Start(t)
	noAuth := task.New(task.Config{Name: "noauth", Source: m.DialOptions(), Target: dst.DialOptions(),
		SourceSentinels: []string{s.Addr}, SourceMaster: "src"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := noAuth.Run(ctx); err == nil || !strings.Contains(err.Error(), s.Addr) || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a Sentinel that wants a password, none given: %v", err)
	}
	r := startWith(t, m, dst, func(c *task.Config) {
		c.SourceSentinels = []string{s.Addr}
		c.SourceMaster = "src"
		c.SourceSentinelAuth = dialer.Options{Password: "sentinel-pw"}
	})
	failover(t, m, rep, r, func() { waitSentinelPromoted(t, s, rep) })
}

// TestTargetClusterFailover kills a master of the target cluster under a
// load of non-idempotent commands; the cluster promotes its replica. The
// task retries, re-reads the checkpoints from the new master (which may
// have lost writes the old one confirmed) and sends again from there:
// exact afterwards.
func TestTargetClusterFailover(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 1)
	r := startWith(t, src, dst.Masters[0], func(c *task.Config) { c.SplitTransactions = true })
	r.waitState(t, task.StateSynchronizing)
	load := redistest.StartLoad(t, src.DialOptions(), 300, time.Millisecond, nil)
	time.Sleep(time.Second)
	dst.Masters[1].Kill()
	redistest.HoldPort(t, dst.Masters[1])
	promoted := dst.Replicas[1][0]
	waitPromoted(t, promoted, dst.Masters[0], dst.Masters[2])
	time.Sleep(time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, task.StateSynchronizing)
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.Masters[0].DialOptions(),
		compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range rep.Diffs {
		if i < 10 {
			t.Error(d)
		}
	}
	if !rep.Equal() || rep.Keys == 0 {
		t.Fatalf("%d of %d keys differ", len(rep.Diffs), rep.Keys)
	}
	retries, full := r.task.Status().Retries, stat(t, src, "sync_full")
	t.Logf("%d commands; %d retries; sync_full %d, sync_partial_ok %d", load.Sent(), retries, full, stat(t, src, "sync_partial_ok"))
	if retries == 0 || full != 1 {
		t.Fatalf("%d retries (want some), sync_full %d (want 1: the spool resent what the failover lost)", retries, full)
	}
}

// TestClusterSourceShardFailover: a master of the source cluster dies
// and the cluster promotes its replica; that shard's task finds the new
// master from the other nodes and continues with a partial resync.
func TestClusterSourceShardFailover(t *testing.T) {
	redistest.RequireVersion(t, 4, 0, "PSYNC2 lets a promoted replica continue its master's stream")
	src := redistest.StartCluster(t, 3, 1)
	dst := redistest.Start(t)
	clusterLoad(t, src, "before:", 200)
	r := start(t, src.Masters[0], dst)
	r.waitShards(t, src)
	dead, promoted := src.Masters[1], src.Replicas[1][0]
	waitReplicated(t, dead, promoted)
	dead.Kill()
	redistest.HoldPort(t, dead)
	waitPromoted(t, promoted, src.Masters[0], src.Masters[2])
	// The cluster as it is now: the promoted replica in its master's place.
	now := &redisproc.Cluster{Masters: []*redisproc.Server{src.Masters[0], promoted, src.Masters[2]}}
	clusterLoad(t, now, "after:", 200)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := r.task.Status()
		follows := false
		for _, sh := range st.Shards {
			follows = follows || sh.SourceAddr == promoted.Addr && sh.State == task.StateSynchronizing
		}
		if follows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shard follows the promoted replica: %+v", st.Shards)
		}
	}
	r.waitShards(t, now)
	// Before 7.0 a source replicates relative TTLs as typed, which resync
	// dates by their arrival: after a failover the first commands of the
	// new master come seconds late (no heartbeat bounds them yet).
	var tolerance time.Duration
	if !redistest.Version(t).AtLeast(7, 0) {
		tolerance = 5 * time.Second
	}
	rep, err := compare.Compare(context.Background(), promoted.DialOptions(), dst.DialOptions(),
		compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix, TTLTolerance: tolerance})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() || rep.Keys == 0 {
		t.Fatalf("%d of %d keys differ: %v", len(rep.Diffs), rep.Keys, rep.Diffs)
	}
	if full, partial := stat(t, promoted, "sync_full"), stat(t, promoted, "sync_partial_ok"); full != 0 || partial != 1 {
		t.Fatalf("the promoted replica served sync_full %d, sync_partial_ok %d: want 0 and 1", full, partial)
	}
}

// TestTargetFailoverSentinel: a standalone target's master dies under a
// load of non-idempotent commands and its Sentinel promotes the replica;
// the task asks the Sentinel, reads the checkpoint from the new master
// (which may lack the last writes the old one confirmed) and sends again
// from there: exact, no full sync.
func TestTargetFailoverSentinel(t *testing.T) {
	src := redistest.Start(t)
	tm := redistest.Start(t)
	tr := redistest.StartReplica(t, tm)
	s := redistest.StartSentinel(t, tm, "dst")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if v, err := redistest.Dial(t, s).Do("SENTINEL", "slaves", "dst"); err == nil && len(v.Elems) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel never saw the replica")
		}
	}
	r := startWith(t, src, tm, func(c *task.Config) {
		c.TargetSentinels = []string{s.Addr}
		c.TargetMaster = "dst"
	})
	r.waitState(t, task.StateSynchronizing)
	load := redistest.StartLoad(t, src.DialOptions(), 300, time.Millisecond, nil)
	time.Sleep(time.Second)
	tm.Kill()
	redistest.HoldPort(t, tm)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if redisproc.InfoField(redistest.Do(t, tr, "INFO", "replication"), "role") == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel did not promote the replica")
		}
	}
	time.Sleep(time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	r.waitState(t, task.StateSynchronizing)
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	assertEqual(t, src, tr)
	if st := r.task.Status(); st.TargetAddr != tr.Addr || st.Retries == 0 {
		t.Fatalf("target %s (want %s), %d retries", st.TargetAddr, tr.Addr, st.Retries)
	}
	if full := stat(t, src, "sync_full"); full != 1 {
		t.Fatalf("sync_full %d, want 1", full)
	}
}
