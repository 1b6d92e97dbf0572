package task_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// TestRedactKeys: with RedactKeys, key names stay out of the logs, the
// errors and the status, both for a command skipped with a logged reason
// and for one that fails the task; without it, they are named (the
// control: the test sees names where they would leak).
func TestRedactKeys(t *testing.T) {
	for _, redact := range []bool{true, false} {
		name := map[bool]string{true: "redacted", false: "named"}[redact]
		t.Run(name, func(t *testing.T) {
			src, dst := redistest.Start(t), redistest.Start(t)
			var logs lockedBuffer
			partial := func(policy filter.Policy) *running {
				return startWith(t, src, dst, func(c *task.Config) {
					c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
					c.RedactKeys = redact
					c.Filter.AllowKeyPrefix = []string{"keep:"}
					c.Filter.OnPartial = policy
					c.OnConflict = task.ConflictOverwrite
				})
			}
			r := partial(filter.Skip)
			r.waitState(t, task.StateSynchronizing)
			redistest.Do(t, src, "SET", "drop:bob@example.com", "1")
			redistest.Do(t, src, "RENAME", "drop:bob@example.com", "keep:alice@example.com")
			redistest.Do(t, src, "SET", "keep:after", "1")
			waitFor(t, r, "keep:after on the target", func() bool { return redistest.Do(t, dst, "EXISTS", "keep:after") == "1" })
			r.stop()
			r.waitState(t, task.StateStopped)

			redistest.Do(t, src, "FLUSHALL")
			redistest.Do(t, dst, "FLUSHALL")
			r = partial(filter.Fail)
			r.waitState(t, task.StateSynchronizing)
			redistest.Do(t, src, "SET", "drop:dave@example.com", "1")
			redistest.Do(t, src, "RENAME", "drop:dave@example.com", "keep:carol@example.com")
			select {
			case err := <-r.done:
				r.done <- err // for the cleanup
				if err == nil {
					t.Fatal("the task did not fail on a command it can only partly apply")
				}
				st := r.task.Status()
				everything := logs.String() + "\n" + err.Error() + "\n" + st.LastError
				for _, e := range st.Errors {
					everything += "\n" + e.Text
				}
				for _, secret := range []string{"alice", "bob", "carol", "dave"} {
					if got := strings.Contains(everything, secret); got == redact {
						t.Errorf("redact %v: %q in the output: %v", redact, secret, got)
					}
				}
				if redact && !strings.Contains(st.LastError, "key#") {
					t.Errorf("a redacted error should still tell keys apart: %s", st.LastError)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the task did not fail")
			}
		})
	}
}
