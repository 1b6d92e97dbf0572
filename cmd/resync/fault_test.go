package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// syncStats reads a source's count of full and partial resyncs.
func syncStats(t *testing.T, s *redisproc.Server) (full, partial int) {
	t.Helper()
	info := redistest.Do(t, s, "INFO", "stats")
	full, _ = strconv.Atoi(redisproc.InfoField(info, "sync_full"))
	partial, _ = strconv.Atoi(redisproc.InfoField(info, "sync_partial_ok"))
	return full, partial
}

// startProcess runs "resync sync" as a process of its own (the test
// binary doubles as resync), so that it can be killed.
func startProcess(t *testing.T, log *bytes.Buffer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"sync"}, args...)...)
	cmd.Env = append(os.Environ(), "RESYNC_TEST_AS_MAIN=1")
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// checkpointOf reads a task's checkpoint from the target: a standalone
// server, or the master of a cluster that holds the key (the others
// answer MOVED).
func checkpointOf(t *testing.T, name string, servers ...*redisproc.Server) (checkpoint.Point, bool) {
	t.Helper()
	for _, s := range servers {
		v, err := redistest.Dial(t, s).Do("GET", checkpoint.Key(task.ReservedPrefix, name, ""))
		if err != nil {
			continue
		}
		if v.Nil() {
			return checkpoint.Point{}, false
		}
		p, err := checkpoint.Parse(v.Text())
		if err != nil {
			t.Fatal(err)
		}
		return p, true
	}
	return checkpoint.Point{}, false
}

// equal fails the test unless the target equals the source, key by key.
func equal(t *testing.T, src, dst *redisproc.Server) {
	t.Helper()
	rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(), compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range rep.Diffs {
		if i == 10 {
			break
		}
		t.Errorf("%s %q: %s", d.Kind, d.Key, d.Detail)
	}
	if len(rep.Diffs) > 0 || rep.Keys == 0 {
		t.Fatalf("%d of %d keys differ", len(rep.Diffs), rep.Keys)
	}
}

