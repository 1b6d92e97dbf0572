package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/rewrite"
	"github.com/resync/resync/internal/writer"
)

// sizes estimates each key item's memory on the source (MEMORY USAGE,
// pipelined; 0 for the other items, a key gone or redirected). A source
// that cannot say (before 4.0, or MEMORY denied) is not asked again: its
// keys are read whole, with a warning.
func (c *scanCopier) sizes(items []scanItem) ([]int64, error) {
	sizes := make([]int64, len(items))
	if !c.sized {
		return sizes, nil
	}
	out := c.src.Writer()
	var asked []int // the items asked, in order
	var selects []bool
	for i, it := range items {
		if it.end || it.hb {
			continue
		}
		sel := it.db != c.srcDB
		if sel {
			out.WriteCommandStrings("SELECT", strconv.Itoa(it.db))
			c.srcDB = it.db
		}
		out.WriteCommandStrings("MEMORY", "USAGE", it.key)
		asked, selects = append(asked, i), append(selects, sel)
	}
	if len(asked) == 0 {
		return sizes, nil
	}
	if err := out.Flush(); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var refused, failed error
	for n, i := range asked {
		if selects[n] {
			if _, err := c.src.Receive("SELECT"); err != nil {
				return nil, err
			}
		}
		v, err := c.src.Receive("MEMORY USAGE")
		var re *resp.RedisError
		switch {
		case err == nil:
			sizes[i] = max(v.Int, 0)
		case !errors.As(err, &re):
			return nil, err
		case redirect(re):
			// Its slot moved: dumpRun follows it.
		case re.Code() == "NOPERM" || strings.Contains(strings.ToLower(re.Msg), "unknown"):
			refused = err
		default:
			failed = err // read the other replies first
		}
	}
	if failed != nil {
		return nil, failed
	}
	if refused != nil {
		c.sized = false
		c.t.log.Warn("scan mode: the source does not tell key sizes (MEMORY USAGE); every key is read whole with DUMP, big ones too", "err", refused)
		clear(sizes)
	}
	return sizes, nil
}

// redirect reports a cluster's MOVED or ASK: the key is served by
// another master now.
func redirect(re *resp.RedisError) bool {
	return re.Code() == "MOVED" || re.Code() == "ASK"
}

// bigChunkBytes is about how much of a big key one read takes, at
// most: a quarter of BigKeyBytes when that is less.
const bigChunkBytes = 1 << 20

// Why copyBig stops before the end of a key.
var (
	// errChanged: the key's type changed under the read (WRONGTYPE); the
	// change is notified and the key copied again.
	errChanged = errors.New("the key changed while read")
	// errNoPieces: the source refuses a command that reads in pieces
	// (NOPERM): the key goes whole by DUMP.
	errNoPieces = errors.New("the source refuses reading the key in pieces")
)

// redirectError is a read answered MOVED or ASK.
type redirectError struct{ re *resp.RedisError }

func (e *redirectError) Error() string { return e.re.Error() }

// copyBig copies a key past BigKeyBytes in pieces: a string by GETRANGE
// written as SET then APPEND; a list, hash, set or sorted set by LRANGE
// or cursor (HSCAN, SSCAN, ZSCAN; a hash's field TTLs by HPEXPIRETIME on
// 7.4+) written through the same rewrite as the full sync's big keys
// (DEL, then RPUSH, HSET or HMSET, SADD, ZADD, field TTLs, the expiry).
// The pieces are not one snapshot of the key: a write to it meanwhile is
// notified, and the key copied again after. A stream, a module value,
// a key gone, or a source that refuses the piecewise reads goes by DUMP;
// a key whose slot moved is read where it went. size is the key's
// estimated memory.
func (c *scanCopier) copyBig(ctx context.Context, it scanItem, size int64, w sink) error {
	err := c.pieces(ctx, it, size, w)
	var rd *redirectError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rd):
		return c.redirected(ctx, it, rd.re, w)
	case errors.Is(err, errChanged):
		c.t.log.Debug("scan mode: a big key changed type while read; it is copied again when notified", "key", c.t.keys().QuoteString(it.key))
		return nil
	case errors.Is(err, errNoPieces):
		if !c.warnedPieces {
			c.warnedPieces = true
			c.t.log.Warn("scan mode: the source refuses reading big keys in pieces; they are read whole with DUMP", "err", err)
		}
		_, _, err := c.dumpRun(ctx, []scanItem{it}, w)
		return err
	}
	return err
}

