package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/keyname"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/rewrite"
	"github.com/resync/resync/internal/writer"
)

// Rewrite modes: when a key is written as plain commands rather than
// RESTORE of its payload.
const (
	RewriteAuto   = "auto"   // when the target cannot load the payload's RDB version, or the key is big
	RewriteAlways = "always" // every key (slower; tests use it to exercise the path)
)

// Defaults for big keys: past either bound a key is written in chunks.
const (
	DefaultBigKeyBytes    = 8 << 20
	DefaultBigKeyElements = 1_000_000
)

// LoadCounts are what loading a snapshot did, for status and reports.
type LoadCounts struct {
	Keys      atomic.Int64 // keys written
	Filtered  atomic.Int64 // keys left out by the selection and filters (reserved keys included)
	Empty     atomic.Int64 // empty collections, which Redis cannot hold
	Rewritten atomic.Int64 // keys written as commands because the target cannot load their payload (or --rewrite always)
	Big       atomic.Int64 // keys written in chunks because they are big
	Dropped   atomic.Int64 // keys, or parts of keys, the target cannot hold, dropped (--drop-unsupported)
	Bytes     atomic.Int64 // payload and argument bytes sent
}

// loader writes the keys of an RDB snapshot to one target: RESTORE of the
// raw payload where the target loads it, plain commands (chunked) where
// it cannot or the key is big.
type loader struct {
	w        sink
	filter   *filter.Filter
	target   redisproc.Version
	always   bool
	bigBytes int
	bigElems int
	drop     bool
	keys     keyname.Style
	log      *slog.Logger
	counts   *LoadCounts

	payload []byte
	scratch []byte    // a string decoded (integer, LZF)
	args    [5][]byte // a SET's arguments, reused: the writer copies them
	num     []byte
	db      int // the target db selected on the writer's connection
}

// droppedWarnings bounds the warnings for dropped keys; the count goes on.
const droppedWarnings = 20

