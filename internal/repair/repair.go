// Package repair copies keys from a source to a target again, and deletes
// keys only the target has: what `resync verify --repair` does with the
// differences a comparison found.
//
// Copy does not write values itself. It reads each key's DUMP payload and
// TTL from the source, streams them into a small temporary RDB file, and
// loads that file with the full sync's machinery (task.Restore): SET for
// a plain string, RESTORE where the target loads the payload's RDB
// version, plain commands where it is older or the key is big. Version differences and big keys are
// thus handled exactly as a sync handles them, and no payload is ever
// held whole in memory.
package repair

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/task"
)

// Options say where keys are repaired.
type Options struct {
	Source, Target dialer.Options
	// Filter maps source databases to target databases (--map-db etc.),
	// exactly as a sync does; its key rules and the reserved prefix
	// say which keys may be touched at all.
	Filter filter.Config
	Logger *slog.Logger
}

// Key is one key, in the source database it lives in (for Copy) or in the
// target database (for Delete).
type Key struct {
	DB  int
	Key []byte
}

// Counts are what a repair did.
type Counts struct {
	Copied  int64 // keys written to the target again
	Deleted int64 // keys removed from the target (Delete, or Copy of a key the source no longer holds)
}

const (
	// maxBatch bounds the keys read from the source in one round trip.
	maxBatch = 256
	// batchBytes bounds, estimated from the previous round's payloads,
	// the replies one round leaves in the source's output buffer.
	batchBytes = 64 << 20
	// deleteBatch bounds the DELs sent in one round trip.
	deleteBatch = 512
)

