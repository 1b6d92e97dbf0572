package redistest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// gone fails the test unless every pid has exited and been reaped.
func gone(t *testing.T, pids []int) {
	t.Helper()
	if len(pids) == 0 {
		t.Fatal("no processes were recorded")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("redis-server pid %d still exists after the test (kill -0: %v)", pid, err)
		}
	}
}

func pidsOf(servers ...*redisproc.Server) []int {
	var pids []int
	for _, s := range servers {
		pids = append(pids, s.Pid())
	}
	return pids
}

func TestStandalone(t *testing.T) {
	var pids []int
	t.Run("server", func(t *testing.T) {
		s := redistest.Start(t, "maxmemory 10mb", "maxmemory-policy noeviction")
		pids = pidsOf(s)
		redistest.Do(t, s, "SET", "k", "v")
		if got := redistest.Do(t, s, "GET", "k"); got != "v" {
			t.Fatalf("GET k = %q", got)
		}
		ctx := context.Background()
		ver, err := s.Info(ctx, "server", "redis_version")
		if err != nil {
			t.Fatal(err)
		}
		if ver != s.Version.String() || s.Version != redistest.Version(t) {
			t.Fatalf("INFO says %s, the rig read %s", ver, s.Version)
		}
		c := redistest.Dial(t, s)
		for param, want := range map[string]string{"maxmemory": "10485760", "save": "", "appendonly": "no", "repl-diskless-sync-delay": "0"} {
			v, err := c.Do("CONFIG", "GET", param)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Elems) != 2 || v.Elems[1].Text() != want {
				t.Errorf("CONFIG GET %s = %v, want %q", param, v, want)
			}
		}
		if !strings.Contains(strings.ToLower(s.Log()), "ready to accept connections") {
			t.Errorf("the server's log lacks its start-up line:\n%s", s.Log())
		}
	})
	gone(t, pids)
}

func TestKillAndRestartKeepData(t *testing.T) {
	s := redistest.Start(t, "appendonly yes")
	redistest.Do(t, s, "SET", "k", "kept")
	old := s.Pid()
	if err := s.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Pid() == old {
		t.Fatal("Restart did not start a new process")
	}
	if got := redistest.Do(t, s, "GET", "k"); got != "kept" {
		t.Fatalf("after restart GET k = %q, want the AOF's value", got)
	}
	gone(t, []int{old})
}

func TestBadConfigSaysWhy(t *testing.T) {
	_, err := redisproc.Start(context.Background(), redistest.Options(t, "no-such-directive yes"))
	if err == nil || !strings.Contains(err.Error(), "no-such-directive") {
		t.Fatalf("got %v, want the server's complaint about the directive", err)
	}
}

func TestReplica(t *testing.T) {
	var pids []int
	t.Run("replica", func(t *testing.T) {
		m := redistest.Start(t)
		redistest.Do(t, m, "SET", "before", "1")
		r := redistest.StartReplica(t, m)
		pids = pidsOf(m, r)
		ctx := context.Background()
		if st, err := r.Info(ctx, "replication", "master_link_status"); err != nil || st != "up" {
			t.Fatalf("master_link_status %q, %v", st, err)
		}
		if got := redistest.Do(t, r, "GET", "before"); got != "1" {
			t.Fatalf("replica lacks the data of the initial sync: GET before = %q", got)
		}
	})
	gone(t, pids)
}

func TestReplicaWithPassword(t *testing.T) {
	o := redistest.Options(t)
	o.Password = `s3 "cr\et` // quoted in redis.conf
	if !redistest.Version(t).AtLeast(5, 0) {
		// Replicas before 5.0 send masterauth as an inline command, which
		// cannot carry quotes or spaces.
		o.Password = "s3cret"
	}
	m := redistest.StartWith(t, o)
	r := redistest.StartReplica(t, m)
	if got := redistest.Do(t, r, "PING"); got != "PONG" {
		t.Fatalf("PING = %q", got)
	}
}

func TestCluster(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 1)
		pids = pidsOf(c.Nodes()...)
		if len(c.Masters) != 3 || len(pids) != 6 {
			t.Fatalf("%d masters, %d nodes", len(c.Masters), len(pids))
		}
		for _, n := range c.Nodes() {
			info := redistest.Do(t, n, "CLUSTER", "INFO")
			for field, want := range map[string]string{"cluster_state": "ok", "cluster_known_nodes": "6", "cluster_size": "3", "cluster_slots_assigned": "16384"} {
				if got := redisproc.InfoField(info, field); got != want {
					t.Errorf("%s: %s = %q, want %q", n.Addr, field, got, want)
				}
			}
		}
		for i, m := range c.Masters {
			first, last := redisproc.SlotRange(i, 3)
			// A key routed to this master's first slot is accepted there.
			nodes := redistest.Do(t, m, "CLUSTER", "NODES")
			if !strings.Contains(nodes, "myself,master") || !strings.Contains(nodes, " "+strconv.Itoa(first)+"-"+strconv.Itoa(last)) {
				t.Errorf("master %d does not hold slots %d-%d:\n%s", i, first, last, nodes)
			}
			role, _ := c.Replicas[i][0].Info(context.Background(), "replication", "role")
			if role != "slave" {
				t.Errorf("replica of master %d has role %q", i, role)
			}
		}
		// A write reaches the owning master; another master redirects it.
		reply, err := c.Masters[0].Do(context.Background(), "SET", "{06S}k", "v") // slot 0
		if err != nil || reply != "OK" {
			t.Fatalf("SET on the slot's owner: %q %v", reply, err)
		}
		if _, err := c.Masters[1].Do(context.Background(), "SET", "{06S}k", "v"); err == nil || !strings.Contains(err.Error(), "MOVED 0 ") {
			t.Fatalf("SET on another master: %v, want MOVED 0", err)
		}
	})
	gone(t, pids)
}

func TestSentinel(t *testing.T) {
	var pids []int
	t.Run("sentinel", func(t *testing.T) {
		m := redistest.Start(t)
		r := redistest.StartReplica(t, m)
		s := redistest.StartSentinel(t, m, "mymaster")
		pids = pidsOf(m, r, s)
		// Sentinel learns replicas from the master's INFO, every few seconds.
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := s.SentinelMaster(context.Background(), "mymaster")
			if err != nil {
				t.Fatal(err)
			}
			if st["flags"] != "master" {
				t.Fatalf("sentinel flags %q", st["flags"])
			}
			if st["num-slaves"] == "1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel never saw the replica: %v", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	gone(t, pids)
}

func TestRequireVersionSkipsWithReason(t *testing.T) {
	var sub *testing.T
	t.Run("future", func(t *testing.T) {
		sub = t
		redistest.RequireVersion(t, 99, 0, "is needed for nothing yet")
		t.Error("RequireVersion(99.0) did not skip")
	})
	if !sub.Skipped() {
		t.Fatal("the test was not skipped")
	}
	t.Run("present", func(t *testing.T) {
		redistest.RequireVersion(t, 2, 8, "is the oldest supported")
	})
}
