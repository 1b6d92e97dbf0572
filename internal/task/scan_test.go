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
	"github.com/resync/resync/internal/task"
)

// scanSource starts a source whose user "scanner" may do everything but
// replicate (PSYNC and SYNC denied by ACL), fills it with fill, and
// starts a task in scan mode from it into a new standalone target,
// allowed to turn the keyspace notifications on.
func scanSource(t *testing.T, fill func(*redisproc.Server), set func(*task.Config)) (src, dst *redisproc.Server, r *running) {
	t.Helper()
	redistest.RequireVersion(t, 7, 0, "gave PEXPIRETIME, which scan mode reads expiries with exactly")
	src, r = scanInto(t, redistest.Start(t), fill, set)
	return src, r.dst, r
}

// scanInto is scanSource into dst (a cluster's node, say).
func scanInto(t *testing.T, dst *redisproc.Server, fill func(*redisproc.Server), set func(*task.Config)) (src *redisproc.Server, r *running) {
	t.Helper()
	src = redistest.Start(t)
	doAll(t, redistest.Dial(t, src), s("ACL", "SETUSER", "scanner", "on", ">scan-pw", "~*", "&*", "+@all", "-psync", "-sync"))
	if fill != nil {
		fill(src)
	}
	r = startWith(t, src, dst, func(cfg *task.Config) {
		cfg.Source.Username, cfg.Source.Password = "scanner", "scan-pw"
		cfg.SourceMode = task.SourceScan
		cfg.EnableNotifications = true
		cfg.HeartbeatInterval = 50 * time.Millisecond
		if set != nil {
			set(cfg)
		}
	})
	return src, r
}

// scanLoad runs rounds of the load commands scan mode can follow: every
// write to a key notifies it. Left out: what notifies no key (SWAPDB;
// FUNCTION; a consumer group's reads and claims, XREADGROUP, XCLAIM and
// XAUTOCLAIM, which move its delivery state silently), and EVALSHA (it
// needs its script loaded).
func scanLoad(t *testing.T, src *redisproc.Server, rounds int) {
	t.Helper()
	scanLoadIn(t, src, "0", rounds)
}

// scanLoadIn is scanLoad in database db.
func scanLoadIn(t *testing.T, src *redisproc.Server, db string, rounds int) {
	t.Helper()
	c := redistest.Dial(t, src)
	if _, err := c.Do("SELECT", db); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= rounds; i++ {
		for _, lc := range loadCommands() {
			args := lc.args(i)
			switch strings.ToUpper(args[0]) {
			case "SWAPDB", "FUNCTION", "EVALSHA", "SCRIPT", "XREADGROUP", "XCLAIM", "XAUTOCLAIM":
				continue
			}
			if _, err := c.Do(args...); err != nil && !strings.Contains(err.Error(), "ERR") {
				t.Fatalf("%q: %v", args, err)
			}
		}
	}
}