// Copy writes each key's current source value, type and TTL to the
// target, replacing what the target holds. A key the source no longer
// holds is deleted from the target (in the database it maps to). Every
// key must be in a source database the filter selects and pass its key
// rules: the caller repairs what a sync would have written, nothing else.
func Copy(ctx context.Context, o Options, keys []Key) (Counts, error) {
	var counts Counts
	f, err := newFilter(o.Filter)
	if err != nil {
		return counts, err
	}
	for _, k := range keys {
		if _, ok := f.DB(k.DB); !ok {
			return counts, fmt.Errorf("copy %q: source db %d is not selected", k.Key, k.DB)
		}
		if !f.Key(k.Key) {
			return counts, fmt.Errorf("copy %q in db %d: the key rules (or the reserved prefix %q) keep it out", k.Key, k.DB, task.ReservedPrefix)
		}
	}
	if len(keys) == 0 {
		return counts, nil
	}
	log := logger(o)

	tmp, err := os.CreateTemp("", "resync-repair-*.rdb")
	if err != nil {
		return counts, fmt.Errorf("repair file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	file := newRDBFile(tmp)
	gone, err := dumpKeys(ctx, o.Source, file, group(keys))
	if err != nil {
		return counts, err
	}
	size, err := file.close()
	if err != nil {
		return counts, fmt.Errorf("repair file: %w", err)
	}
	log.Debug("repair: source read", "keys", len(keys), "gone", len(gone), "records", file.records, "file_bytes", size)

	if file.records > 0 {
		t := task.New(task.Config{
			Name:       "repair",
			Target:     o.Target,
			Filter:     o.Filter,
			OnConflict: task.ConflictOverwrite,
			// The task's state changes, progress and overwrite warning
			// would drown the caller's report; its errors come back as
			// Restore's error anyway.
			Logger: slog.New(errorsOnly{log.Handler()}),
		})
		err := t.Restore(ctx, io.NewSectionReader(tmp, 0, size), size)
		counts.Copied = t.Status().KeysWritten
		if err != nil {
			return counts, fmt.Errorf("copy: %w", err)
		}
	}

	// The keys the source no longer holds go from the target too, in
	// the database their source database maps to.
	for i := range gone {
		gone[i].DB, _ = f.DB(gone[i].DB)
	}
	counts.Deleted, err = del(ctx, o.Target, gone)
	return counts, err
}

// Delete removes keys from the target (keys only the target has). Keys
// the filter's key rules keep out, resync's own under the reserved prefix
// among them, are refused: they are not the sync's to remove.
func Delete(ctx context.Context, o Options, keys []Key) (Counts, error) {
	var counts Counts
	f, err := newFilter(o.Filter)
	if err != nil {
		return counts, err
	}
	for _, k := range keys {
		if !f.Key(k.Key) {
			return counts, fmt.Errorf("delete %q in db %d: the key rules (or the reserved prefix %q) keep it out", k.Key, k.DB, task.ReservedPrefix)
		}
	}
	counts.Deleted, err = del(ctx, o.Target, keys)
	return counts, err
}

// newFilter builds the filter a sync would use: the task always adds its
// reserved prefix, so the checks here must too.
func newFilter(c filter.Config) (*filter.Filter, error) {
	c.ReservedPrefix = task.ReservedPrefix
	f, err := filter.New(c)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return f, nil
}

func logger(o Options) *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// dbKeys are the keys of one database.
type dbKeys struct {
	db   int
	keys [][]byte
}

// group sorts keys by database, keeping their order within one and
// dropping repeats, so that each database is selected once.
func group(keys []Key) []dbKeys {
	type dbKey struct {
		db  int
		key string
	}
	seen := map[dbKey]bool{}
	index := map[int]int{} // db → its place in groups
	var groups []dbKeys
	for _, k := range keys {
		if seen[dbKey{k.DB, string(k.Key)}] {
			continue
		}
		seen[dbKey{k.DB, string(k.Key)}] = true
		i, ok := index[k.DB]
		if !ok {
			i = len(groups)
			index[k.DB] = i
			groups = append(groups, dbKeys{db: k.DB})
		}
		groups[i].keys = append(groups[i].keys, k.Key)
	}
	slices.SortFunc(groups, func(a, b dbKeys) int { return cmp.Compare(a.db, b.db) })
	return groups
}

// dumpKeys reads every key's TTL and DUMP payload from the source into
// file, database by database, and returns the keys the source no longer
// holds (in their source database).
func dumpKeys(ctx context.Context, source dialer.Options, file *rdbFile, groups []dbKeys) ([]Key, error) {
	c, err := dialer.Dial(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer c.Close()
	// Payloads go to the file as they arrive and are never held, so a
	// key bigger than the default bulk limit is no danger here; every
	// other reply on this connection is small.
	c.Reader().MaxBulkLen = math.MaxInt64
	d := &dumper{c: c, file: file, batch: maxBatch}
	for _, g := range groups {
		if err := d.db(ctx, g.db, g.keys); err != nil {
			return nil, err
		}
	}
	return d.gone, nil
}

// dumper reads keys from one source connection.
type dumper struct {
	c     *dialer.Conn
	file  *rdbFile
	batch int // keys in the next round
	gone  []Key
}

// db reads the keys of one database in rounds.
func (d *dumper) db(ctx context.Context, db int, keys [][]byte) error {
	if _, err := d.c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := d.file.selectDB(db); err != nil {
		return fmt.Errorf("repair file: %w", err)
	}
	for len(keys) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(keys), d.batch)
		size, err := d.round(db, keys[:n])
		if err != nil {
			return err
		}
		keys = keys[n:]
		// The source builds every reply of a round before we read them:
		// big payloads make the next round smaller.
		d.batch = int(max(1, min(maxBatch, batchBytes/max(1, size/int64(n)))))
	}
	return nil
}

// round pipelines MULTI, PTTL, DUMP, EXEC for each key — the transaction
// makes the TTL and the value one consistent reading — and streams the
// payloads into the file. It returns the payload bytes read.
func (d *dumper) round(db int, keys [][]byte) (int64, error) {
	w := d.c.Writer()
	for _, k := range keys {
		w.WriteCommandStrings("MULTI")
		w.WriteCommand([]byte("PTTL"), k)
		w.WriteCommand([]byte("DUMP"), k)
		w.WriteCommandStrings("EXEC")
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("source %s: %w", d.c.Addr(), err)
	}
	var total int64
	for _, k := range keys {
		n, err := d.key(k)
		if err != nil {
			return 0, fmt.Errorf("source %s: dump %q in db %d: %w", d.c.Addr(), k, db, err)
		}
		if n < 0 {
			d.gone = append(d.gone, Key{DB: db, Key: k})
			continue
		}
		total += n
	}
	return total, nil
}

// key reads the replies for one key and writes its record; -1 when the
// source does not hold the key.
func (d *dumper) key(key []byte) (int64, error) {
	r := d.c.Reader()
	for range 3 { // MULTI's OK, then QUEUED twice
		v, err := r.ReadValue()
		if err != nil {
			return 0, err
		}
		if err := v.Err(); err != nil {
			return 0, err
		}
	}
	// EXEC's array is read by hand: its second element must be streamed
	// with ReadBulkTo, not read whole.
	line, err := r.ReadLine()
	if err != nil {
		return 0, err
	}
	switch {
	case len(line) > 0 && line[0] == '-':
		return 0, &resp.RedisError{Msg: string(line[1:])}
	case string(line) != "*2":
		return 0, fmt.Errorf("%w: EXEC replied %q, not an array of two replies", resp.ErrProtocol, clip(line))
	}
	ttl, err := r.ReadValue()
	if err != nil {
		return 0, err
	}
	if err := ttl.Err(); err != nil {
		return 0, err
	}
	if ttl.Kind != resp.Integer {
		return 0, fmt.Errorf("%w: PTTL replied %s", resp.ErrProtocol, ttl.Kind)
	}
	var expireMs int64
	if ttl.Int >= 0 {
		// Made absolute now: the target keeps the deadline, not the span.
		expireMs = time.Now().UnixMilli() + ttl.Int
	}
	rec := d.file.record(key, expireMs)
	n, err := r.ReadBulkTo(rec)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return -1, nil
	}
	return n, rec.finish()
}