// pieces is copyBig's work; its errors say why it stopped.
func (c *scanCopier) pieces(ctx context.Context, it scanItem, size int64, w sink) error {
	t := c.t
	read := func(args ...string) (resp.Value, error) {
		v, err := c.src.Do(args...)
		var re *resp.RedisError
		switch {
		case err == nil:
			return v, nil
		case !errors.As(err, &re):
		case redirect(re):
			return v, &redirectError{re}
		case re.Code() == "WRONGTYPE":
			return v, errChanged
		case re.Code() == "NOPERM":
			return v, fmt.Errorf("%w: %w", errNoPieces, err)
		}
		return v, fmt.Errorf("source: %s: %w", t.keys().QuoteString(it.key), err)
	}
	if it.db != c.srcDB {
		if _, err := read("SELECT", strconv.Itoa(it.db)); err != nil {
			return err
		}
		c.srcDB = it.db
	}
	typ, err := read("TYPE", it.key)
	if err != nil {
		return err
	}
	kind, ok := map[string]rdb.Kind{"string": rdb.KindString, "list": rdb.KindList, "hash": rdb.KindHash, "set": rdb.KindSet, "zset": rdb.KindZSet}[typ.Text()]
	length := map[rdb.Kind]string{rdb.KindString: "STRLEN", rdb.KindList: "LLEN", rdb.KindHash: "HLEN", rdb.KindSet: "SCARD", rdb.KindZSet: "ZCARD"}[kind]
	if !ok {
		// A stream (its groups and IDs), a module value, or gone.
		_, _, err := c.dumpRun(ctx, []scanItem{it}, w)
		return err
	}
	ttlCmd := "PTTL"
	if c.pexpiretime {
		ttlCmd = "PEXPIRETIME"
	}
	ttl, err := read(ttlCmd, it.key)
	if err != nil {
		return err
	}
	n, err := read(length, it.key)
	if err != nil {
		return err
	}
	if ttl.Int == -2 || n.Int == 0 {
		// Gone, or an empty string (tiny, whatever MEMORY USAGE said).
		_, _, err := c.dumpRun(ctx, []scanItem{it}, w)
		return err
	}
	var expireMs int64
	switch {
	case ttl.Int >= 0 && c.pexpiretime:
		expireMs = ttl.Int
	case ttl.Int >= 0:
		expireMs = time.Now().UnixMilli() + ttl.Int
	}
	if err := c.selectTarget(it.db, w); err != nil {
		return err
	}
	key := []byte(it.key)
	var written int64
	emit := func(args [][]byte) error {
		for _, a := range args {
			written += int64(len(a))
		}
		return w.Write(writer.Op{Args: args, Key: key})
	}
	chunk := min(bigChunkBytes, max(int64(t.cfg.BigKeyBytes)/4, 4096))
	if kind == rdb.KindString {
		for off := int64(0); off < n.Int; off += chunk {
			v, err := read("GETRANGE", it.key, strconv.FormatInt(off, 10), strconv.FormatInt(min(off+chunk, n.Int)-1, 10))
			if err != nil {
				return err
			}
			name := "APPEND"
			if off == 0 {
				name = "SET"
			}
			if err := emit([][]byte{[]byte(name), key, v.Str}); err != nil {
				return err
			}
		}
		if expireMs != 0 {
			if err := emit([][]byte{[]byte("PEXPIREAT"), key, []byte(strconv.FormatInt(expireMs, 10))}); err != nil {
				return err
			}
		}
		return c.counted(written)
	}
	rk, err := rewrite.Start(&rdb.Record{Key: key, Kind: kind, ExpireMs: expireMs},
		rewrite.Options{Target: c.target, DropUnsupported: t.cfg.DropUnsupported, Keys: t.keys(), ChunkBytes: int(chunk)}, emit)
	if err != nil {
		return err
	}
	// Elements per read: about chunk bytes of them, by the average the
	// reads so far show (MEMORY USAGE samples a few elements only).
	per := int64(100)
	if avg := size / max(n.Int, 1); avg > 0 {
		per = min(max(chunk/avg, 1), 1000)
	}
	page := func(elems []resp.Value) {
		var bytes int64
		for _, e := range elems {
			bytes += int64(len(e.Str))
		}
		if len(elems) > 0 && bytes > 0 {
			per = min(max(chunk*int64(len(elems))/bytes, 1), 10000)
		}
	}
	fieldTTLs := kind == rdb.KindHash && t.sourceVersion.AtLeast(7, 4)
	if kind == rdb.KindList {
		// Up to the length read: a list pushed meanwhile is notified and
		// copied again, rather than chased.
		for i := int64(0); i < n.Int; {
			v, err := read("LRANGE", it.key, strconv.FormatInt(i, 10), strconv.FormatInt(min(i+per, n.Int)-1, 10))
			if err != nil {
				return err
			}
			if len(v.Elems) == 0 {
				break
			}
			i += int64(len(v.Elems)) // per changes with each page
			for _, e := range v.Elems {
				if err := rk.Add(&rdb.Element{Member: e.Str}); err != nil {
					return err
				}
			}
			page(v.Elems)
		}
	} else {
		scan := map[rdb.Kind]string{rdb.KindHash: "HSCAN", rdb.KindSet: "SSCAN", rdb.KindZSet: "ZSCAN"}[kind]
		for cursor := "0"; ; {
			v, err := read(scan, it.key, cursor, "COUNT", strconv.FormatInt(per, 10))
			if err != nil {
				return err
			}
			if len(v.Elems) != 2 {
				return fmt.Errorf("source: %s %s: unexpected reply", scan, t.keys().QuoteString(it.key))
			}
			elems := v.Elems[1].Elems
			if kind != rdb.KindSet && len(elems)%2 != 0 {
				return fmt.Errorf("source: %s %s: an odd reply", scan, t.keys().QuoteString(it.key))
			}
			var ttls []resp.Value
			if fieldTTLs && len(elems) > 0 {
				args := []string{"HPEXPIRETIME", it.key, "FIELDS", strconv.Itoa(len(elems) / 2)}
				for j := 0; j < len(elems); j += 2 {
					args = append(args, elems[j].Text())
				}
				r, err := read(args...)
				if err != nil {
					return err
				}
				if len(r.Elems) != len(elems)/2 {
					return fmt.Errorf("source: HPEXPIRETIME %s: %d replies for %d fields", t.keys().QuoteString(it.key), len(r.Elems), len(elems)/2)
				}
				ttls = r.Elems
			}
			for j := 0; j < len(elems); j++ {
				e := rdb.Element{Member: elems[j].Str}
				switch kind {
				case rdb.KindHash:
					e.Value = elems[j+1].Str
					if ttls != nil {
						if ms := ttls[j/2].Int; ms >= 0 {
							e.ExpireMs = ms
						} else if ms == -2 {
							j++
							continue // the field expired between the reads
						}
					}
					j++
				case rdb.KindZSet:
					score, err := strconv.ParseFloat(elems[j+1].Text(), 64)
					if err != nil {
						return fmt.Errorf("source: ZSCAN %s: score %q: %w", t.keys().QuoteString(it.key), elems[j+1].Text(), err)
					}
					e.Score = score
					j++
				}
				if err := rk.Add(&e); err != nil {
					return err
				}
			}
			page(elems)
			if cursor = v.Elems[0].Text(); cursor == "0" {
				break
			}
		}
	}
	if err := rk.Finish(); err != nil {
		return err
	}
	if what := rk.Dropped(); what != "" {
		if n := t.counts.Dropped.Add(1); n <= droppedWarnings {
			t.log.Warn("dropped what the target cannot hold (--drop-unsupported)", "db", it.db, "key", t.keys().QuoteString(it.key), "dropped", what)
		}
	}
	return c.counted(written)
}

