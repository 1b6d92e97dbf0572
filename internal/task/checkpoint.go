package task

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/writer"
)

// Delivery guarantees (Config.Delivery).
const (
	// DeliveryExactlyOnce wraps each batch of the stream, with its
	// checkpoint, in one MULTI/EXEC on a standalone target: after any
	// fault the target holds each command once.
	DeliveryExactlyOnce = "exactly-once"
	// DeliveryAtLeastOnce sends the stream as it comes and writes the
	// checkpoint about once a second, once everything before it is
	// confirmed: faster, but after a fault up to a second of commands may
	// be applied again (harmless for SET, not for INCR or LPUSH).
	DeliveryAtLeastOnce = "at-least-once"
)

// checkpointEvery is how often a checkpoint is written when nothing else
// asks for one: in at-least-once delivery, on a cluster target, and when
// the stream carries only what is not written (PINGs, filtered keys).
const checkpointEvery = time.Second

// exact reports whether the task writes each batch in transactions with
// its checkpoints: one per batch on a standalone target (wrap); on a
// cluster, which runs a transaction within one slot only, one per slot
// the batch writes, each with its slot's checkpoint (the router's
// groups), and a low watermark besides.
func (t *Task) exact() bool { return t.cfg.Delivery != DeliveryAtLeastOnce }

// wrap reports whether the task itself wraps each batch in MULTI/EXEC.
func (t *Task) wrap() bool { return t.exact() && !t.targetCluster }

// shardID names a cluster source's shard in its checkpoint key: its
// first slot range, which a failover of the source keeps.
func (t *Task) shardID() string {
	if !t.child || len(t.shardSlots) == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", t.shardSlots[0][0], t.shardSlots[0][1])
}

func (t *Task) checkpointKey() string {
	return checkpoint.Key(ReservedPrefix, t.cfg.Name, t.shardID())
}

// txn is the apply loop's view of the target connection: the transaction
// it has open (exactly-once), whether the stream is inside a source MULTI
// (nothing may be confirmed half way through one), the connection's
// database, and the last checkpoint written.
type txn struct {
	open     bool  // our MULTI went out, its EXEC not yet
	inSource bool  // between a source MULTI and its EXEC
	connDB   int   // the target connection's database; -1 unknown
	startDB  int   // connDB when our MULTI went out: DISCARD returns there
	swapped  []int // databases a SWAPDB in the open transaction touched
	wrote    bool  // commands written since the last checkpoint
	// plain: the batch being applied holds only commands whose replay
	// is harmless, and goes without a transaction; unsaved: such
	// batches went since the last checkpoint, which a watermark covers.
	plain, unsaved bool

	savedOffset int64 // the last checkpoint's offset
	savedAt     time.Time
	// prevSaved is the one before: a failover of the target may lose
	// the last (replicas lag), so the stream since prevSaved is kept to
	// be sent again.
	prevSaved int64
}

// dbChange records that the source's stream selected db at offset; a
// checkpoint of an earlier offset than the stream's needs the database
// current there.
type dbChange struct {
	offset int64
	db     int
}

// noteDB records the source's current database after the command at
// offset.
func (t *Task) noteDB(offset int64) {
	db := t.stream.DB()
	if n := len(t.dbs); n > 0 && t.dbs[n-1].db == db || n == 0 && t.baseDB == db {
		return
	}
	t.dbs = append(t.dbs, dbChange{offset, db})
}

// dbAt returns the source's current database after offset, and forgets
// the changes before it.
func (t *Task) dbAt(offset int64) int {
	n := 0
	for n < len(t.dbs) && t.dbs[n].offset <= offset {
		t.baseDB = t.dbs[n].db
		n++
	}
	t.dbs = append(t.dbs[:0], t.dbs[n:]...)
	return t.baseDB
}

