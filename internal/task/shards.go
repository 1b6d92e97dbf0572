package task

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/resp"
)

// sourceCluster returns the source's slot map when it is a cluster, nil
// when it is a standalone server.
func (t *Task) sourceCluster(ctx context.Context) (*cluster.Topology, error) {
	t.setState(StatePrecheck)
	src, err := dialer.Dial(ctx, t.cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	on, err := cluster.Enabled(src)
	if err != nil || !on {
		if err != nil {
			err = fmt.Errorf("source: %w", err)
		}
		return nil, err
	}
	top, err := cluster.Load(src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if n := top.Uncovered(); n > 0 {
		return nil, fmt.Errorf("source: the cluster at %s does not serve %d of its %d slots: sync it once it is whole", src.Addr(), n, cluster.Slots)
	}
	return top, nil
}

// runShards runs a cluster source: the checks once, then one child task
// per master, all at once (the full syncs in parallel), each with its
// own replication link, writers, heartbeat and offsets. The first to fail
// stops the others.
func (t *Task) runShards(ctx context.Context, top *cluster.Topology) error {
	// The seed node stands for the source in the checks: a cluster has
	// db 0 only, and every master runs one version.
	if _, err := t.precheck(ctx); err != nil {
		if t.lock != nil {
			t.lock.release(t.log)
		}
		return t.failed(err)
	}
	ctx, release := t.holdLock(ctx)
	defer release()
	t.setState(StateFullSync) // from now on, the shards' worst state
	var children []*Task
	seeds := []string{t.cfg.Source.Addr}
	for _, m := range top.Masters {
		seeds = append(seeds, m.Addr)
	}
	for i, m := range top.Masters {
		cfg := t.cfg
		cfg.Source = top.Options(t.cfg.Source, i)
		c := New(cfg)
		c.child, c.shardSlots = true, m.Slots
		c.hbTag = tagFor(m.Slots)
		c.clusterSeeds = seeds
		c.log = c.log.With("shard", m.Addr)
		children = append(children, c)
	}
	t.mu.Lock()
	t.shards = children
	t.mu.Unlock()
	t.log.Info("cluster source", "masters", len(children))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(children))
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = c.Run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, e := range errs {
			if e != nil {
				return t.failed(fmt.Errorf("shard %s: %w", top.Masters[i].Addr, e))
			}
		}
	}
	t.setState(StateStopped)
	return nil
}

// tagFor finds a hash tag whose slot is among slots: a shard's heartbeat
// key must live on its own master.
func tagFor(slots [][2]int) string {
	for i := range 1 << 20 {
		tag := strconv.Itoa(i)
		s := cluster.Slot([]byte(tag))
		for _, r := range slots {
			if r[0] <= s && s <= r[1] {
				return tag
			}
		}
	}
	return ""
}

// rank orders states from the best to the worst: a task's state is its
// worst shard's.
func rank(state string) int {
	switch state {
	case StateFailed:
		return 5
	case StateRetrying:
		return 4
	case StatePrecheck:
		return 3
	case StateFullSync:
		return 2
	case StateSynchronizing:
		return 1
	}
	return 0 // stopped
}

// aggregate fills a cluster task's status from its shards': sums of the
// counts and offsets, the worst state, the worst lag (unknown while any
// shard's is).
func aggregate(st *Status, shards []Status) {
	st.Shards = shards
	worst := ""
	for _, s := range shards {
		if worst == "" || rank(s.State) > rank(worst) {
			worst = s.State
		}
	}
	if st.State != StateFailed && st.State != StateStopped {
		st.State = worst
	}
	st.LagMs = 0
	st.RDBBytesTotal = 0
	st.CommandsByName = map[string]int64{}
	for _, s := range shards {
		st.Received += s.Received
		st.Applied += s.Applied
		st.RDBBytes += s.RDBBytes
		st.RDBBytesApplied += s.RDBBytesApplied
		st.Errors = append(st.Errors, s.Errors...)
		addCounts(st, s)
		if st.RDBBytesTotal >= 0 {
			if s.RDBBytesTotal < 0 {
				st.RDBBytesTotal = -1
			} else {
				st.RDBBytesTotal += s.RDBBytesTotal
			}
		}
		if st.LagMs >= 0 {
			if s.LagMs < 0 {
				st.LagMs = -1
			} else {
				st.LagMs = max(st.LagMs, s.LagMs)
			}
		}
		if st.LastError == "" && s.LastError != "" {
			st.LastError = s.LastError
		}
	}
	slices.SortStableFunc(st.Errors, func(a, b ErrorEvent) int { return a.Time.Compare(b.Time) })
	if len(st.Errors) > maxErrors {
		st.Errors = st.Errors[len(st.Errors)-maxErrors:]
	}
}

