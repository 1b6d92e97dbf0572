package task_test

import (
	"strings"
	"testing"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// --rewrite always writes every key, of every type and encoding, as plain
// commands: the target still equals the source, and the stream goes on.
func TestRewriteAlways(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fill(t, src)
	r := startWith(t, src, dst, func(c *task.Config) { c.Rewrite = task.RewriteAlways })
	r.waitState(t, task.StateSynchronizing)
	st := r.task.Status()
	if st.KeysRewritten != st.KeysWritten || st.KeysWritten == 0 {
		t.Fatalf("%d keys written, %d rewritten: want all", st.KeysWritten, st.KeysRewritten)
	}
	assertEqual(t, src, dst)
	redistest.Do(t, src, "RPUSH", "list", "more")
	r.waitCaughtUp(t, src)
	assertEqual(t, src, dst)
}

// Keys past the big-key bounds (bytes or elements) are written in chunks;
// the rest still go as RESTORE. A list is replaced, never appended to.
func TestBigKeysChunked(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	fill(t, src)
	// Already on the target, in overwrite mode: must be replaced whole.
	redistest.Do(t, dst, "RPUSH", "list:large", "stale")
	r := startWith(t, src, dst, func(c *task.Config) {
		c.BigKeyBytes, c.BigKeyElements, c.OnConflict = 4096, 100, task.ConflictOverwrite
	})
	r.waitState(t, task.StateSynchronizing)
	st := r.task.Status()
	if st.BigKeys == 0 || st.BigKeys == st.KeysWritten || st.KeysRewritten != 0 {
		t.Fatalf("%d keys, %d big, %d rewritten: want some big, not all", st.KeysWritten, st.BigKeys, st.KeysRewritten)
	}
	assertEqual(t, src, dst)
	if n := redistest.Do(t, dst, "LLEN", "list:large"); n != "1000" {
		t.Fatalf("list:large has %s elements, want 1000", n)
	}
	if strings.Contains(redistest.Do(t, dst, "LRANGE", "list:large", "0", "-1"), "stale") {
		t.Fatal("a big list was appended to, not replaced")
	}
}
