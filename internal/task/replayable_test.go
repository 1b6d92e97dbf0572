package task_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// mixedLoad writes pipelines of 20 commands until ctx ends: most of
// only SET, MSET and DEL (replayable: their batches go without a
// transaction), every third of INCRBY and APPEND (which a replay would
// apply twice), on shared keys.
func mixedLoad(ctx context.Context, t *testing.T, s *redisproc.Server) chan error {
	c := redistest.Dial(t, s)
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		for round := 0; ctx.Err() == nil; round++ {
			w := c.Writer()
			for range 20 {
				k := "k:" + strconv.Itoa(rng.IntN(300))
				switch {
				case round%3 == 2 && rng.IntN(2) == 0:
					w.WriteCommandStrings("INCRBY", "n:"+k, "3")
				case round%3 == 2:
					w.WriteCommandStrings("APPEND", "a:"+k, "x")
				case rng.IntN(10) == 0:
					w.WriteCommandStrings("DEL", k)
				case rng.IntN(10) == 0:
					w.WriteCommandStrings("MSET", k, "m", "k:"+strconv.Itoa(rng.IntN(300)), "m")
				default:
					w.WriteCommandStrings("SET", k, strconv.Itoa(round))
				}
			}
			if err := w.Flush(); err != nil {
				done <- err
				return
			}
			for range 20 {
				if _, err := c.Receive("load"); err != nil {
					done <- err
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()
	return done
}

// Exactly-once delivery sends the batches of only SET, MSET and DEL
// without MULTI, and stays exact when the target connection is cut again
// and again under a load that mixes them with INCRBY and APPEND: a
// replay from the last checkpoint applies the plain batches again
// (harmless) and the others once.
func TestReplayableBatchesStayExact(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	r := startWith(t, src, dst, func(cfg *task.Config) { cfg.HeartbeatInterval = 50 * time.Millisecond })
	r.waitState(t, task.StateSynchronizing)
	ctx, stop := context.WithCancel(context.Background())
	done := mixedLoad(ctx, t, src)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		redistest.Do(t, dst, "CLIENT", "KILL", "TYPE", "normal")
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.waitCaughtUpWithin(t, src, 20*time.Second)
	assertEqual(t, src, dst)
	stats := redistest.Do(t, dst, "INFO", "commandstats")
	multi, set := cmdCalls(stats, "multi"), cmdCalls(stats, "set")
	if multi == 0 || set == 0 {
		t.Fatalf("MULTI %d, SET %d: the load made no transaction or no plain batch", multi, set)
	}
	// A transaction per batch would be one per pipeline of the load, at
	// least: with two in three pipelines plain, far fewer.
	if incr := cmdCalls(stats, "incrby"); multi > incr {
		t.Fatalf("MULTI %d for %d INCRBY: the plain batches went in transactions", multi, incr)
	}
	if st := r.task.Status(); st.Retries == 0 {
		t.Fatal("no retry: the target's connections were never cut")
	}
}