func clip(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// del deletes keys from the target, each in its own database, and counts
// the ones the target held.
func del(ctx context.Context, target dialer.Options, keys []Key) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	c, err := dialer.Dial(ctx, target)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	defer c.Close()
	on, err := cluster.Enabled(c)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	if !on {
		var deleted int64
		for _, g := range group(keys) {
			n, err := delIn(ctx, c, g.db, g.keys)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		return deleted, nil
	}
	// A cluster: each key on the master serving its slot (db 0 only).
	top, err := cluster.Load(c)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	byMaster := map[int][][]byte{}
	for _, k := range keys {
		if k.DB != 0 {
			return 0, fmt.Errorf("delete %q in db %d: a cluster has db 0 only", k.Key, k.DB)
		}
		m := top.Owner(cluster.Slot(k.Key))
		byMaster[m] = append(byMaster[m], k.Key)
	}
	var deleted int64
	for m, ks := range byMaster {
		if m < 0 {
			return deleted, fmt.Errorf("target: no master serves the slot of %q", ks[0])
		}
		mc, err := dialer.Dial(ctx, top.Options(target, m))
		if err != nil {
			return deleted, fmt.Errorf("target: %w", err)
		}
		n, err := delIn(ctx, mc, 0, ks)
		mc.Close()
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// delIn deletes keys of db on one server, pipelined, every reply checked.
func delIn(ctx context.Context, c *dialer.Conn, db int, keys [][]byte) (int64, error) {
	var deleted int64
	if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return deleted, fmt.Errorf("target: %w", err)
	}
	for batch := range slices.Chunk(keys, deleteBatch) {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		w, r := c.Writer(), c.Reader()
		for _, k := range batch {
			w.WriteCommand([]byte("DEL"), k)
		}
		if err := w.Flush(); err != nil {
			return deleted, fmt.Errorf("target %s: %w", c.Addr(), err)
		}
		for _, k := range batch {
			v, err := r.ReadValue()
			if err != nil {
				return deleted, fmt.Errorf("target %s: delete %q in db %d: %w", c.Addr(), k, db, err)
			}
			if err := v.Err(); err != nil {
				return deleted, fmt.Errorf("delete %q in db %d: %w", k, db, err)
			}
			if v.Kind == resp.Integer && v.Int == 1 {
				deleted++
			}
		}
	}
	return deleted, nil
}

// errorsOnly passes on only Error records.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h errorsOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(attrs)}
}

func (h errorsOnly) WithGroup(name string) slog.Handler {
	return errorsOnly{h.Handler.WithGroup(name)}
}