// newSink resets the view of a fresh target connection: no transaction.
func (t *Task) newSink() {
	// Unknown: the first command of the stream selects the database its
	// source database maps to (the dialer chose the URL's).
	t.tx = txn{connDB: -1, savedOffset: t.tx.savedOffset, savedAt: t.tx.savedAt, prevSaved: t.tx.prevSaved}
	if t.targetCluster {
		t.tx.connDB = 0
	}
}

// write sends one command of the stream: in exactly-once delivery inside
// the batch's transaction (the source's own MULTI and EXEC are dropped:
// the batch's transaction holds the whole block).
func (t *Task) write(w sink, op writer.Op) error {
	name := op.Args[0]
	switch {
	case isName(name, "MULTI"):
		t.tx.inSource = true
		if t.wrap() {
			return nil
		}
	case isName(name, "EXEC"):
		t.tx.inSource = false
		if t.wrap() {
			return nil
		}
	}
	if t.wrap() && !t.tx.plain && !t.tx.open {
		if err := w.Write(writer.Op{Args: [][]byte{[]byte("MULTI")}}); err != nil {
			return err
		}
		t.tx.open, t.tx.startDB, t.tx.swapped = true, t.tx.connDB, t.tx.swapped[:0]
	}
	if t.tx.connDB < 0 {
		// A new connection after a resumed stream: it must be where the
		// stream is.
		if db, ok := t.filter.DB(t.stream.DB()); ok && !t.targetCluster {
			if err := w.Write(writer.Op{Args: [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(db))}}); err != nil {
				return err
			}
			t.tx.connDB = db
		}
	}
	switch {
	case isName(name, "SELECT") && len(op.Args) == 2:
		if db, err := strconv.Atoi(string(op.Args[1])); err == nil {
			t.tx.connDB = db
		}
	case isName(name, "SWAPDB") && len(op.Args) == 3:
		for _, a := range op.Args[1:] {
			if db, err := strconv.Atoi(string(a)); err == nil {
				t.tx.swapped = append(t.tx.swapped, db)
			}
		}
	}
	t.tx.wrote = true
	return w.Write(op)
}

// isName reports whether a command's name is s, in any case; the length
// test spares most commands the comparison.
func isName(name []byte, s string) bool {
	return len(name) == len(s) && strings.EqualFold(string(name), s)
}

// endBatch ends a batch of the stream at offset. In exactly-once delivery
// the batch's transaction is committed with its checkpoint (unless a
// source MULTI is still open: the next batch carries on with it); a
// batch that wrote nothing only moves the applied offset, and writes a
// checkpoint now and then so that the target's does not fall far behind.
func (t *Task) endBatch(w sink, offset int64) error {
	if t.tx.inSource {
		return nil // mid-transaction: nothing here is confirmed alone
	}
	if t.tx.plain {
		// No checkpoint of its own: the watermark covers it once
		// confirmed, and until then a replay applies it again, which
		// leaves the target as once.
		t.tx.plain, t.tx.unsaved, t.tx.wrote = false, true, false
		return w.Mark(offset)
	}
	if !t.exact() || !t.tx.wrote && time.Since(t.tx.savedAt) < checkpointEvery {
		return w.Mark(offset)
	}
	return t.commit(w, offset)
}

