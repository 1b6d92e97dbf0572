package task

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/keyevents"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/writer"
)

// Source modes (Config.SourceMode).
const (
	// SourcePSYNC replicates: a snapshot, then the command stream, exact.
	SourcePSYNC = "psync"
	// SourceScan is for a source that refuses PSYNC: it copies every key
	// (SCAN, then DUMP with its expiry) and follows changes through
	// keyspace notifications, copying a key again each time it changes.
	// It cannot be exact: a notification can be lost (the subscriber's
	// output buffer overflows, the link drops: then everything is copied
	// again), and FLUSHALL, FLUSHDB and SWAPDB notify nothing.
	SourceScan = "scan"
)

// scanBatch bounds the keys taken from the queue at once: their sizes
// are asked in one round trip and their values read in runs bounded by
// bytes. Where the sizes are not known, unsizedBatch keys are read in
// one round trip.
const (
	scanBatch    = 1024
	unsizedBatch = 256
)

// scanBacklog bounds the keys the scan queues ahead of the copy;
// notifications are queued whatever the count (each key once), so that
// the subscription is always read.
const scanBacklog = 8192

// errNotificationsOff is why scan mode cannot start on a source whose
// keyspace notifications are off, without the user's consent to turn
// them on.
var errNotificationsOff = errors.New("the source's keyspace notifications are off")

// scanItem is a key to copy; hb marks the task's heartbeat (its arrival
// time measures the lag), end the scan's end (the copy is complete once
// what came before it is confirmed).
type scanItem struct {
	db     int
	key    string
	hb     bool
	heard  time.Time
	end    bool
	notify bool
}

// keyQueue orders the keys to copy: from the scan and from notifications
// alike, in arrival order, each key at most once while it waits (a key
// changed five times is copied once, after the fifth: its value is read
// when its turn comes, so a copy never goes back in time).
type keyQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []scanItem
	waiting map[string]bool // db + "\x00" + key
	scanned int             // scan items waiting
	err     error           // the subscription or the scan failed
	closed  bool
}

func newKeyQueue() *keyQueue {
	q := &keyQueue{waiting: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func waitingKey(db int, key string) string { return strconv.Itoa(db) + "\x00" + key }

// push queues an item (a key already waiting is not queued again).
func (q *keyQueue) push(it scanItem) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !it.hb && !it.end {
		k := waitingKey(it.db, it.key)
		if q.waiting[k] {
			return
		}
		q.waiting[k] = true
	}
	if !it.notify {
		q.scanned++
	}
	q.items = append(q.items, it)
	q.cond.Broadcast()
}

// roomForScan waits until the scan may queue more, or the queue ends.
func (q *keyQueue) roomForScan() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.scanned >= scanBacklog && q.err == nil && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return context.Canceled
	}
	return q.err
}

// fail ends the queue with err (the first wins).
func (q *keyQueue) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
	q.cond.Broadcast()
}

