// Package rewrite writes one key of an RDB snapshot as plain commands
// instead of RESTORE: for a target whose RDB version cannot load the
// source's payload (the payload's version is never faked), and for big
// keys, which are written in chunks so that no command is huge and memory
// does not grow with the key.
//
// A key is replaced, never appended to: DEL comes first. Then, by kind:
//
//   - string: SET, or SET of a first piece and APPEND of the others when
//     the value is bigger than Options.ChunkBytes;
//   - list: RPUSH; set: SADD; zset: ZADD score member ...;
//   - hash: HSET with several pairs (HMSET before 4.0), and HPEXPIREAT for
//     the fields with a TTL (7.4+);
//   - stream (5.0+): XADD per entry, XSETID with the last ID (and, on 7.0+,
//     ENTRIESADDED and MAXDELETEDID), then per consumer group XGROUP CREATE
//     (ENTRIESREAD on 7.0+), its consumers, and its pending entries by
//     XCLAIM ... FORCE JUSTID;
//
// and last PEXPIREAT when the key has an expiry, so TTLs stay absolute.
//
// What the commands cannot reproduce:
//
//   - the LRU idle time and LFU counter of a key (only RESTORE sets them);
//   - a consumer's seen time and active time: the target sets them to the
//     time of the rewrite (XGROUP CREATECONSUMER, XCLAIM);
//   - a pending entry whose message was deleted from the stream: XCLAIM
//     FORCE creates a pending entry only for a message the stream holds,
//     on every version, and ignores the others without an error;
//   - on a target before 6.2, consumers are created by an XREADGROUP of
//     their own (empty) history, which Redis before 6.2 does not propagate
//     to the target's replicas;
//   - a group whose entries-read is unknown (-1) stays unknown: a target
//     loading the same stream from an RDB of Redis before 7.0 would
//     estimate it instead.
package rewrite

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/resync/resync/internal/keyname"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
)

// Defaults of Options.
const (
	DefaultChunkElements = 1000
	DefaultChunkBytes    = 1 << 20
)

// Options say how to rewrite keys.
type Options struct {
	// Target is the target's version: which commands and options exist.
	// The zero value stands for the oldest (no streams, HMSET).
	Target redisproc.Version
	// ChunkElements is how many elements one command carries at most
	// (default 1000).
	ChunkElements int
	// ChunkBytes is how many argument bytes one command carries at most
	// (default 1 MiB): a command is sent before an element would take it
	// past this. An element bigger than this goes alone in its command;
	// a string value bigger than this is written in pieces of this size.
	ChunkBytes int
	// DropUnsupported leaves out what the target cannot hold instead of
	// failing with an UnsupportedError; Key.Dropped says what.
	DropUnsupported bool
	// Keys says how errors show key names.
	Keys keyname.Style
}

// UnsupportedError is a key, or part of one, that the target cannot hold
// when written as commands.
type UnsupportedError struct {
	Key    []byte
	What   string // what cannot be written, and why
	Target redisproc.Version
	// Style says how Error shows Key.
	Style keyname.Style
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("key %s: cannot rewrite %s for target Redis %s; --drop-unsupported leaves it out (and reports what was dropped)",
		e.Style.Quote(e.Key), e.What, e.Target)
}

// Key rewrites one key as commands handed to emit. emit serialises the
// arguments before it returns, so they may be reused after.
type Key struct {
	key      []byte
	kind     rdb.Kind
	expireMs int64
	o        Options
	emit     func(args [][]byte) error

	skip    bool
	done    bool
	err     error // sticky: what failed first
	dropped string

	// The chunk being filled (list, set, zset, hash).
	chunk       cmdBuf
	elems       int
	ttls        []fieldTTL // hash fields of the chunk that have a TTL
	fields      [][]byte   // reused: the fields of one HPEXPIREAT
	droppedTTLs int

	cmd cmdBuf // a command sent at once

	// The value seen so far, to check its shape.
	gotString  bool
	entries    uint64 // stream entries written
	gotMeta    bool
	wantGroups uint64
	groups     uint64
}

// fieldTTL is a hash field of the chunk with an expiry: arg is the index
// of the field in the chunk's arguments.
type fieldTTL struct {
	arg int
	ms  int64
}

