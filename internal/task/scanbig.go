package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/writer"
)

// sizes estimates each key item's memory on the source (MEMORY USAGE,
// pipelined; 0 for the other items, a key gone, or a source that will
// not say). A source that refuses MEMORY USAGE (before 4.0, or an ACL
// without it) is not asked again: its keys are read whole, with a
// warning.
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
	var refused error
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
		case re.Code() == "MOVED" || re.Code() == "ASK":
			// Its slot moved: dumpRun leaves it alone.
		default:
			refused = err
		}
	}
	if refused != nil {
		c.sized = false
		c.t.log.Warn("scan mode: the source does not tell key sizes (MEMORY USAGE); every key is read whole with DUMP, big ones too", "err", refused)
		clear(sizes)
	}
	return sizes, nil
}

// bigChunkBytes is about how much of a big key one read takes, at
// most: a quarter of BigKeyBytes when that is less.
const bigChunkBytes = 1 << 20

// copyBig copies a key past BigKeyBytes in pieces: its expiry first,
// then its content by ranges or cursor (GETRANGE, LRANGE, HSCAN, SSCAN,
// ZSCAN) written as they come (DEL, then SET/APPEND, RPUSH, HSET, SADD,
// ZADD), the expiry last. The pieces are not one snapshot of the key: a
// write to it meanwhile is notified, and the key is copied again after.
// A stream, a module value, or a key whose type is unknown here goes
// whole by DUMP. size is the key's estimated memory.
func (c *scanCopier) copyBig(ctx context.Context, it scanItem, size int64, w sink) error {
	t := c.t
	if it.db != c.srcDB {
		if _, err := c.src.Do("SELECT", strconv.Itoa(it.db)); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		c.srcDB = it.db
	}
	typ, err := c.src.Do("TYPE", it.key)
	if err != nil {
		return c.bigReadErr(it, err)
	}
	length := map[string]string{"string": "STRLEN", "list": "LLEN", "hash": "HLEN", "set": "SCARD", "zset": "ZCARD"}[typ.Text()]
	if length == "" {
		// A stream (its groups and IDs), a module value, or gone.
		_, _, err := c.dumpRun(ctx, []scanItem{it}, w)
		return err
	}
	ttlCmd := "PTTL"
	if c.pexpiretime {
		ttlCmd = "PEXPIRETIME"
	}
	ttl, err := c.src.Do(ttlCmd, it.key)
	if err != nil {
		return c.bigReadErr(it, err)
	}
	n, err := c.src.Do(length, it.key)
	if err != nil {
		return c.bigReadErr(it, err)
	}
	if err := c.selectTarget(it.db, w); err != nil {
		return err
	}
	key := []byte(it.key)
	if err := w.Write(writer.Op{Args: [][]byte{[]byte("DEL"), key}}); err != nil {
		return err
	}
	if ttl.Int == -2 || n.Int == 0 {
		return nil // gone
	}
	var expireMs int64
	switch {
	case ttl.Int >= 0 && c.pexpiretime:
		expireMs = ttl.Int
	case ttl.Int >= 0:
		expireMs = time.Now().UnixMilli() + ttl.Int
	}
	// Elements per read: about chunk bytes of them, by the key's
	// average element.
	chunk := min(bigChunkBytes, max(int64(t.cfg.BigKeyBytes)/4, 4096))
	per := int64(1000)
	if avg := size / max(n.Int, 1); avg > 0 {
		per = min(max(chunk/avg, 1), 10000)
	}
	var written int64
	op := func(args ...[]byte) error {
		for _, a := range args {
			written += int64(len(a))
		}
		return w.Write(writer.Op{Args: args, Key: key})
	}
	switch typ.Text() {
	case "string":
		for off := int64(0); off < n.Int; off += chunk {
			v, err := c.src.Do("GETRANGE", it.key, strconv.FormatInt(off, 10), strconv.FormatInt(min(off+chunk, n.Int)-1, 10))
			if err != nil {
				return c.bigReadErr(it, err)
			}
			cmd := "APPEND"
			if off == 0 {
				cmd = "SET"
			}
			if err := op([]byte(cmd), key, v.Str); err != nil {
				return err
			}
		}
	case "list":
		for i := int64(0); ; i += per {
			v, err := c.src.Do("LRANGE", it.key, strconv.FormatInt(i, 10), strconv.FormatInt(i+per-1, 10))
			if err != nil {
				return c.bigReadErr(it, err)
			}
			if len(v.Elems) == 0 {
				break
			}
			args := [][]byte{[]byte("RPUSH"), key}
			for _, e := range v.Elems {
				args = append(args, e.Str)
			}
			if err := op(args...); err != nil {
				return err
			}
		}
	default: // hash, set, zset: by cursor
		scan, add := "HSCAN", "HSET"
		switch typ.Text() {
		case "set":
			scan, add = "SSCAN", "SADD"
		case "zset":
			scan, add = "ZSCAN", "ZADD"
		}
		for cursor := "0"; ; {
			v, err := c.src.Do(scan, it.key, cursor, "COUNT", strconv.FormatInt(per, 10))
			if err != nil {
				return c.bigReadErr(it, err)
			}
			if len(v.Elems) != 2 {
				return fmt.Errorf("source: %s %s: unexpected reply", scan, t.keys().QuoteString(it.key))
			}
			if page := v.Elems[1].Elems; len(page) > 0 {
				args := [][]byte{[]byte(add), key}
				for j := 0; j < len(page); j++ {
					if typ.Text() == "zset" && j+1 < len(page) {
						// ZSCAN gives member, score; ZADD takes score, member.
						args = append(args, page[j+1].Str, page[j].Str)
						j++
						continue
					}
					args = append(args, page[j].Str)
				}
				if err := op(args...); err != nil {
					return err
				}
			}
			if cursor = v.Elems[0].Text(); cursor == "0" {
				break
			}
		}
	}
	if expireMs != 0 {
		if err := op([]byte("PEXPIREAT"), key, []byte(strconv.FormatInt(expireMs, 10))); err != nil {
			return err
		}
	}
	t.counts.Keys.Add(1)
	t.counts.Big.Add(1)
	t.counts.Bytes.Add(written)
	return nil
}

// bigReadErr handles a failed read of a big key: one its master no
// longer serves (MOVED, ASK) or whose type changed under the read
// (WRONGTYPE) is left as it is, since the change is notified and the key
// copied again; any other failure is the task's.
func (c *scanCopier) bigReadErr(it scanItem, err error) error {
	var re *resp.RedisError
	if errors.As(err, &re) && (re.Code() == "MOVED" || re.Code() == "ASK" || re.Code() == "WRONGTYPE") {
		c.t.log.Debug("scan mode: a big key changed or moved while read; it is copied again when notified", "key", c.t.keys().QuoteString(it.key), "err", err)
		return nil
	}
	return fmt.Errorf("source: %s: %w", c.t.keys().QuoteString(it.key), err)
}