// addCounts adds a part's counts (a shard's, or a target's) to st's:
// what was written, left out, retried and queued. st.CommandsByName must
// not be nil.
func addCounts(st *Status, s Status) {
	st.KeysWritten += s.KeysWritten
	st.KeysFiltered += s.KeysFiltered
	st.KeysEmpty += s.KeysEmpty
	st.KeysRewritten += s.KeysRewritten
	st.BigKeys += s.BigKeys
	st.Dropped += s.Dropped
	st.CommandsFiltered += s.CommandsFiltered
	st.PartialSkipped += s.PartialSkipped
	st.PublishSkipped += s.PublishSkipped
	st.Commands += s.Commands
	st.BytesWritten += s.BytesWritten
	st.Retries += s.Retries
	st.ThrottledMs += s.ThrottledMs
	st.ErrorsTotal += s.ErrorsTotal
	st.SpoolMemBytes += s.SpoolMemBytes
	st.SpoolDiskBytes += s.SpoolDiskBytes
	st.BackPressure = st.BackPressure || s.BackPressure
	for name, n := range s.CommandsByName {
		st.CommandsByName[name] += n
	}
}

// isFlush reports FLUSHALL and FLUSHDB.
func isFlush(name []byte) bool {
	return strings.EqualFold(string(name), "FLUSHALL") || strings.EqualFold(string(name), "FLUSHDB")
}

// flushShard applies a shard's FLUSHALL or FLUSHDB: the source master
// emptied its own slots only, so on the target only the keys of those
// slots go (never resync's own, under the reserved prefix). What was sent
// before is confirmed first, so the deletion lands in order.
func (t *Task) flushShard(w sink) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := w.Sync(ctx); err != nil {
		return err
	}
	// A cluster source has db 0 only; a standalone source's flush comes
	// here only when the filters let it through.
	tdb, ok := t.filter.DB(0)
	if t.child && !ok {
		return nil
	}
	if t.targetCluster {
		return t.onTargetMasters(ctx, t.flushSlotsOn)
	}
	dst, err := dialer.Dial(ctx, t.targetOpts())
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	return t.flushSlotsStandalone(dst, tdb)
}

// ownSlot reports whether slot is the shard's (any slot, for a task
// whose source is not a cluster).
func (t *Task) ownSlot(slot int) bool {
	if !t.child {
		return true
	}
	for _, r := range t.shardSlots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// flushSlotsOn deletes, on target master i, the keys of the shard's slots
// it serves.
func (t *Task) flushSlotsOn(c *dialer.Conn, top *cluster.Topology, i int) error {
	slots := t.shardSlots
	if !t.child {
		slots = [][2]int{{0, cluster.Slots - 1}}
	}
	for _, r := range slots {
		for slot := r[0]; slot <= r[1]; slot++ {
			if top.Owner(slot) != i {
				continue
			}
			for {
				v, err := c.Do("CLUSTER", "GETKEYSINSLOT", strconv.Itoa(slot), "1000")
				if err != nil {
					return fmt.Errorf("target: %w", err)
				}
				n, err := t.deleteKeys(c, v.Elems, nil)
				if err != nil {
					return err
				}
				if n == 0 {
					break // empty, or only resync's own keys left
				}
			}
		}
	}
	return nil
}

// flushSlotsStandalone deletes, in a standalone target's db, the keys
// whose slot is the shard's.
func (t *Task) flushSlotsStandalone(c *dialer.Conn, db int) error {
	if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	cursor := "0"
	for {
		v, err := c.Do("SCAN", cursor, "COUNT", "1000")
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if len(v.Elems) != 2 {
			return fmt.Errorf("target: SCAN reply %v", v)
		}
		if _, err := t.deleteKeys(c, v.Elems[1].Elems, t.ownSlot); err != nil {
			return err
		}
		if cursor = v.Elems[0].Text(); cursor == "0" {
			return nil
		}
	}
}

// deleteKeys deletes the keys of a reply that are not resync's own and,
// when mine is set, whose slot it accepts; it returns how many it sent.
func (t *Task) deleteKeys(c *dialer.Conn, keys []resp.Value, mine func(int) bool) (int, error) {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(string(k.Str), ReservedPrefix) || mine != nil && !mine(cluster.Slot(k.Str)) {
			continue
		}
		c.Writer().WriteCommand([]byte("DEL"), k.Str)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := c.Writer().Flush(); err != nil {
		return 0, fmt.Errorf("target %s: %w", c.Addr(), err)
	}
	for range n {
		if _, err := c.Receive("DEL"); err != nil {
			return 0, fmt.Errorf("target: %w", err)
		}
	}
	return n, nil
}

// loadReplace makes FUNCTION LOAD replace a library of the same name.
func loadReplace(args [][]byte) [][]byte {
	if len(args) < 3 || !strings.EqualFold(string(args[0]), "FUNCTION") || !strings.EqualFold(string(args[1]), "LOAD") ||
		strings.EqualFold(string(args[2]), "REPLACE") {
		return args
	}
	return append([][]byte{args[0], args[1], []byte("REPLACE")}, args[2:]...)
}
