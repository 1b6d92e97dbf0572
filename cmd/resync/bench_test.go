package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/bench"
	"github.com/resync/resync/internal/redistest"
)

// benchEnv makes the resync that bench starts this test binary (TestMain
// runs main for it), and gives the run a temporary directory of its own,
// whose emptiness afterwards shows that everything was stopped.
func benchEnv(t *testing.T) string {
	t.Setenv("RESYNC_TEST_AS_MAIN", "1")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

// assertCleanedUp fails unless dir is empty and no process works in it:
// every server and resync stopped, their files removed.
func assertCleanedUp(t *testing.T, dir string) {
	t.Helper()
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("bench left %d entries in its temporary directory, e.g. %s", len(left), left[0].Name())
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, p := range procs {
		if cwd, err := os.Readlink(p); err == nil && strings.HasPrefix(cwd, dir) {
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			t.Errorf("a process still runs in %s: %s", cwd, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// resync bench with a tiny data set: every part, every figure filled,
// and nothing left running.
func TestBench(t *testing.T) {
	bin := redistest.Binary(t)
	tmp := benchEnv(t)
	code, out, errOut := runCLI("bench", "--redis-server", bin, "--keys", "2000", "--runs", "1",
		"--bench-requests", "10000", "--moderate-requests", "3000", "--output", "json")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Schema != bench.SchemaVersion || rep.DataSet == nil || rep.DataSet.Keys != 2800 || rep.Seconds <= 0 {
		t.Errorf("report header: schema %d, data set %+v, %v s", rep.Schema, rep.DataSet, rep.Seconds)
	}
	want := []string{
		"full.native_replica.seconds", "full.restore_pipe.seconds", "full.resync.seconds",
		"full.resync.keys_per_sec", "full.resync.mb_per_sec", "memory.resync.peak_rss_mib",
		"cluster.full.resync.seconds", "cluster.full.resync.keys_per_sec", "cluster.full.resync.mb_per_sec",
		"cluster.full.resync.peak_rss_mib", "cluster.full.target_master_1.commands_per_sec",
		"cluster.full.target_master_2.commands_per_sec", "cluster.full.target_master_3.commands_per_sec",
		"cluster.full.all_masters_busy_pct",
		"throttle.resync.target_ops_per_sec", "throttle.bound", "full.restore_pipe.target_cpu_seconds",
	}
	for _, p := range []string{"full", "cluster.full"} {
		for _, f := range []string{"source", "target", "resync", "bound"} {
			want = append(want, p+".cpu."+f+"_seconds")
		}
	}
	stream := []string{"source_ops_per_sec", "applied_ops_per_sec", "catch_up_seconds", "machine_cpu_busy_pct", "runnable_tasks"}
	for _, load := range []string{"heavy", "moderate"} {
		for _, f := range append(stream, "offset_lag_p50_ms", "offset_lag_p99_ms") {
			want = append(want, "incremental.native_replica."+load+"."+f)
		}
		for _, d := range []string{"resync_exactly_once", "resync_at_least_once"} {
			for _, f := range append(stream, "heartbeat_lag_p50_ms", "heartbeat_lag_p99_ms", "offset_lag_p50_ms", "offset_lag_p99_ms") {
				want = append(want, "incremental."+d+"."+load+"."+f, "cluster.incremental."+d+"."+load+"."+f)
			}
		}
	}
	got := map[string]bench.Figure{}
	for _, f := range rep.Figures {
		got[f.ID] = f
		if len(f.Runs) != 1 || f.Runs[0] != f.Median || math.IsNaN(f.Median) || f.Median < 0 || f.Label == "" || f.Unit == "" {
			t.Errorf("figure %s not filled: %+v", f.ID, f)
		}
	}
	for _, id := range want {
		f, ok := got[id]
		if !ok {
			t.Errorf("no figure %s", id)
			continue
		}
		// CPU times are in ticks of 10 ms: a tiny sync may take none.
		positive := !strings.Contains(id, "lag") && !strings.Contains(id, "catch_up") && !strings.Contains(id, "cluster.full.target_master") &&
			!strings.Contains(id, "busy") && !strings.Contains(id, "cpu")
		if positive && f.Median <= 0 {
			t.Errorf("figure %s is %v", id, f.Median)
		}
	}
	if len(rep.Figures) != len(want) {
		t.Errorf("%d figures, want %d", len(rep.Figures), len(want))
	}
	if r := got["full.resync.seconds"].Ratios; len(r) != 3 || r[0].To != "full.native_replica.seconds" || r[1].To != "full.restore_pipe.seconds" || r[2].To != "full.cpu.bound_seconds" {
		t.Errorf("full sync ratios %+v", r)
	}
	if r := got["incremental.resync_exactly_once.heavy.applied_ops_per_sec"].Ratios; len(r) != 1 || r[0].To != "incremental.native_replica.heavy.applied_ops_per_sec" {
		t.Errorf("stream ratios %+v", r)
	}
	// Both full sync ratios; per topology the catch-up and both
	// deliveries' pace; four lags; plain memory; the throttle.
	if len(rep.Goals) != 14 {
		t.Errorf("goals %+v", rep.Goals)
	}
	// The throttle holds even on a tiny data set: its backlog is its own.
	if g := rep.Goals[len(rep.Goals)-1]; g.Figure != "throttle.resync.target_ops_per_sec" || !g.Met {
		t.Errorf("throttle goal %+v", g)
	}
	assertCleanedUp(t, tmp)
}

// --big adds the big keys' figures; --only memory leaves out the rest.
func TestBenchBigKeys(t *testing.T) {
	tmp := benchEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Config{RedisServer: redistest.Binary(t), Resync: []string{os.Args[0]},
		Keys: 100, Big: true, BigKeys: bench.BigKeys{Elements: 20_000, StringBytes: 1 << 20}, Runs: 1,
		Parts: []string{bench.PartMemory}, BenchRequests: 1, ModerateRequests: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range rep.Figures {
		ids = append(ids, f.ID)
		if f.Median <= 0 {
			t.Errorf("figure %s is %v", f.ID, f.Median)
		}
	}
	if want := "memory.resync.peak_rss_mib memory.big.resync.peak_rss_mib memory.big.native_replica.seconds memory.big.resync.seconds"; strings.Join(ids, " ") != want {
		t.Errorf("figures %s, want %s", strings.Join(ids, " "), want)
	}
	if b := rep.BigDataSet; b == nil || b.Keys != 3 || b.BigElements != 20_000 || b.UsedMemoryBytes <= 0 {
		t.Errorf("big data set %+v", b)
	}
	assertCleanedUp(t, tmp)
}

// Interrupted (SIGINT cancels the context), bench stops every server and
// process it started and removes its files.
func TestBenchInterrupted(t *testing.T) {
	bin := redistest.Binary(t)
	tmp := benchEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	var errOut safeBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"bench", "--redis-server", bin, "--keys", "20000", "--only", "incremental", "--bench-requests", "200000"}, &safeBuffer{}, &errOut)
	}()
	// Cancel once the heavy load runs, with resync, its target and the source up.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(errOut.String(), "full sync before the loads"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the stream part never started:\n%s", errOut.String())
		}
	}
	time.Sleep(time.Second)
	cancel()
	select {
	case code := <-done:
		if code != exitFailed || !strings.Contains(errOut.String(), "interrupted") {
			t.Errorf("exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("bench did not stop within 45s of the interruption:\n%s", errOut.String())
	}
	assertCleanedUp(t, tmp)
}

func TestBenchUsage(t *testing.T) {
	bin := redistest.Binary(t)
	for _, args := range [][]string{
		{"--only", "full,speed"}, {"--output", "csv"}, {"--runs", "0"}, {"--keys", "0"},
		{"--bench-requests", "0"}, {"extra"}, {"--no-such-flag"},
	} {
		code, _, errOut := runCLI(append([]string{"bench", "--redis-server", bin}, args...)...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d: %s", args, code, exitUsage, errOut)
		}
	}
}