// commit writes the checkpoint of offset at the end of the open
// transaction (opening one if none is) and sends EXEC: the commands and
// their checkpoint apply together or not at all. The checkpoint lives in
// the target URL's database; the write puts the connection back after.
func (t *Task) commit(w sink, offset int64) error {
	if r, ok := w.(*router.Router); ok {
		if err := r.Commit(offset); err != nil {
			return err
		}
		t.tx.wrote = false
		return nil
	}
	if !t.tx.open {
		if err := w.Write(writer.Op{Args: [][]byte{[]byte("MULTI")}}); err != nil {
			return err
		}
		t.tx.open, t.tx.startDB = true, t.tx.connDB
	}
	home := t.cfg.Target.DB
	key := []byte(t.checkpointKey())
	p := checkpoint.Point{ReplID: t.currentReplID(), Offset: offset, DB: t.dbAt(offset), State: checkpoint.Streaming, TimeMs: time.Now().UnixMilli()}
	ops := [][][]byte{{[]byte("SET"), key, []byte(p.Format())}}
	// A SWAPDB took the checkpoint's database elsewhere: the copy it
	// moved would be stale there.
	for _, db := range t.tx.swapped {
		if db != home {
			ops = append(ops, selectArgs(db), [][]byte{[]byte("DEL"), key})
		}
	}
	if t.tx.connDB != home || len(t.tx.swapped) > 0 {
		ops = append([][][]byte{selectArgs(home)}, ops...)
		if t.tx.connDB >= 0 {
			ops = append(ops, selectArgs(t.tx.connDB))
		}
	}
	for _, args := range ops {
		if err := w.Write(writer.Op{Args: args}); err != nil {
			return err
		}
	}
	// An unknown database stays unknown (-1): the next command selects
	// the stream's, which need not be home.
	if err := w.Write(writer.Op{Args: [][]byte{[]byte("EXEC")}, Offset: offset}); err != nil {
		return err
	}
	t.tx.open, t.tx.wrote, t.tx.unsaved = false, false, false
	t.tx.savedOffset, t.tx.savedAt = offset, time.Now()
	return nil
}