func (q *keyQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// pop takes up to n items, waiting for one.
func (q *keyQueue) pop(n int) ([]scanItem, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.err == nil && !q.closed {
		q.cond.Wait()
	}
	if q.err != nil {
		return nil, q.err
	}
	if q.closed {
		return nil, context.Canceled
	}
	n = min(n, len(q.items))
	out := make([]scanItem, n)
	copy(out, q.items)
	clear(q.items[:n])
	q.items = q.items[n:]
	for _, it := range out {
		if !it.hb && !it.end {
			delete(q.waiting, waitingKey(it.db, it.key))
		}
		if !it.notify {
			q.scanned--
		}
	}
	q.cond.Broadcast()
	return out, nil
}

// scanSession copies the source by SCAN and follows it through keyspace
// notifications, until a side fails or ctx ends. Every session starts
// over: what a lost subscription missed cannot be known.
func (t *Task) scanSession(ctx context.Context, w *sink, target redisproc.Version) error {
	t.setState(StateFullSync)
	// After a failover (a cluster's, or through Sentinel), scan the
	// master that serves now.
	if err := t.locateSource(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	t.healthy = time.Time{}
	t.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newKeyQueue()
	stop := context.AfterFunc(ctx, q.close)
	defer stop()

	subDone, err := t.subscribe(ctx, q)
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		<-subDone
	}()
	if *w != nil && (*w).Err() != nil {
		// The target failed the last session: a new connection.
		(*w).Close()
		*w = nil
	}
	if *w == nil {
		if *w, err = t.openTarget(ctx); err != nil {
			return err
		}
		t.newSink()
	}
	// The target is the task's: a restart copies again into it (the
	// conflict check sees this checkpoint as the task's own).
	mark := checkpoint.Point{State: checkpoint.Scan, TimeMs: time.Now().UnixMilli()}
	if err := t.saveCheckpoint(ctx, mark); err != nil {
		return err
	}
	t.log.Warn("scan mode: copying every key, then following keyspace notifications; this cannot be exact (a lost notification, a key written during its own copy, FLUSHALL/FLUSHDB/SWAPDB): run resync verify once the writes stop")

	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		if err := t.scanKeys(ctx, q); err != nil {
			q.fail(err)
		}
	}()
	defer func() {
		cancel()
		<-scanDone
	}()

	src, err := dialer.Dial(ctx, t.sourceOpts())
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	stopSrc := context.AfterFunc(ctx, func() { src.Close() })
	defer stopSrc()
	c := &scanCopier{t: t, src: src, target: target, srcDB: -1, dstDB: -1, pexpiretime: t.sourceVersion.AtLeast(7, 0),
		sized: t.sourceVersion.AtLeast(4, 0)}
	defer c.close()
	// The marks go on from the writer's: a kept writer's applied mark
	// only moves forward. Heartbeats of an earlier session are void.
	seq := (*w).Applied()
	t.mu.Lock()
	t.beats = t.beats[:0]
	t.mu.Unlock()
	endSeq := int64(-1)
	for {
		items, err := q.pop(c.batch())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		seq++
		beats, end, err := c.copy(ctx, items, *w)
		if err != nil {
			return err
		}
		if end {
			endSeq = seq
		}
		t.mu.Lock()
		for _, at := range beats {
			t.beats = append(t.beats, beat{offset: seq, sentMs: at.UnixMilli()})
		}
		t.mu.Unlock()
		if err := (*w).Mark(seq); err != nil {
			return err
		}
		if err := (*w).Flush(); err != nil {
			return err
		}
		a := (*w).Applied()
		t.beatsApplied(a)
		if endSeq > 0 {
			// The scan's end was in this batch: the keys before it are
			// confirmed before the state says so (now, not at the next
			// item, which may be a heartbeat a second away).
			if err := (*w).Sync(ctx); err != nil {
				return err
			}
			t.beatsApplied((*w).Applied())
			t.log.Info("scan mode: every key copied; following the source's changes", "keys", t.counts.Keys.Load())
			t.setState(StateSynchronizing)
			t.mu.Lock()
			t.healthy = time.Now()
			t.mu.Unlock()
			endSeq = 0
		}
	}
}

// subscribe turns the source's keyspace notifications on when they are
// off and the user allowed it, subscribes to every database's, and
// queues each notified key until ctx ends or the subscription fails;
// done closes when its goroutine has ended.
func (t *Task) subscribe(ctx context.Context, q *keyQueue) (done chan struct{}, err error) {
	c, err := dialer.Dial(ctx, t.sourceOpts())
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if err := t.enableNotifications(c); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Do("PSUBSCRIBE", "__keyspace@*__:*"); err != nil {
		c.Close()
		return nil, fmt.Errorf("source: subscribing to keyspace notifications: %w", err)
	}
	// Quiet databases send nothing for a while: no read deadline (the
	// heartbeat's own notifications come every interval anyway).
	c.SetIOTimeout(-1)
	hb := t.HeartbeatKey()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer stop()
		defer c.Close()
		for {
			v, err := c.Receive("keyspace notification")
			if err != nil {
				if ctx.Err() == nil {
					q.fail(fmt.Errorf("source: keyspace notifications lost (%w): everything is copied again", err))
				}
				return
			}
			db, key, ok := keyspaceChannel(v)
			if !ok {
				continue
			}
			if key == hb {
				q.push(scanItem{db: db, key: key, hb: true, heard: time.Now(), notify: true})
				continue
			}
			if _, selected := t.filter.DB(db); !selected || !t.filter.Key([]byte(key)) {
				continue
			}
			q.push(scanItem{db: db, key: key, notify: true})
		}
	}()
	return done, nil
}