// load writes every selected key of d, then the functions and scripts it
// holds. It does not wait for the target's confirmation (the caller
// syncs the writer).
func (l *loader) load(ctx context.Context, d *rdb.Decoder) error {
	l.db = -1
	loads := rdb.LoadsVersion(l.target.Major, l.target.Minor)
	rewriteAll := l.always || d.Version() > loads
	if rewriteAll && !l.always {
		l.log.Warn("the target cannot load this source's RDB version: keys are rewritten as commands (slower)",
			"rdb_version", d.Version(), "target_version", l.target.String(), "target_loads", loads)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		tdb, ok := l.filter.DB(rec.DB)
		if !ok || !l.filter.Key(rec.Key) {
			l.counts.Filtered.Add(1)
			continue
		}
		if tdb != l.db {
			if err := l.w.Write(writer.Op{Args: [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(tdb))}}); err != nil {
				return err
			}
			l.db = tdb
		}
		if rewriteAll {
			err = l.rewriteKey(d, rec)
		} else {
			err = l.restoreKey(d, rec)
		}
		if err != nil {
			return err
		}
	}
	for _, f := range d.Functions() {
		if !l.filter.Command([]byte("FUNCTION")) {
			break
		}
		if err := l.w.Write(writer.Op{Args: [][]byte{[]byte("FUNCTION"), []byte("LOAD"), []byte("REPLACE"), []byte(f.Code)}}); err != nil {
			return err
		}
	}
	for _, a := range d.Aux() {
		if a.Key == "lua" && l.filter.Command([]byte("SCRIPT")) {
			if err := l.w.Write(writer.Op{Args: [][]byte{[]byte("SCRIPT"), []byte("LOAD"), []byte(a.Value)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreKey writes a key with RESTORE when its payload is small, and as
// chunked commands when it turns out big: the value is never held whole.
func (l *loader) restoreKey(d *rdb.Decoder, rec *rdb.Record) error {
	var k *rewrite.Key
	var started bool
	var startErr error
	raw, err := d.RawOrElements(l.bigBytes, l.bigElems, func(e *rdb.Element) error {
		if !started {
			started = true
			if k, startErr = l.startRewrite(rec); startErr != nil {
				return startErr
			}
		}
		if k == nil {
			return nil // dropped
		}
		return k.Add(e)
	})
	if err != nil {
		if startErr != nil {
			return startErr
		}
		return fmt.Errorf("snapshot: %w", err)
	}
	if raw == nil {
		if k == nil {
			return nil // dropped as unsupported, or no elements
		}
		if err := l.finish(k, rec); err != nil {
			return err
		}
		l.counts.Big.Add(1)
		return nil
	}
	if empty, err := rdb.IsEmpty(raw); err != nil || empty {
		if err != nil {
			return fmt.Errorf("snapshot: key %s: %w", l.keys.Quote(rec.Key), err)
		}
		l.counts.Empty.Add(1)
		return nil
	}
	if rec.Type == rdb.TypeString && rec.Idle < 0 && rec.Freq < 0 && (rec.ExpireMs == 0 || l.target.AtLeast(6, 2)) {
		return l.setString(rec, raw)
	}
	l.payload = dumpPayload(l.payload[:0], raw, d.Version())
	for _, op := range restoreOps(rec, l.payload, l.target) {
		if err := l.w.Write(op); err != nil {
			return err
		}
	}
	l.counts.Bytes.Add(int64(len(l.payload) + len(rec.Key)))
	l.counts.Keys.Add(1)
	return nil
}

// setString writes a string key with SET (PXAT for its expiry): for the
// target, less work than RESTORE, which checks the payload's CRC-64 and
// decodes it (4.3 s of CPU against 5.1 s for the bench's 2.8M keys, 2M
// of them strings); for resync, no checksum to compute. RESTORE stays for
// a key with LRU or LFU hints, which SET cannot carry, and for an expiry
// on a target before 6.2 (no PXAT).
func (l *loader) setString(rec *rdb.Record, raw []byte) error {
	if l.scratch == nil {
		l.scratch = make([]byte, 0, 64<<10)
	}
	v, err := rdb.StringValue(raw, l.scratch)
	if err != nil {
		return fmt.Errorf("snapshot: key %s: %w", l.keys.Quote(rec.Key), err)
	}
	args := append(l.args[:0], setName, rec.Key, v)
	if rec.ExpireMs != 0 {
		l.num = strconv.AppendInt(l.num[:0], rec.ExpireMs, 10)
		args = append(args, pxatName, l.num)
	}
	if err := l.w.Write(writer.Op{Args: args, Key: rec.Key}); err != nil {
		return err
	}
	l.counts.Bytes.Add(int64(len(v) + len(rec.Key)))
	l.counts.Keys.Add(1)
	return nil
}

var setName, pxatName = []byte("SET"), []byte("PXAT")

// rewriteKey writes a key as plain commands.
func (l *loader) rewriteKey(d *rdb.Decoder, rec *rdb.Record) error {
	k, err := l.startRewrite(rec)
	if err != nil {
		return err
	}
	if k == nil {
		return nil
	}
	if _, err := d.ReadValue(0, k.Add); err != nil {
		var ue *rewrite.UnsupportedError
		if errors.As(err, &ue) {
			return ue // it names the key; the file offset adds nothing
		}
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := l.finish(k, rec); err != nil {
		return err
	}
	l.counts.Rewritten.Add(1)
	return nil
}

// startRewrite begins writing rec as commands; nil when the target cannot
// hold the key at all and it is dropped.
func (l *loader) startRewrite(rec *rdb.Record) (*rewrite.Key, error) {
	emit := func(args [][]byte) error {
		for _, a := range args {
			l.counts.Bytes.Add(int64(len(a)))
		}
		return l.w.Write(writer.Op{Args: args, Key: rec.Key})
	}
	k, err := rewrite.Start(rec, rewrite.Options{Target: l.target, DropUnsupported: l.drop, Keys: l.keys}, emit)
	if err != nil {
		return nil, err
	}
	if k.Skip() {
		l.dropped(rec, k.Dropped())
		return nil, nil
	}
	return k, nil
}

func (l *loader) finish(k *rewrite.Key, rec *rdb.Record) error {
	if err := k.Finish(); err != nil {
		return err
	}
	if what := k.Dropped(); what != "" {
		l.dropped(rec, what)
	}
	l.counts.Keys.Add(1)
	return nil
}

func (l *loader) dropped(rec *rdb.Record, what string) {
	if n := l.counts.Dropped.Add(1); n <= droppedWarnings {
		l.log.Warn("dropped what the target cannot hold (--drop-unsupported)", "db", rec.DB, "key", l.keys.Quote(rec.Key), "dropped", what)
		if n == droppedWarnings {
			l.log.Warn("further drops are counted, not logged")
		}
	}
}
