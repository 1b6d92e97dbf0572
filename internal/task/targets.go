package task

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/fanout"
)

// runTargets runs a task of several targets: one child task per target,
// each with its own writers, checkpoints, lock, retries, lag and share of
// the buffers, all reading the source through one hub, which shares one
// replication link per source master among them. A target that fails
// stops alone; the others go on. It returns when every child has ended:
// nil when all were stopped, else the failures.
func (t *Task) runTargets(ctx context.Context) error {
	targets := append([]dialer.Options{t.cfg.Target}, t.cfg.ExtraTargets...)
	n := len(targets)
	seen := map[string]bool{}
	for _, o := range targets {
		if seen[o.Addr] {
			return t.failed(fmt.Errorf("target %s given twice", o.Addr))
		}
		seen[o.Addr] = true
	}
	// Each target's share of the bounds: the task's memory stays what it
	// was given.
	buffer := max(t.cfg.BufferBytes/n, 1<<20)
	spoolMax := t.cfg.SpoolMax
	if spoolMax <= 0 {
		spoolMax = 1 << 30
	}
	hub := fanout.New(ctx, fanout.Options{Consumers: n, SpoolDir: t.cfg.SpoolDir, SpoolMax: spoolMax,
		MemBytes: int64(buffer), BehindBytes: int64(max(buffer/4, 1<<20)), Logger: t.log})
	var children []*Task
	for _, o := range targets {
		cfg := t.cfg
		cfg.Target, cfg.ExtraTargets = o, nil
		cfg.BufferBytes, cfg.SpoolMax = buffer, spoolMax/int64(n)
		cfg.connect = hub.Connect
		c := New(cfg)
		c.log = c.log.With("target", o.Addr)
		children = append(children, c)
	}
	t.mu.Lock()
	t.targets = children
	t.mu.Unlock()
	t.log.Info("several targets: the source is read once for all", "targets", n)

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Run(ctx)
		}()
	}
	wg.Wait()
	var failures []error
	for i, err := range errs {
		if err != nil {
			failures = append(failures, fmt.Errorf("target %s: %w", targets[i].Addr, err))
		}
	}
	if len(failures) > 0 {
		return t.failed(errors.Join(failures...))
	}
	t.setState(StateStopped)
	return nil
}

// aggregateTargets fills a task's status from its targets' (combine),
// and each source shard's from the targets' views of it.
func aggregateTargets(st *Status, targets []Status) {
	own := *st
	*st = combine(targets)
	st.Name, st.Mode, st.Targets = own.Name, own.Mode, targets
	if own.State == StateFailed || own.State == StateStopped {
		st.State = own.State
	}
	st.Errors = append(own.Errors, st.Errors...)
	st.ErrorsTotal += own.ErrorsTotal
	if own.LastError != "" {
		st.LastError = own.LastError
	}
	slices.SortStableFunc(st.Errors, func(a, b ErrorEvent) int { return a.Time.Compare(b.Time) })
	if len(st.Errors) > maxErrors {
		st.Errors = st.Errors[len(st.Errors)-maxErrors:]
	}
	// A cluster source: each shard as every target sees it.
	st.Shards = nil
	for i := range targets[0].Shards {
		var views []Status
		for _, ts := range targets {
			for _, sh := range ts.Shards {
				if sh.SourceAddr == targets[0].Shards[i].SourceAddr {
					views = append(views, sh)
				}
			}
		}
		st.Shards = append(st.Shards, combine(views))
	}
}

// combine merges several targets' views of one source (or source
// shard): where the source stands is the slowest target's view (its
// applied offset, which is what the source is acknowledged, and its full
// sync's progress), the most received, the worst state and lag (unknown
// while any is), and the sums of the counts, so that a counter never
// goes back when another target becomes the slowest.
func combine(views []Status) Status {
	slowest := 0
	for i, s := range views {
		if s.Applied < views[slowest].Applied {
			slowest = i
		}
	}
	st := views[slowest]
	// The counts start from zero: addCounts sums every view's.
	st = Status{Name: st.Name, Mode: st.Mode, ReplID: st.ReplID, Received: st.Received, Applied: st.Applied,
		RDBBytes: st.RDBBytes, RDBBytesTotal: st.RDBBytesTotal, RDBBytesApplied: st.RDBBytesApplied, LagMs: st.LagMs,
		SourceAddr: st.SourceAddr, TargetAddr: st.TargetAddr, TargetMaxOps: st.TargetMaxOps, TargetMaxBytes: st.TargetMaxBytes,
		CommandsByName: map[string]int64{}}
	for _, s := range views {
		if st.State == "" || rank(s.State) > rank(st.State) {
			st.State = s.State
		}
		st.Received = max(st.Received, s.Received)
		addCounts(&st, s)
		for _, e := range s.Errors {
			st.Errors = append(st.Errors, ErrorEvent{Time: e.Time, Text: "target " + s.TargetAddr + ": " + e.Text})
		}
		if st.LastError == "" && s.LastError != "" {
			st.LastError = "target " + s.TargetAddr + ": " + s.LastError
		}
		if st.LagMs >= 0 && (s.LagMs < 0 || s.LagMs > st.LagMs) {
			st.LagMs = s.LagMs
		}
	}
	return st
}
