package task

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/resync/resync/internal/rdb"
)

// Restore loads an RDB file into the task's target with the full sync's
// writer, conflict rule, selection, filters and rewrites; the source in
// the task's configuration is not used. Status reports its progress; it
// returns once the target confirmed every key, or at the first failure.
// size is the file's size (-1 unknown), for progress.
func (t *Task) Restore(ctx context.Context, r io.Reader, size int64) error {
	t.setState(StatePrecheck)
	t.rdbTotal.Store(size)
	// A file does not say how many databases its server had: the
	// target's count bounds what it can take anyway.
	target, err := t.checkTarget(ctx, 0, false)
	if err != nil {
		return t.failed(err)
	}
	t.targetVersion = target
	d, err := rdb.NewDecoder(countingReader{r, &t.rdbBytes})
	if err != nil {
		return t.failed(fmt.Errorf("file: %w", err))
	}
	w, err := t.openTarget(ctx)
	if err != nil {
		return t.failed(err)
	}
	defer w.Close()
	t.setState(StateFullSync)
	start := time.Now()
	done := make(chan struct{})
	defer close(done)
	go t.logProgress(done)
	if err := t.loader(w, target).load(ctx, d); err != nil {
		if ctx.Err() != nil {
			t.setState(StateStopped)
			return ctx.Err()
		}
		return t.failed(err)
	}
	if err := w.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			t.setState(StateStopped)
			return ctx.Err()
		}
		return t.failed(err)
	}
	c := &t.counts
	t.log.Info("restore done", "keys", c.Keys.Load(), "filtered", c.Filtered.Load(), "empty_skipped", c.Empty.Load(),
		"rewritten", c.Rewritten.Load(), "big", c.Big.Load(), "dropped", c.Dropped.Load(),
		"rdb_bytes", t.rdbBytes.Load(), "seconds", time.Since(start).Seconds())
	t.setState(StateStopped)
	return nil
}

// logProgress logs the keys and bytes loaded every few seconds until done
// is closed.
func (t *Task) logProgress(done <-chan struct{}) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			t.log.Info("progress", "keys", t.counts.Keys.Load(), "rdb_bytes", t.rdbBytes.Load(), "rdb_bytes_total", t.rdbTotal.Load())
		}
	}
}