// killTenTimes starts resync with args and kills it with SIGKILL ten
// times, each time a while after it has checkpointed past the last
// process's checkpoint (as read returns it).
func killTenTimes(t *testing.T, logs *bytes.Buffer, args []string, read func() (checkpoint.Point, bool)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var last int64
	for kill := range 10 {
		cmd := startProcess(t, logs, args...)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if p, ok := read(); ok && p.State == checkpoint.Streaming && p.Offset > last {
				last = p.Offset
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no progress past offset %d\n%s", kill, last, logs.String())
			}
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// TestKilledTenTimesResumesExactly kills resync with SIGKILL ten times
// while a load of only non-idempotent commands runs: every restart
// resumes from the target's checkpoint with a partial resync (no full
// sync after the first), and the target ends exactly the source.
func TestKilledTenTimesResumesExactly(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	load := redistest.StartLoad(t, src.DialOptions(), 500, time.Millisecond, nil)
	args := []string{"--source", src.Addr, "--target", dst.Addr, "--status-addr", "", "--name", "k9",
		"--heartbeat-interval", "100ms"}
	var logs bytes.Buffer
	killTenTimes(t, &logs, args, func() (checkpoint.Point, bool) { return checkpointOf(t, "k9", dst) })
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	redistest.Do(t, src, "SET", "last", "1")
	cmd := startProcess(t, &logs, args...)
	for deadline := time.Now().Add(20 * time.Second); redistest.Do(t, dst, "EXISTS", "last") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the last write never arrived\n%s", logs.String())
		}
	}
	equal(t, src, dst)
	full, partial := syncStats(t, src)
	if full != 1 || partial != 10 {
		t.Fatalf("sync_full %d, sync_partial_ok %d; want 1 and 10\n%s", full, partial, logs.String())
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if n := strings.Count(logs.String(), "took over the lock"); n != 10 {
		t.Errorf("the lock was taken over %d times, want 10", n)
	}
	t.Logf("%d commands under load, resumed 10 times", load.Sent())
}

// TestKilledTenTimesIntoCluster is the same against a cluster target of
// three masters, where each slot's commands go in a transaction with the
// slot's checkpoint: no full sync after the first, exact.
func TestKilledTenTimesIntoCluster(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	load := redistest.StartLoad(t, src.DialOptions(), 500, time.Millisecond, nil)
	// The load's transactions span slots: applied per slot.
	args := []string{"--source", src.Addr, "--target", dst.Masters[0].Addr, "--status-addr", "", "--name", "k9c",
		"--heartbeat-interval", "100ms", "--split-transactions"}
	var logs bytes.Buffer
	killTenTimes(t, &logs, args, func() (checkpoint.Point, bool) { return checkpointOf(t, "k9c", dst.Masters...) })
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	redistest.Do(t, src, "SET", "last", "1")
	cmd := startProcess(t, &logs, args...)
	opts := dst.Masters[0].DialOptions()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rep, err := compare.Compare(context.Background(), src.DialOptions(), opts, compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
		if err == nil && rep.Equal() && rep.Keys > 0 {
			break
		}
		if time.Now().After(deadline) {
			if err == nil {
				for i, d := range rep.Diffs {
					if i < 10 {
						t.Errorf("%s %q: %s", d.Kind, d.Key, d.Detail)
					}
				}
				t.Fatalf("%d of %d keys differ\n%s", len(rep.Diffs), rep.Keys, logs.String())
			}
			t.Fatal(err)
		}
	}
	full, partial := syncStats(t, src)
	if full != 1 || partial != 10 {
		t.Fatalf("sync_full %d, sync_partial_ok %d; want 1 and 10\n%s", full, partial, logs.String())
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	t.Logf("%d commands under load, resumed 10 times; %d slot skips logged", load.Sent(), strings.Count(logs.String(), "slots ahead of the checkpoint"))
}

// TestLockCheckpointReset: a second process of a running task is turned
// away naming the holder; SIGTERM leaves a checkpoint and no lock; a
// restart resumes; --reset forgets the checkpoint, and the conflict rule
// applies again.
func TestLockCheckpointReset(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	args := []string{"--source", src.Addr, "--target", dst.Addr, "--status-addr", "", "--name", "lk"}
	var logs bytes.Buffer
	cmd := startProcess(t, &logs, args...)
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("k never arrived\n%s", logs.String())
		}
	}
	code, _, errOut := runCLI(append([]string{"sync"}, args...)...)
	if code != exitFailed || !strings.Contains(errOut, `task "lk" is locked by process `+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("a second process: exit %d, %s", code, errOut)
	}
	redistest.Do(t, src, "SET", "k2", "v")
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k2") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("k2 never arrived\n%s", logs.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	p, ok := checkpointOf(t, "lk", dst)
	if !ok || p.State != checkpoint.Streaming || p.Offset == 0 {
		t.Fatalf("checkpoint after SIGTERM: %+v %v", p, ok)
	}
	if n := redistest.Do(t, dst, "EXISTS", checkpoint.LockKey(task.ReservedPrefix, "lk")); n != "0" {
		t.Fatal("the lock outlived a clean stop")
	}

	// A restart resumes: a partial resync, no new full sync.
	redistest.Do(t, src, "SET", "k3", "v")
	cmd = startProcess(t, &logs, args...)
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k3") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("k3 never arrived\n%s", logs.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if full, partial := syncStats(t, src); full != 1 || partial != 1 {
		t.Fatalf("sync_full %d, sync_partial_ok %d; want 1 and 1", full, partial)
	}

	// --reset: the target's keys are someone else's again, and the
	// precheck refuses them (intercept) before anything is deleted.
	code, _, errOut = runCLI(append([]string{"sync", "--reset"}, args...)...)
	if code != exitProblem || !strings.Contains(errOut, "the target is not empty: db0 holds 3 keys") {
		t.Fatalf("--reset on a target holding the synced keys: exit %d, %s", code, errOut)
	}
	if _, ok := checkpointOf(t, "lk", dst); !ok {
		t.Fatal("a refused --reset deleted the checkpoint")
	}
	// Waived, the task itself applies the rule: it forgets its
	// checkpoint first, then refuses.
	code, _, errOut = runCLI(append([]string{"sync", "--reset", "--skip-check", "conflict"}, args...)...)
	if code != exitFailed || !strings.Contains(errOut, "the target is not empty: db0 holds 3 keys") {
		t.Fatalf("--reset --skip-check conflict: exit %d, %s", code, errOut)
	}
	if _, ok := checkpointOf(t, "lk", dst); ok {
		t.Fatal("--reset left the checkpoint")
	}
}