// waitEqual waits until the target holds what the source does.
func waitEqual(t *testing.T, src, dst *redisproc.Server, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(),
			compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Diffs) == 0 && rep.Keys > 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, d := range rep.Diffs {
				if i < 20 {
					t.Error(d)
				}
			}
			t.Fatalf("%d differences after %s", len(rep.Diffs), within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Scan mode against a source whose user may not PSYNC: the copy equals
// the source, the writes made during it and after are followed, the
// status says mode scan and measures a lag, and a lost subscription
// (the source drops it) costs a second copy, not a difference.
func TestScanMode(t *testing.T) {
	// 20,000 keys a second: a copy that lasts long enough to write
	// during it, and the rate's own test.
	src, dst, r := scanSource(t, func(src *redisproc.Server) { fill(t, src); bulk(t, src, 20000) },
		func(cfg *task.Config) { cfg.ScanRate = 20000 })
	r.waitState(t, task.StateFullSync)
	began := time.Now()
	scanLoad(t, src, 10) // while the keys are copied
	if st := r.task.Status(); st.State != task.StateFullSync {
		t.Fatalf("the load ended after the copy (state %s): it overlapped nothing", st.State)
	}
	r.waitState(t, task.StateSynchronizing)
	if d := time.Since(began); d < 700*time.Millisecond {
		t.Fatalf("20,000 keys copied in %s at --scan-rate 20000", d)
	}
	st := r.task.Status()
	if st.Mode != task.SourceScan {
		t.Fatalf("status mode %q", st.Mode)
	}
	if flags := notifyFlags(t, src); !strings.Contains(flags, "K") || !strings.Contains(flags, "A") {
		t.Fatalf("the source's notify-keyspace-events after --enable-notifications: %q", flags)
	}
	scanLoad(t, src, 20)
	waitEqual(t, src, dst, 10*time.Second)
	if st := r.task.Status(); st.LagMs < 0 || st.LagMs > 2000 {
		t.Fatalf("lag %d ms in scan mode", st.LagMs)
	}

	// The source drops the subscription: the task copies everything
	// again, and what was written meanwhile arrives.
	retries := r.task.Status().Retries
	redistest.Do(t, src, "CLIENT", "KILL", "TYPE", "pubsub")
	scanLoad(t, src, 5)
	waitEqual(t, src, dst, 15*time.Second)
	if st := r.task.Status(); st.Retries <= retries {
		t.Fatalf("retries %d after the lost subscription (were %d)", st.Retries, retries)
	}
	// resync's own keys stay out: the heartbeat notifies, it is not copied.
	if n := redistest.Do(t, dst, "EXISTS", r.task.HeartbeatKey()); n != "0" {
		t.Fatal("the heartbeat reached the target")
	}
}

// Without the user's consent, scan mode does not touch the source's
// configuration: it fails, saying how to proceed.
func TestScanModeNeedsNotifications(t *testing.T) {
	src, _, r := scanSource(t, nil, func(cfg *task.Config) { cfg.EnableNotifications = false })
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "--enable-notifications") || !strings.Contains(err.Error(), "notify-keyspace-events") {
			t.Fatalf("task ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the task did not fail")
	}
	if flags := notifyFlags(t, src); strings.Contains(flags, "K") {
		t.Fatalf("the source's notifications were turned on without consent: %q", flags)
	}
}

func notifyFlags(t *testing.T, s *redisproc.Server) string {
	t.Helper()
	v, err := redistest.Dial(t, s).Do("CONFIG", "GET", "notify-keyspace-events")
	if err != nil || len(v.Elems) != 2 {
		t.Fatalf("CONFIG GET notify-keyspace-events: %v", err)
	}
	return v.Elems[1].Text()
}

// The target restarts (with nothing: no persistence) while scan mode
// follows a load: the task retries, copies everything again into the
// new target through a new connection, and ends equal.
func TestScanModeTargetRestarts(t *testing.T) {
	src, dst, r := scanSource(t, func(src *redisproc.Server) { fill(t, src) }, nil)
	r.waitState(t, task.StateSynchronizing)
	scanLoad(t, src, 5)
	dst.Kill()
	release := redistest.HoldPort(t, dst)
	scanLoad(t, src, 5) // while the target is down
	deadline := time.Now().Add(5 * time.Second)
	for st := r.task.Status(); st.State != task.StateRetrying; st = r.task.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("state %s with the target down, want retrying", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()
	if err := dst.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	scanLoad(t, src, 5)
	waitEqual(t, src, dst, 15*time.Second)
}

// Scan mode into a cluster target: db 3 of the source mapped to the
// cluster's db 0. Each notified key is copied alone, so commands whose
// keys span slots (RENAME, SMOVE, MSET…) need no splitting.
func TestScanModeIntoCluster(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "gave PEXPIRETIME")
	dst := redistest.StartCluster(t, 3, 0)
	fc := filter.Config{DBs: []int{3}, MapDB: map[int]int{3: 0}}
	src, r := scanInto(t, dst.Masters[0], func(src *redisproc.Server) { fill(t, src) }, func(cfg *task.Config) { cfg.Filter = fc })
	r.waitState(t, task.StateSynchronizing)
	scanLoadIn(t, src, "3", 10)
	fc.ReservedPrefix = task.ReservedPrefix
	f, err := filter.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.Masters[1].DialOptions(), compare.Options{Filter: f, Reverse: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Equal() && rep.Keys > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys compared, differences: %v", rep.Keys, rep.Diffs)
		}
	}
}