// enableNotifications checks that the source notifies every keyspace
// event; when it does not, it turns them on only with the user's consent
// (Config.EnableNotifications).
func (t *Task) enableNotifications(c *dialer.Conn) error {
	v, err := c.Do("CONFIG", "GET", "notify-keyspace-events")
	if err != nil {
		return fmt.Errorf("source: reading notify-keyspace-events: %w", err)
	}
	flags := ""
	if len(v.Elems) == 2 {
		flags = v.Elems[1].Text()
	}
	if keyevents.Complete(flags) {
		return nil
	}
	if !t.cfg.EnableNotifications {
		return fmt.Errorf("%w (notify-keyspace-events is %q): scan mode follows changes through them; run with --enable-notifications to let resync turn them on (CONFIG SET notify-keyspace-events %s), or set them yourself", errNotificationsOff, flags, keyevents.Completed(flags))
	}
	if _, err := c.Do("CONFIG", "SET", "notify-keyspace-events", keyevents.Completed(flags)); err != nil {
		return fmt.Errorf("source: turning keyspace notifications on: %w", err)
	}
	t.log.Warn("turned the source's keyspace notifications on (--enable-notifications); turn them off again once the task is over", "was", flags, "now", keyevents.Completed(flags))
	return nil
}

// keyspaceChannel reads a pmessage of __keyspace@<db>__:<key>.
func keyspaceChannel(v resp.Value) (db int, key string, ok bool) {
	if len(v.Elems) != 4 || !strings.EqualFold(v.Elems[0].Text(), "pmessage") {
		return 0, "", false
	}
	ch := v.Elems[2].Str
	rest, found := bytes.CutPrefix(ch, []byte("__keyspace@"))
	if !found {
		return 0, "", false
	}
	i := bytes.Index(rest, []byte("__:"))
	if i < 0 {
		return 0, "", false
	}
	db, err := strconv.Atoi(string(rest[:i]))
	if err != nil {
		return 0, "", false
	}
	return db, string(rest[i+3:]), true
}

// scanKeys queues every key of the selected databases, then the scan's
// end mark; it waits while the copy is scanBacklog keys behind, and keeps
// to Config.ScanRate keys a second.
func (t *Task) scanKeys(ctx context.Context, q *keyQueue) error {
	c, err := dialer.Dial(ctx, t.sourceOpts())
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dbs, err := keyspaceDBs(c)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	start, n := time.Now(), 0
	for _, db := range dbs {
		if _, ok := t.filter.DB(db); !ok {
			continue
		}
		if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		cursor := "0"
		for {
			if err := q.roomForScan(); err != nil {
				return err
			}
			v, err := c.Do("SCAN", cursor, "COUNT", "1000")
			if err != nil {
				return fmt.Errorf("source: %w", err)
			}
			if len(v.Elems) != 2 {
				return fmt.Errorf("source: SCAN answered %d elements", len(v.Elems))
			}
			cursor = v.Elems[0].Text()
			for _, k := range v.Elems[1].Elems {
				if !t.filter.Key(k.Str) {
					continue
				}
				q.push(scanItem{db: db, key: string(k.Str)})
				n++
			}
			if r := t.cfg.ScanRate; r > 0 {
				// Keep to the rate: n keys take n/r seconds.
				ahead := time.Duration(float64(n)/float64(r)*float64(time.Second)) - time.Since(start)
				if ahead > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(ahead):
					}
				}
			}
			if cursor == "0" {
				break
			}
		}
	}
	q.push(scanItem{end: true})
	return nil
}

