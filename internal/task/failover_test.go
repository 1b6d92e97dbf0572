package task_test

import (
	"strconv"
	"testing"
	"time"

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
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// The Sentinel must know the replica before the master dies.
		if v, err := redistest.Dial(t, s).Do("SENTINEL", "slaves", "src"); err == nil && len(v.Elems) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel never saw the replica")
		}
	}
	dst := redistest.Start(t)
	r := startWith(t, m, dst, func(c *task.Config) {
		c.SourceSentinels = []string{s.Addr}
		c.SourceMaster = "src"
	})
	failover(t, m, rep, r, func() {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			v, err := redistest.Dial(t, s).Do("SENTINEL", "get-master-addr-by-name", "src")
			if err == nil && len(v.Elems) == 2 && v.Elems[1].Text() == strconv.Itoa(rep.Port) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the Sentinel did not fail over")
			}
		}
	})
}