// scanCluster starts a scan-mode task from a cluster of three masters,
// whose user is denied PSYNC and which holds clusterLoad's keys, into a
// standalone target, and waits until it follows the source.
func scanCluster(t *testing.T) (src *redisproc.Cluster, dst *redisproc.Server, r *running) {
	t.Helper()
	redistest.RequireVersion(t, 7, 0, "gave PEXPIRETIME")
	src = redistest.StartCluster(t, 3, 0)
	for _, m := range src.Masters {
		doAll(t, redistest.Dial(t, m), s("ACL", "SETUSER", "scanner", "on", ">scan-pw", "~*", "&*", "+@all", "-psync", "-sync"))
	}
	clusterLoad(t, src, "before:", 300)
	dst = redistest.Start(t)
	r = startWith(t, src.Masters[0], dst, func(cfg *task.Config) {
		cfg.Source.Username, cfg.Source.Password = "scanner", "scan-pw"
		cfg.SourceMode = task.SourceScan
		cfg.EnableNotifications = true
		cfg.HeartbeatInterval = 50 * time.Millisecond
	})
	r.waitState(t, task.StateSynchronizing)
	return src, dst, r
}

// TestScanModeClusterSource: scan mode from a cluster of three masters:
// each master is scanned and followed on its own (notifications are per
// node), into a standalone target, under a load on every master; the
// target ends equal.
func TestScanModeClusterSource(t *testing.T) {
	src, dst, r := scanCluster(t)
	clusterLoad(t, src, "after:", 300)
	waitEqual(t, src.Masters[1], dst, 15*time.Second)
	st := r.task.Status()
	if st.Mode != task.SourceScan || len(st.Shards) != 3 || st.LagMs < 0 {
		t.Fatalf("status: mode %s, %d shards, lag %d", st.Mode, len(st.Shards), st.LagMs)
	}
}

// TestScanModeSourceReshard: slots of a cluster source move to another
// master while a scan-mode task follows it. The old master notifies each
// moved key as deleted, yet no longer serves it (ASK, MOVED): the key is
// read where it went. A key deleted while its slot moves is notified by
// the old master only, and deleted on the target. The target ends
// equal, the task never fails nor retries.
func TestScanModeSourceReshard(t *testing.T) {
	src, dst, r := scanCluster(t)
	from := onMaster(t, src, "before:7")
	var first string // a key that moved
	to := src.Masters[0]
	if to == from {
		to = src.Masters[1]
	}
	ctx := context.Background()
	moved := 0
	keys, err := redistest.Dial(t, from).Do("KEYS", "before:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range keys.Elems {
		k := kv.Text()
		slot := cluster.Slot([]byte(k))
		if onMaster(t, src, k) != from {
			continue // moved already
		}
		if err := src.MoveSlot(ctx, slot, from, to); err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = k
		}
		if moved++; moved == 40 {
			break
		}
	}
	redistest.Do(t, to, "SET", first, "changed after the move")

	// A key deleted on its master while its slot is moving: only the old
	// master notifies it, and answers ASK for it now; the task must read
	// it where it goes (nothing there) and delete it on the target.
	gone := ""
	for _, kv := range keys.Elems {
		if k := kv.Text(); onMaster(t, src, k) == from {
			gone = k
			break
		}
	}
	slot := strconv.Itoa(cluster.Slot([]byte(gone)))
	fid, err := from.NodeID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := to.NodeID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	redistest.Do(t, to, "CLUSTER", "SETSLOT", slot, "IMPORTING", fid)
	redistest.Do(t, from, "CLUSTER", "SETSLOT", slot, "MIGRATING", tid)
	redistest.Do(t, from, "DEL", gone)
	time.Sleep(200 * time.Millisecond) // the notification is handled while the slot moves
	if err := src.MoveSlot(ctx, cluster.Slot([]byte(gone)), from, to); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, src.Masters[2], dst, 15*time.Second)
	if st := r.task.Status(); st.State != task.StateSynchronizing || st.Retries != 0 {
		t.Fatalf("state %s, %d retries: %s", st.State, st.Retries, st.LastError)
	}
}