// scanCopier reads keys from the source and writes them to the target.
type scanCopier struct {
	t            *Task
	src          *dialer.Conn
	target       redisproc.Version
	srcDB, dstDB int // the connections' databases; -1 unknown
	pexpiretime  bool
	// sized: the source answers MEMORY USAGE (4.0+, and allowed), so a
	// big key is copied in chunks instead of by a whole DUMP.
	sized        bool
	warnedPieces bool
	// nodes are connections to the other masters of a cluster source,
	// where redirected keys are read.
	nodes map[string]*dialer.Conn
}

// batch is how many keys to take from the queue at once.
func (c *scanCopier) batch() int {
	if c.sized {
		return scanBatch
	}
	return unsizedBatch
}

// copy copies a batch of items in order: runs of keys by dumpRun, up to
// BigKeyBytes of them at a time, and each key past it by copyBig, so that
// resync holds about BigKeyBytes of values at most (where the source
// tells key sizes; else batch keeps the batches short).
func (c *scanCopier) copy(ctx context.Context, items []scanItem, w sink) (beats []time.Time, end bool, err error) {
	sizes, err := c.sizes(items)
	if err != nil {
		return nil, false, err
	}
	big := int64(c.t.cfg.BigKeyBytes)
	var run []scanItem
	var runBytes int64
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		b, e, err := c.dumpRun(ctx, run, w)
		beats, end = append(beats, b...), end || e
		run, runBytes = nil, 0
		return err
	}
	for i, it := range items {
		if sizes[i] > big {
			if err := flush(); err != nil {
				return nil, false, err
			}
			if err := c.copyBig(ctx, it, sizes[i], w); err != nil {
				return nil, false, err
			}
			continue
		}
		if len(run) > 0 && runBytes+sizes[i] > big {
			if err := flush(); err != nil {
				return nil, false, err
			}
		}
		run = append(run, it)
		runBytes += sizes[i]
	}
	if err := flush(); err != nil {
		return nil, false, err
	}
	return beats, end, nil
}

// dumpRun reads the items' values (DUMP and expiry, in one MULTI per key
// so the two agree) and writes them: RESTORE when the target loads the
// payload's RDB version, plain commands otherwise, DEL for a key gone.
// It returns when the batch's heartbeats were heard, and whether it held
// the scan's end.
func (c *scanCopier) dumpRun(ctx context.Context, items []scanItem, w sink) (beats []time.Time, end bool, err error) {
	out := c.src.Writer()
	// Each key's replies: SELECT when its database differs, then MULTI,
	// DUMP, its TTL and EXEC.
	replies := make([]int, 0, len(items))
	for _, it := range items {
		if it.end || it.hb {
			continue
		}
		n := 4
		if it.db != c.srcDB {
			out.WriteCommandStrings("SELECT", strconv.Itoa(it.db))
			n++
			c.srcDB = it.db
		}
		ttl := "PTTL"
		if c.pexpiretime {
			ttl = "PEXPIRETIME"
		}
		out.WriteCommandStrings("MULTI")
		out.WriteCommandStrings("DUMP", it.key)
		out.WriteCommandStrings(ttl, it.key)
		out.WriteCommandStrings("EXEC")
		replies = append(replies, n)
	}
	if err := out.Flush(); err != nil {
		return nil, false, fmt.Errorf("source: %w", err)
	}
	// A key its node no longer serves (MOVED, ASK: a cluster source's
	// slot moving to another master) is read where the redirect says.
	execs := make([]resp.Value, len(replies))
	moved := make([]*resp.RedisError, len(replies))
	for i, n := range replies {
		for range n {
			v, err := c.src.Receive("DUMP")
			var re *resp.RedisError
			switch {
			case err == nil:
				execs[i] = v
			case !errors.As(err, &re):
				return nil, false, err
			case redirect(re):
				moved[i] = re
			case re.Code() == "EXECABORT" && moved[i] != nil:
			default:
				return nil, false, err
			}
		}
	}
	next := 0
	for _, it := range items {
		switch {
		case it.end:
			end = true
			continue
		case it.hb:
			beats = append(beats, it.heard)
			continue
		}
		v, re := execs[next], moved[next]
		next++
		if re != nil {
			if err := c.redirected(ctx, it, re, w); err != nil {
				return nil, false, err
			}
			continue
		}
		if v.Kind != resp.Array || len(v.Elems) != 2 {
			return nil, false, fmt.Errorf("source: DUMP %s: a transaction of %d replies", c.t.keys().QuoteString(it.key), len(v.Elems))
		}
		for _, r := range v.Elems {
			if re := r.Err(); re != nil {
				return nil, false, fmt.Errorf("source: DUMP %s: %w", c.t.keys().QuoteString(it.key), re)
			}
		}
		if err := c.write(ctx, it, v.Elems[0], v.Elems[1], w); err != nil {
			return nil, false, err
		}
	}
	return beats, end, nil
}