// counted counts a key copied in pieces.
func (c *scanCopier) counted(written int64) error {
	c.t.counts.Keys.Add(1)
	c.t.counts.Big.Add(1)
	c.t.counts.Bytes.Add(written)
	return nil
}

// redirected copies a key its master no longer serves from the master
// the redirect names (ASKING first for an ASK: the slot is moving): its
// value and expiry, or its deletion when it is not there either. A
// deletion during a slot's move notifies only the old master, so the key
// must be read where it went rather than left alone. The value is read
// whole (DUMP), big or not.
func (c *scanCopier) redirected(ctx context.Context, it scanItem, re *resp.RedisError, w sink) error {
	fields := strings.Fields(re.Msg)
	if len(fields) != 3 {
		return fmt.Errorf("source: %s: a redirect without an address: %w", c.t.keys().QuoteString(it.key), re)
	}
	addr := fields[2]
	conn := c.nodes[addr]
	if conn == nil {
		o := c.t.sourceOpts()
		o.Addr, o.DB = addr, 0
		var err error
		if conn, err = dialer.Dial(ctx, o); err != nil {
			return fmt.Errorf("source master %s: %w", addr, err)
		}
		if c.nodes == nil {
			c.nodes = map[string]*dialer.Conn{}
		}
		c.nodes[addr] = conn
	}
	ttlCmd := "PTTL"
	if c.pexpiretime {
		ttlCmd = "PEXPIRETIME"
	}
	var replies [2]resp.Value
	for i, cmd := range []string{"DUMP", ttlCmd} {
		if re.Code() == "ASK" {
			if _, err := conn.Do("ASKING"); err != nil {
				return fmt.Errorf("source: %w", err)
			}
		}
		v, err := conn.Do(cmd, it.key)
		var again *resp.RedisError
		switch {
		case errors.As(err, &again) && redirect(again):
			// Moved again meanwhile: it is notified where it lands.
			c.t.log.Warn("scan mode: a key moved twice while read; it is copied when its new master notifies it", "key", c.t.keys().QuoteString(it.key), "err", err)
			return nil
		case err != nil:
			return fmt.Errorf("source master %s: %w", addr, err)
		}
		replies[i] = v
	}
	return c.write(ctx, it, replies[0], replies[1], w)
}

// close closes the connections to other masters.
func (c *scanCopier) close() {
	for _, conn := range c.nodes {
		conn.Close()
	}
}