// TestScanModeBigKeys: keys past BigKeyBytes (here 256 KiB) of every
// chunked type — a string, a list, a hash, a set, a sorted set, one with
// an expiry — are copied in pieces, not by DUMP, and again in pieces
// after a live change; the small keys beside them by DUMP, in runs; a
// big stream by DUMP whole. The target ends equal.
func TestScanModeBigKeys(t *testing.T) {
	fillBig := func(src *redisproc.Server) {
		c := redistest.Dial(t, src)
		value := strings.Repeat("v", 100)
		doAll(t, c, s("SET", "big:string", strings.Repeat("0123456789", 100_000)), s("PEXPIRE", "big:string", "3600000"))
		for _, k := range []string{"list", "hash", "set", "zset", "stream"} {
			for chunk := range 10 {
				args := map[string][]string{"list": {"RPUSH", "big:list"}, "hash": {"HSET", "big:hash"}, "set": {"SADD", "big:set"},
					"zset": {"ZADD", "big:zset"}, "stream": {"XADD", "big:stream", "*"}}[k]
				for i := range 500 {
					n := strconv.Itoa(chunk*500 + i)
					switch k {
					case "list", "set":
						args = append(args, n+value)
					case "hash", "stream":
						args = append(args, "f"+n, value)
					case "zset":
						args = append(args, n, "m"+n+value)
					}
				}
				doAll(t, c, args)
			}
		}
		if redistest.Version(t).AtLeast(7, 4) {
			// Field TTLs, read by HPEXPIRETIME beside each HSCAN page.
			doAll(t, c, s("HPEXPIRE", "big:hash", "3600000", "FIELDS", "2", "f1", "f4999"))
		}
		bulk(t, src, 2000)
	}
	src, dst, r := scanSource(t, fillBig, func(cfg *task.Config) { cfg.BigKeyBytes = 256 << 10 })
	r.waitState(t, task.StateSynchronizing)
	waitEqual(t, src, dst, 10*time.Second)
	if st := r.task.Status(); st.BigKeys != 5 {
		t.Fatalf("%d keys copied in pieces: want the 5 big ones but the stream", st.BigKeys)
	}
	dumps := commandCalls(t, src, "dump")
	if dumps < 2000 || dumps > 2010 {
		t.Fatalf("%d DUMPs for 2,000 small keys, a stream and heartbeats: the big ones went by DUMP", dumps)
	}
	for _, cmd := range []string{"getrange", "lrange", "hscan", "sscan", "zscan"} {
		if n := commandCalls(t, src, cmd); n < 2 {
			t.Errorf("%s called %d times: want the key read in pieces", cmd, n)
		}
	}
	if redistest.Version(t).AtLeast(7, 4) {
		// (compare does not look at field TTLs.)
		for _, side := range []*redisproc.Server{src, dst} {
			v, err := redistest.Dial(t, side).Do("HPEXPIRETIME", "big:hash", "FIELDS", "2", "f4999", "f2")
			if err != nil || len(v.Elems) != 2 || v.Elems[0].Int <= 0 || v.Elems[1].Int != -1 {
				t.Fatalf("%s: field TTLs of f4999 and f2: %v %v: want one, and none", side.Addr, v, err)
			}
		}
	}
	redistest.Do(t, src, "HSET", "big:hash", "f1", "changed")
	redistest.Do(t, src, "LPUSH", "big:list", "first")
	waitEqual(t, src, dst, 10*time.Second)
	if st := r.task.Status(); st.BigKeys != 7 {
		t.Fatalf("%d keys copied in pieces after two live changes: want 7", st.BigKeys)
	}
}

// commandCalls is how often the server ran a command (INFO commandstats).
func commandCalls(t *testing.T, s *redisproc.Server, name string) int {
	t.Helper()
	line := redisproc.InfoField(redistest.Do(t, s, "INFO", "commandstats"), "cmdstat_"+name)
	calls, _, _ := strings.Cut(strings.TrimPrefix(line, "calls="), ",")
	n, err := strconv.Atoi(calls)
	if err != nil && line != "" {
		t.Fatalf("cmdstat_%s %q: %v", name, line, err)
	}
	return n
}