// selectTarget selects the target database the source's db maps to.
func (c *scanCopier) selectTarget(srcDB int, w sink) error {
	db, _ := c.t.filter.DB(srcDB)
	if c.t.targetCluster || db == c.dstDB {
		return nil
	}
	if err := w.Write(writer.Op{Args: selectArgs(db)}); err != nil {
		return err
	}
	c.dstDB = db
	return nil
}

// write applies one key read from the source.
func (c *scanCopier) write(ctx context.Context, it scanItem, dump, ttl resp.Value, w sink) error {
	t := c.t
	key := []byte(it.key)
	if err := c.selectTarget(it.db, w); err != nil {
		return err
	}
	if dump.Nil() {
		// Gone (deleted, expired, evicted, moved away) since notified.
		return w.Write(writer.Op{Args: [][]byte{[]byte("DEL"), key}})
	}
	payload := dump.Str
	var expireMs int64
	switch {
	case ttl.Int == -2:
		// Expired between the two reads (before 6.0 the clock runs
		// inside a transaction): gone.
		return w.Write(writer.Op{Args: [][]byte{[]byte("DEL"), key}})
	case ttl.Int >= 0 && c.pexpiretime:
		expireMs = ttl.Int
	case ttl.Int >= 0:
		expireMs = time.Now().UnixMilli() + ttl.Int
	}
	if len(payload) < 11 {
		return fmt.Errorf("source: DUMP %s: a payload of %d bytes", t.keys().QuoteString(it.key), len(payload))
	}
	version := int(binary.LittleEndian.Uint16(payload[len(payload)-10:]))
	if version <= rdb.LoadsVersion(c.target.Major, c.target.Minor) {
		rec := &rdb.Record{Key: key, ExpireMs: expireMs, Idle: -1, Freq: -1}
		for _, op := range restoreOps(rec, payload, c.target) {
			if err := w.Write(op); err != nil {
				return err
			}
		}
		t.counts.Keys.Add(1)
		t.counts.Bytes.Add(int64(len(payload) + len(key)))
		return nil
	}
	// An older target: the value goes through the full sync's decoder
	// and its command path, from a one-key RDB file.
	file := payloadRDB(it.db, key, payload, expireMs, version)
	d, err := rdb.NewDecoder(bytes.NewReader(file))
	if err != nil {
		return fmt.Errorf("source: DUMP %s: %w", t.keys().QuoteString(it.key), err)
	}
	if err := t.loader(w, c.target).load(ctx, d); err != nil {
		return err
	}
	c.dstDB = -1 // the loader selected as it saw fit
	return nil
}

// payloadRDB wraps one DUMP payload in an RDB file of its version: the
// database, the expiry, the type byte, the key, the value; the checksum 0
// (not computed: the payload's own was checked by the source).
func payloadRDB(db int, key, payload []byte, expireMs int64, version int) []byte {
	value := payload[:len(payload)-10]
	b := fmt.Appendf(nil, "REDIS%04d", version)
	b = append(b, 0xFE) // SELECTDB
	b = rdb.AppendLength(b, uint64(db))
	if expireMs > 0 {
		b = append(b, 0xFC) // EXPIRETIME_MS
		b = binary.LittleEndian.AppendUint64(b, uint64(expireMs))
	}
	b = append(b, value[0])
	b = rdb.AppendLength(b, uint64(len(key)))
	b = append(b, key...)
	b = append(b, value[1:]...)
	b = append(b, 0xFF) // EOF
	if version >= 5 {
		b = append(b, make([]byte, 8)...)
	}
	return b
}