// replayable reports whether a batch holds only commands whose effect
// depends neither on the key's state nor on the time (SET with no
// option, MSET, DEL, UNLINK), or that are not written (SELECT, PUBLISH,
// resync's own heartbeat): applied twice in a row, any prefix of such a
// batch and then the whole leaves the target as the whole once does,
// whenever the replay comes, and none can fail on a key of another type.
// (An expiry is left out: SET … PXAT replayed after its time deletes
// the key, which a later PERSIST, applied once, would have kept.) In
// exactly-once delivery such a batch needs no transaction: the
// checkpoint after it (a watermark) or a later batch's covers it, and a
// fault before that replays it harmlessly.
func replayable(cmds []receiver.Command, reserved []byte) bool {
	for _, c := range cmds {
		a := c.Args
		name := a[0]
		var ok bool
		switch {
		case isName(name, "SET"):
			ok = len(a) == 3 || len(a) >= 2 && bytes.HasPrefix(a[1], reserved)
		case isName(name, "DEL"), isName(name, "UNLINK"):
			ok = len(a) >= 2
		case isName(name, "MSET"):
			ok = len(a) >= 3 && len(a)%2 == 1
		case isName(name, "SELECT"):
			ok = len(a) == 2
		case isPublish(name):
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

func selectArgs(db int) [][]byte { return [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(db))} }

// discard drops the transaction left open when a session ended inside a
// source MULTI (ours, or the source's own in at-least-once delivery; on
// a cluster, what the router holds): its commands come again from the
// new PSYNC.
func (t *Task) discard(w sink) error {
	if r, ok := sinkRouter(w); ok {
		r.Discard()
		t.tx.inSource, t.tx.wrote = false, false
		return nil
	}
	if !t.tx.open && !t.tx.inSource {
		return nil
	}
	if err := w.Write(writer.Op{Args: [][]byte{[]byte("DISCARD")}}); err != nil {
		return err
	}
	if t.tx.open {
		t.tx.connDB = t.tx.startDB
	} else {
		t.tx.connDB = -1 // the source's block may have selected
	}
	t.tx.open, t.tx.inSource, t.tx.wrote = false, false, false
	return nil
}

// watermark writes, about once a second, the checkpoint of what the
// target confirmed (at-least-once delivery, a cluster target). It goes
// through the sink after later commands, which is sound: it claims only
// what is already confirmed.
func (t *Task) watermark(w sink, applied int64) error {
	if t.wrap() && !t.tx.unsaved || t.tx.open || t.tx.inSource || applied <= t.tx.savedOffset || time.Since(t.tx.savedAt) < checkpointEvery {
		return nil
	}
	p := checkpoint.Point{ReplID: t.currentReplID(), Offset: applied, DB: t.dbAt(applied), State: checkpoint.Streaming, TimeMs: time.Now().UnixMilli()}
	set := [][]byte{[]byte("SET"), []byte(t.checkpointKey()), []byte(p.Format())}
	home := t.cfg.Target.DB
	ops := [][][]byte{set}
	if !t.targetCluster && t.tx.connDB != home {
		ops = [][][]byte{selectArgs(home), set}
		if t.tx.connDB >= 0 {
			ops = append(ops, selectArgs(t.tx.connDB))
		}
	}
	if r, ok := w.(*router.Router); ok {
		if err := r.Direct(writer.Op{Args: set}); err != nil {
			return err
		}
	} else {
		for _, args := range ops {
			if err := w.Write(writer.Op{Args: args}); err != nil {
				return err
			}
		}
	}
	t.tx.prevSaved, t.tx.savedOffset, t.tx.savedAt = t.tx.savedOffset, applied, time.Now()
	t.tx.unsaved = false
	return nil
}

func (t *Task) currentReplID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.replID
}

// keyConn dials the target node that holds key: the target itself, or on
// a cluster the master that serves the key's slot.
func (t *Task) keyConn(ctx context.Context, key string) (*dialer.Conn, error) {
	c, err := dialer.Dial(ctx, t.targetOpts())
	if err != nil || !t.targetCluster {
		return c, err
	}
	defer c.Close()
	top, err := cluster.Load(c)
	if err != nil {
		return nil, err
	}
	i := top.Owner(cluster.Slot([]byte(key)))
	if i < 0 {
		return nil, fmt.Errorf("no master of the target serves slot %d (of %q)", cluster.Slot([]byte(key)), key)
	}
	return dialer.Dial(ctx, top.Options(t.targetOpts(), i))
}

// readCheckpoint reads the task's (or shard's) checkpoint from the
// target; ok is false when there is none.
func (t *Task) readCheckpoint(ctx context.Context) (p checkpoint.Point, ok bool, err error) {
	key := t.checkpointKey()
	c, err := t.keyConn(ctx, key)
	if err != nil {
		return p, false, fmt.Errorf("target: reading the checkpoint: %w", err)
	}
	defer c.Close()
	v, err := c.Do("GET", key)
	if err != nil {
		return p, false, fmt.Errorf("target: reading the checkpoint: %w", err)
	}
	if v.Nil() {
		return p, false, nil
	}
	if p, err = checkpoint.Parse(v.Text()); err != nil {
		return p, false, fmt.Errorf("target %s, key %s: %w (resync sync --reset forgets it)", c.Addr(), key, err)
	}
	return p, true, nil
}

// saveCheckpoint writes p through a connection of its own (at the start
// and end of a full sync, and when the task stops).
func (t *Task) saveCheckpoint(ctx context.Context, p checkpoint.Point) error {
	key := t.checkpointKey()
	c, err := t.keyConn(ctx, key)
	if err != nil {
		return fmt.Errorf("target: writing the checkpoint: %w", err)
	}
	defer c.Close()
	p.TimeMs = time.Now().UnixMilli()
	if _, err := c.Do("SET", key, p.Format()); err != nil {
		return fmt.Errorf("target: writing the checkpoint: %w", err)
	}
	t.tx.savedOffset, t.tx.savedAt = p.Offset, time.Now()
	return nil
}

// resume reads the checkpoint before a session that has no target
// connection yet (the first, or one after the target failed): the target
// is the truth of how far it is, even when it lost writes it had
// confirmed (a failover). It returns whether the target holds part of
// a full sync that must start over.
func (t *Task) resume(ctx context.Context, w sink) (scratch bool, err error) {
	p, ok, err := t.readCheckpoint(ctx)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	had := t.replID != ""
	t.mu.Unlock()
	switch {
	case !ok && had:
		// It had one: the target lost its data (restarted without
		// persistence, or a failover to an empty replica).
		t.log.Warn("the target has no checkpoint any more (its data was lost?): syncing from scratch", "key", t.checkpointKey())
		t.setResume("", 0, 0)
		return true, nil
	case !ok:
		return false, nil
	case p.State == checkpoint.FullSync:
		t.log.Warn("the target holds part of a full sync that did not end: starting it over", "key", t.checkpointKey())
		t.setResume("", 0, 0)
		return true, nil
	case p.State == checkpoint.Scan:
		t.log.Warn("a task in scan mode wrote the target: a full sync follows", "key", t.checkpointKey())
		t.setResume("", 0, 0)
		return true, nil
	}
	if had && p.Offset < t.applied.Load() {
		t.log.Warn("the target is behind what it confirmed (a failover lost writes): resending from its checkpoint",
			"checkpoint", p.Offset, "confirmed", t.applied.Load())
	}
	t.log.Info("resuming from the target's checkpoint", "replid", p.ReplID, "offset", p.Offset, "db", p.DB)
	t.setResume(p.ReplID, p.Offset, p.DB)
	t.tx.savedOffset, t.tx.savedAt = p.Offset, time.Now()
	if r, ok := sinkRouter(w); ok && t.exact() {
		done, err := t.slotCheckpoints(ctx, p)
		if err != nil {
			return false, err
		}
		r.SetDone(done)
		if len(done) > 0 {
			t.log.Info("slots ahead of the checkpoint: their commands up to their own checkpoints are skipped", "slots", len(done))
		}
	}
	return false, nil
}

func sinkRouter(w sink) (*router.Router, bool) {
	r, ok := w.(*router.Router)
	return r, ok
}

// slotKey is the checkpoint key of a slot of a cluster target.
func (t *Task) slotKey(slot int) []byte {
	return []byte(checkpoint.SlotKey(t.checkpointKey(), cluster.Tag(slot)))
}

// slotValue is a slot checkpoint's value for offset.
func (t *Task) slotValue(offset int64) []byte {
	p := checkpoint.Point{ReplID: t.currentReplID(), Offset: offset, State: checkpoint.Streaming, TimeMs: time.Now().UnixMilli()}
	return []byte(p.Format())
}

// slotCheckpoints reads the slot checkpoints of a cluster target that
// are past the watermark p: those slots hold commands after p already.
func (t *Task) slotCheckpoints(ctx context.Context, p checkpoint.Point) (map[int]int64, error) {
	done := map[int]int64{}
	err := t.onTargetMasters(ctx, func(c *dialer.Conn, _ *cluster.Topology, _ int) error {
		keys, err := c.ScanMatch(checkpoint.SlotPattern(t.checkpointKey()))
		for err == nil && len(keys) > 0 {
			n := min(len(keys), 500)
			// One slot per key: GET each (MGET would cross slots).
			for _, k := range keys[:n] {
				c.Writer().WriteCommandStrings("GET", k)
			}
			if err = c.Writer().Flush(); err != nil {
				break
			}
			for _, k := range keys[:n] {
				var v resp.Value
				if v, err = c.Receive("GET"); err != nil {
					break
				}
				if v.Nil() {
					continue
				}
				sp, perr := checkpoint.Parse(v.Text())
				if perr != nil {
					err = fmt.Errorf("key %s: %w", k, perr)
					break
				}
				// Every slot checkpoint is of the history since the
				// last full sync (which deletes them), whatever replid
				// a failover of the source gave it since.
				if sp.Offset > p.Offset {
					done[cluster.Slot([]byte(k))] = sp.Offset
				}
			}
			keys = keys[n:]
		}
		if err != nil {
			return fmt.Errorf("target %s: reading the slots' checkpoints: %w", c.Addr(), err)
		}
		return nil
	})
	return done, err
}

// setResume sets where the next PSYNC starts: replid "" asks for a full
// sync.
func (t *Task) setResume(replID string, offset int64, db int) {
	t.mu.Lock()
	t.replID = replID
	t.mu.Unlock()
	t.applied.Store(offset)
	t.received.Store(offset)
	t.dbs, t.baseDB = nil, db
	t.stream = nil
	// Without a replid the next session begins with a full sync: the
	// applied offset is no stream offset any more.
	if replID == "" {
		t.streaming = false
	} else {
		t.stream = t.filter.NewStream()
		t.stream.SetDB(db)
	}
}

// hasState reports whether the target holds checkpoints of this task
// (on any master of a cluster): then its keys are the task's own, and the
// conflict rule does not apply. With reset, it deletes them first.
func (t *Task) hasState(sync bool, nodes []*dialer.Conn, reset bool) (bool, error) {
	found := false
	if !sync {
		return false, nil
	}
	for _, c := range nodes {
		if _, err := c.Do("SELECT", strconv.Itoa(t.homeDB())); err != nil {
			return false, fmt.Errorf("target: %w", err)
		}
		var keys []string
		for _, p := range checkpoint.Patterns(ReservedPrefix, t.cfg.Name) {
			k, err := c.ScanMatch(p)
			if err != nil {
				return false, fmt.Errorf("target: %w", err)
			}
			keys = append(keys, k...)
		}
		for _, k := range keys {
			if reset {
				if _, err := c.Do("DEL", k); err != nil {
					return false, fmt.Errorf("target: %w", err)
				}
				t.log.Warn("--reset: forgot the checkpoint", "key", k, "target", c.Addr())
				continue
			}
			found = true
		}
	}
	return found, nil
}

// homeDB is the database of the task's own keys on the target.
func (t *Task) homeDB() int {
	if t.targetCluster {
		return 0
	}
	return t.cfg.Target.DB
}

// dropSlotCheckpoints deletes the task's slot checkpoints from a cluster
// target, before a full sync: they belong to the history it replaces.
func (t *Task) dropSlotCheckpoints(ctx context.Context) error {
	return t.onTargetMasters(ctx, func(c *dialer.Conn, _ *cluster.Topology, _ int) error {
		keys, err := c.ScanMatch(checkpoint.SlotPattern(t.checkpointKey()))
		for _, k := range keys {
			if err != nil {
				break
			}
			_, err = c.Do("DEL", k)
		}
		if err != nil {
			return fmt.Errorf("target %s: deleting old slot checkpoints: %w", c.Addr(), err)
		}
		return nil
	})
}

// onTargetMasters calls f with a connection to each master of a cluster
// target, by the slot map read now.
func (t *Task) onTargetMasters(ctx context.Context, f func(c *dialer.Conn, top *cluster.Topology, i int) error) error {
	seed, err := dialer.Dial(ctx, t.targetOpts())
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	top, err := cluster.Load(seed)
	seed.Close()
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	for i := range top.Masters {
		c, err := dialer.Dial(ctx, top.Options(t.targetOpts(), i))
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		err = f(c, top, i)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// commitBefore commits what the open batch wrote so far, before a
// command that goes around the batch's transactions (a flush through
// another connection, a broadcast to every master).
func (t *Task) commitBefore(w sink) error {
	if !t.exact() || !t.tx.open && !t.tx.wrote {
		return nil
	}
	return t.commit(w, t.lastOffset)
}

// checkpointAt records that the target is at offset right after such a
// command: in a transaction of its own on a standalone target; on a
// cluster, once every master confirmed it, directly.
func (t *Task) checkpointAt(w sink, offset int64) error {
	if !t.exact() {
		return nil
	}
	if !t.targetCluster {
		return t.commit(w, offset)
	}
	if err := w.Mark(offset); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := w.Sync(ctx); err != nil {
		return err
	}
	p := checkpoint.Point{ReplID: t.currentReplID(), Offset: offset, DB: t.dbAt(offset), State: checkpoint.Streaming}
	return t.saveCheckpoint(ctx, p)
}