// Start begins the rewrite of the key rec and emits its DEL. A key the
// target cannot hold at all (a module value, a stream before 5.0) is an
// *UnsupportedError, or with o.DropUnsupported a Key whose Skip is true
// and which emits nothing.
func Start(rec *rdb.Record, o Options, emit func(args [][]byte) error) (*Key, error) {
	if rec == nil {
		return nil, errors.New("rewrite: no record")
	}
	if emit == nil {
		return nil, fmt.Errorf("rewrite key %s: no emit function", o.Keys.Quote(rec.Key))
	}
	if o.ChunkElements <= 0 {
		o.ChunkElements = DefaultChunkElements
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	k := &Key{key: append([]byte(nil), rec.Key...), kind: rec.Kind, expireMs: rec.ExpireMs, o: o, emit: emit}
	var what, drop string
	switch rec.Kind {
	case rdb.KindString, rdb.KindList, rdb.KindSet, rdb.KindZSet, rdb.KindHash:
	case rdb.KindStream:
		if !o.Target.AtLeast(5, 0) {
			what = "a stream (streams came in Redis 5.0)"
			drop = fmt.Sprintf("the whole key: a stream (target %s has no streams)", o.Target)
		}
	case rdb.KindModule:
		what = "a module value (no command writes one: only RESTORE of its payload does)"
		drop = "the whole key: a module value (it cannot be written as commands)"
	default:
		return nil, fmt.Errorf("rewrite key %s: value of unknown kind (RDB type %d)", o.Keys.Quote(rec.Key), rec.Type)
	}
	if what != "" {
		if !o.DropUnsupported {
			return nil, &UnsupportedError{Key: k.key, What: what, Target: o.Target, Style: o.Keys}
		}
		k.skip, k.dropped = true, drop
		return k, nil
	}
	k.cmd.addString("DEL")
	k.cmd.add(k.key)
	if err := k.send(k.cmd.build()); err != nil {
		return nil, err
	}
	return k, nil
}

// Skip reports whether the whole key is dropped: nothing was emitted,
// and Add and Finish do nothing.
func (k *Key) Skip() bool { return k.skip }

// Dropped says what was left out of this key for the target's sake, ""
// when nothing was.
func (k *Key) Dropped() string {
	if k.skip || k.droppedTTLs == 0 {
		return k.dropped
	}
	s := "s"
	if k.droppedTTLs == 1 {
		s = ""
	}
	return fmt.Sprintf("field TTLs of %d field%s (target %s has no hash field expiry)", k.droppedTTLs, s, k.o.Target)
}

// Add writes (or buffers, up to a chunk) one element of the value. e is
// not kept after Add returns. A hash field with a TTL that the target
// cannot hold is an *UnsupportedError here, when the field comes (the
// type byte does not tell: a hash may keep the encoding of field TTLs
// after the last one is gone); the chunks before it have been sent, and
// the caller, which stops, leaves the key partly written.
func (k *Key) Add(e *rdb.Element) error {
	if k.skip {
		return nil
	}
	if k.err != nil {
		return k.err
	}
	if k.done {
		return k.fail(fmt.Errorf("rewrite key %s: element after Finish", k.o.Keys.Quote(k.key)))
	}
	if e == nil {
		return k.fail(fmt.Errorf("rewrite key %s: nil element", k.o.Keys.Quote(k.key)))
	}
	var err error
	switch k.kind {
	case rdb.KindString:
		err = k.addString(e.Member)
	case rdb.KindList:
		err = k.element("RPUSH", e.Member, nil, 0)
	case rdb.KindSet:
		err = k.element("SADD", e.Member, nil, 0)
	case rdb.KindZSet:
		err = k.addZSet(e)
	case rdb.KindHash:
		err = k.addHash(e)
	case rdb.KindStream:
		err = k.addStream(e)
	}
	return k.fail(err)
}

// Finish sends what is buffered and the key's expiry.
func (k *Key) Finish() error {
	if k.skip {
		return nil
	}
	if k.err != nil {
		return k.err
	}
	if k.done {
		return k.fail(fmt.Errorf("rewrite key %s: Finish called twice", k.o.Keys.Quote(k.key)))
	}
	k.done = true
	switch {
	case k.kind == rdb.KindString && !k.gotString:
		return k.fail(fmt.Errorf("rewrite key %s: string without a value", k.o.Keys.Quote(k.key)))
	case k.kind == rdb.KindStream && !k.gotMeta:
		return k.fail(fmt.Errorf("rewrite key %s: stream ended before its metadata", k.o.Keys.Quote(k.key)))
	case k.kind == rdb.KindStream && k.groups != k.wantGroups:
		return k.fail(fmt.Errorf("rewrite key %s: stream has %d consumer groups, its metadata says %d", k.o.Keys.Quote(k.key), k.groups, k.wantGroups))
	}
	if err := k.flush(); err != nil {
		return k.fail(err)
	}
	if k.expireMs != 0 {
		k.cmd.reset()
		k.cmd.addString("PEXPIREAT")
		k.cmd.add(k.key)
		k.cmd.addInt(k.expireMs)
		return k.fail(k.send(k.cmd.build()))
	}
	return nil
}

// fail makes err sticky: after a failure the key's state on the target is
// unknown, and nothing more must be sent for it.
func (k *Key) fail(err error) error {
	if err != nil && k.err == nil {
		k.err = err
	}
	return err
}

// send hands one command to emit, naming the key in its error.
func (k *Key) send(args [][]byte) error {
	if err := k.emit(args); err != nil {
		return fmt.Errorf("rewrite key %s: %s: %w", k.o.Keys.Quote(k.key), args[0], err)
	}
	return nil
}

func (k *Key) addString(v []byte) error {
	if k.gotString {
		return fmt.Errorf("rewrite key %s: a string has one value, got a second", k.o.Keys.Quote(k.key))
	}
	k.gotString = true
	name := "SET"
	for first := true; first || len(v) > 0; first = false {
		piece := v[:min(len(v), k.o.ChunkBytes)]
		v = v[len(piece):]
		k.cmd.reset()
		k.cmd.addString(name)
		k.cmd.add(k.key)
		if err := k.send(k.cmd.build(piece)); err != nil {
			return err
		}
		name = "APPEND"
	}
	return nil
}

func (k *Key) addZSet(e *rdb.Element) error {
	if math.IsNaN(e.Score) {
		return fmt.Errorf("rewrite key %s: member %s has score NaN, which ZADD refuses", k.o.Keys.Quote(k.key), k.o.Keys.Quote(e.Member))
	}
	var num [32]byte
	return k.element("ZADD", appendScore(num[:0], e.Score), e.Member, 0)
}

func (k *Key) addHash(e *rdb.Element) error {
	name := "HSET"
	if !k.o.Target.AtLeast(4, 0) {
		name = "HMSET" // HSET takes one pair only before 4.0
	}
	ttl := e.ExpireMs
	switch {
	case ttl < 0:
		return fmt.Errorf("rewrite key %s: field %s has a negative expiry %d", k.o.Keys.Quote(k.key), k.o.Keys.Quote(e.Member), ttl)
	case ttl > 0 && !k.o.Target.AtLeast(7, 4):
		if !k.o.DropUnsupported {
			return &UnsupportedError{Key: k.key, What: "hash field TTLs (hash field expiry came in Redis 7.4)", Target: k.o.Target, Style: k.o.Keys}
		}
		k.droppedTTLs++
		ttl = 0
	}
	return k.element(name, e.Member, e.Value, ttl)
}

// element adds one element (a, or the pair a b for a zset or hash) to the
// chunk, sending the chunk first when the element would take it past
// the limits. An element too big for any chunk is sent alone straight
// from the decoder's bytes, never copied. ttl is a hash field's expiry.
func (k *Key) element(name string, a, b []byte, ttl int64) error {
	pair := k.kind == rdb.KindZSet || k.kind == rdb.KindHash
	size := len(a) + len(b)
	if k.elems > 0 && (k.elems >= k.o.ChunkElements || k.chunk.size()+size > k.o.ChunkBytes) {
		if err := k.flush(); err != nil {
			return err
		}
	}
	if k.elems == 0 {
		k.chunk.reset()
		k.chunk.addString(name)
		k.chunk.add(k.key)
		if k.chunk.size()+size > k.o.ChunkBytes {
			args := k.chunk.build(a)
			if pair {
				args = k.chunk.build(a, b)
			}
			if err := k.send(args); err != nil {
				return err
			}
			if ttl > 0 {
				return k.expireFields(ttl, append(k.fields[:0], a))
			}
			return nil
		}
	}
	k.chunk.add(a)
	if pair {
		k.chunk.add(b)
	}
	if ttl > 0 {
		k.ttls = append(k.ttls, fieldTTL{arg: len(k.chunk.ends) - 2, ms: ttl})
	}
	k.elems++
	return nil
}

// flush sends the chunk, then the TTLs of its hash fields: one
// HPEXPIREAT per expiry time the fields share.
func (k *Key) flush() error {
	if k.elems == 0 {
		return nil
	}
	args := k.chunk.build()
	if err := k.send(args); err != nil {
		return err
	}
	slices.SortStableFunc(k.ttls, func(x, y fieldTTL) int { return cmp.Compare(x.ms, y.ms) })
	for i := 0; i < len(k.ttls); {
		j, fields := i, k.fields[:0]
		for ; j < len(k.ttls) && k.ttls[j].ms == k.ttls[i].ms; j++ {
			fields = append(fields, args[k.ttls[j].arg])
		}
		if err := k.expireFields(k.ttls[i].ms, fields); err != nil {
			return err
		}
		i = j
	}
	k.chunk.reset()
	k.elems, k.ttls = 0, k.ttls[:0]
	return nil
}

// expireFields sends HPEXPIREAT key ms FIELDS n field....
func (k *Key) expireFields(ms int64, fields [][]byte) error {
	k.fields = fields[:0] // keep the capacity
	k.cmd.reset()
	k.cmd.addString("HPEXPIREAT")
	k.cmd.add(k.key)
	k.cmd.addInt(ms)
	k.cmd.addString("FIELDS")
	k.cmd.addInt(int64(len(fields)))
	return k.send(k.cmd.build(fields...))
}
