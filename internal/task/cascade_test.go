package task_test

import (
	"slices"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// A → B → C: task 1 copies A into B, task 2 copies B into C, under a
// write load on A during both full syncs and after. C ends equal to A,
// and of the reserved keys it holds only task 2's own (its checkpoint
// and lock): not task 1's checkpoints or lock, which live on B, nor
// either task's heartbeat. Both tasks report their own lag. With the
// same task name on both hops, the keys of one never pass for the
// other's.
func TestCascade(t *testing.T) {
	for _, names := range [][2]string{{"hop1", "hop2"}, {"t", "t"}} {
		t.Run(names[0]+"-"+names[1], func(t *testing.T) {
			a, b, c := redistest.Start(t), redistest.Start(t), redistest.Start(t)
			fill(t, a)
			bulk(t, a, 20000)
			hb := func(cfg *task.Config) { cfg.HeartbeatInterval = 50 * time.Millisecond }
			r1 := startWith(t, a, b, func(cfg *task.Config) { cfg.Name = names[0]; hb(cfg) })
			r1.waitState(t, task.StateSynchronizing)
			r2 := startWith(t, b, c, func(cfg *task.Config) { cfg.Name = names[1]; hb(cfg) })
			r2.waitState(t, task.StateFullSync)
			runLoad(t, a, 20) // while task 2 copies B
			r2.waitState(t, task.StateSynchronizing)
			runLoad(t, a, 20)
			r1.waitCaughtUp(t, a)
			r2.waitCaughtUp(t, b)
			assertEqual(t, a, c)

			var reserved []string
			for _, db := range []string{"0", "3", "5"} {
				conn := redistest.Dial(t, c)
				if _, err := conn.Do("SELECT", db); err != nil {
					t.Fatal(err)
				}
				keys, err := conn.Do("KEYS", task.ReservedPrefix+"*")
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys.Elems {
					reserved = append(reserved, db+"/"+k.Text())
				}
			}
			slices.Sort(reserved)
			want := []string{"0/" + task.ReservedPrefix + "checkpoint:" + names[1], "0/" + task.ReservedPrefix + "lock:" + names[1]}
			if !slices.Equal(reserved, want) {
				t.Fatalf("reserved keys on C: %v, want only task 2's %v", reserved, want)
			}
			// B holds task 1's keys and task 2's heartbeat: the ones
			// task 2 must not carry on.
			for _, k := range []string{"checkpoint:" + names[0], "heartbeat:" + names[1]} {
				if n := redistest.Do(t, b, "EXISTS", task.ReservedPrefix+k); n != "1" {
					t.Fatalf("B does not hold %s%s", task.ReservedPrefix, k)
				}
			}
			for i, r := range []*running{r1, r2} {
				if st := r.task.Status(); st.LagMs < 0 {
					t.Fatalf("task %d measured no lag", i+1)
				}
			}
		})
	}
}
