package compare

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/resp"
)

// Command names and fixed arguments, allocated once.
var (
	cmdSCAN     = []byte("SCAN")
	cmdCOUNT    = []byte("COUNT")
	cmdSELECT   = []byte("SELECT")
	cmdTYPE     = []byte("TYPE")
	cmdPTTL     = []byte("PTTL")
	cmdEXISTS   = []byte("EXISTS")
	cmdGETRANGE = []byte("GETRANGE")
	cmdSTRLEN   = []byte("STRLEN")
	cmdLRANGE   = []byte("LRANGE")
	cmdLLEN     = []byte("LLEN")
	cmdZRANGE   = []byte("ZRANGE")
	cmdZCARD    = []byte("ZCARD")
	cmdHSCAN    = []byte("HSCAN")
	cmdHLEN     = []byte("HLEN")
	cmdHMGET    = []byte("HMGET")
	cmdSSCAN    = []byte("SSCAN")
	cmdSCARD    = []byte("SCARD")
	cmdSISMEM   = []byte("SISMEMBER")
	cmdXRANGE   = []byte("XRANGE")
	cmdXLEN     = []byte("XLEN")
	cmdXINFO    = []byte("XINFO")
	cmdGROUPS   = []byte("GROUPS")
	cmdSTREAM   = []byte("STREAM")
	cmdDUMP     = []byte("DUMP")
	argScores   = []byte("WITHSCORES")
	zero        = []byte("0")
	minusID     = []byte("-")
	plusID      = []byte("+")
)

// How much of a value one read takes. The first read of a batch is small
// so that a batch of many keys stays small in memory; a value that does
// not fit is then compared alone, in bigger chunks.
const (
	firstBytes = 16 << 10
	firstElems = 128
	chunkBytes = 1 << 20
	chunkElems = 1000
)

var (
	firstBytesEnd = []byte(strconv.Itoa(firstBytes - 1))
	firstElemsEnd = []byte(strconv.Itoa(firstElems - 1))
	firstElemsArg = []byte(strconv.Itoa(firstElems))
	chunkElemsArg = []byte(strconv.Itoa(chunkElems))
)

// side is one connection of a worker, pipelined: commands are queued with
// send and their replies read together with read.
type side struct {
	opts    dialer.Options
	name    string // "source" or "target", for errors
	conn    *dialer.Conn
	db      int   // the selected db; -1 unknown
	n       int   // replies pending
	selects []int // which of them answer a SELECT
	replies []resp.Value
}

func (s *side) dial(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	c, err := dialer.Dial(ctx, s.opts)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.conn, s.db = c, -1
	return nil
}

// use selects db, when it is not selected already.
func (s *side) use(db int) {
	if s.db == db {
		return
	}
	s.selects = append(s.selects, s.n)
	s.send(cmdSELECT, strconv.AppendInt(nil, int64(db), 10))
	s.db = db
}

func (s *side) send(args ...[]byte) {
	s.conn.Writer().WriteCommand(args...)
	s.n++
}

func (s *side) flush() error {
	if err := s.conn.Writer().Flush(); err != nil {
		return fmt.Errorf("%s %s: %w", s.name, s.conn.Addr(), err)
	}
	return nil
}

// read returns the replies to what was sent since the last read, without
// the SELECTs' (each checked). They are valid until the next read.
func (s *side) read() ([]resp.Value, error) {
	r := s.conn.Reader()
	s.replies = s.replies[:0]
	sel := s.selects
	for i := range s.n {
		v, err := r.ReadValue()
		if err != nil {
			s.n, s.selects = 0, s.selects[:0]
			return nil, fmt.Errorf("%s %s: %w", s.name, s.conn.Addr(), err)
		}
		if len(sel) > 0 && sel[0] == i {
			sel = sel[1:]
			if err := v.Err(); err != nil {
				s.db = -1
				s.n, s.selects = 0, s.selects[:0]
				return nil, fmt.Errorf("%s %s: SELECT: %w", s.name, s.conn.Addr(), err)
			}
			continue
		}
		s.replies = append(s.replies, v)
	}
	s.n, s.selects = 0, s.selects[:0]
	return s.replies, nil
}

// worker compares batches on its own connections: one to each node it
// has needed so far.
type worker struct {
	c *Comparer
	// s and t are the source and target nodes of the current job.
	s, t     *side
	src, dst []*side
	keys     []keyState
	big      []keyState
}

func newWorker(c *Comparer) *worker {
	w := &worker{c: c}
	for _, o := range c.src.opts {
		w.src = append(w.src, &side{opts: o, name: "source", db: -1})
	}
	for _, o := range c.dst.opts {
		w.dst = append(w.dst, &side{opts: o, name: "target", db: -1})
	}
	return w
}

func (w *worker) close() {
	for _, s := range append(w.src, w.dst...) {
		if s.conn != nil {
			s.conn.Close()
		}
	}
}

// exchange flushes both sides and reads both sides' replies.
func (w *worker) exchange() (sv, tv []resp.Value, err error) {
	if err := w.s.flush(); err != nil {
		return nil, nil, err
	}
	if err := w.t.flush(); err != nil {
		return nil, nil, err
	}
	if sv, err = w.s.read(); err != nil {
		return nil, nil, err
	}
	if tv, err = w.t.read(); err != nil {
		return nil, nil, err
	}
	return sv, tv, nil
}

// both sends one command to both sides and returns the two replies.
func (w *worker) both(args ...[]byte) (a, b resp.Value, err error) {
	w.s.send(args...)
	w.t.send(args...)
	sv, tv, err := w.exchange()
	if err != nil {
		return a, b, err
	}
	return sv[0], tv[0], nil
}

func (w *worker) do(ctx context.Context, j job) error {
	if j.snode < 0 || j.snode >= len(w.src) || j.tnode < 0 || j.tnode >= len(w.dst) {
		return fmt.Errorf("no node serves the keys of a batch (%d, %d): the cluster map changed", j.snode, j.tnode)
	}
	w.s, w.t = w.src[j.snode], w.dst[j.tnode]
	if err := w.s.dial(ctx); err != nil {
		return err
	}
	if err := w.t.dial(ctx); err != nil {
		return err
	}
	if j.reverse {
		return w.reverse(j)
	}
	return w.compare(ctx, j)
}

// keyState is what the first round learnt about one key.
type keyState struct {
	key        []byte
	typ        string
	sttl, tttl int64
}

func (w *worker) diff(j job, k []byte, kind Kind, detail string) {
	db := j.db
	if kind == Extra {
		db = j.tdb
	}
	w.c.report(Diff{DB: db, TargetDB: j.tdb, Key: string(k), Kind: kind, Detail: detail})
}

// compare compares a batch of source keys with the target's.
func (w *worker) compare(ctx context.Context, j job) error {
	s, t := w.s, w.t
	s.use(j.db)
	t.use(j.tdb)
	for _, k := range j.keys {
		for _, x := range [2]*side{s, t} {
			x.send(cmdTYPE, k)
			x.send(cmdPTTL, k)
			x.send(cmdGETRANGE, k, zero, firstBytesEnd)
		}
	}
	sv, tv, err := w.exchange()
	if err != nil {
		return err
	}
	w.keys, w.big = w.keys[:0], w.big[:0]
	counted := 0
keys:
	for i, k := range j.keys {
		for _, v := range [4]resp.Value{sv[3*i], sv[3*i+1], tv[3*i], tv[3*i+1]} {
			if err := v.Err(); err != nil {
				if moved(err) {
					// Resharding: the next round reads the new map.
					w.diff(j, k, Value, "the key moved between cluster nodes while compared: "+err.Error())
					counted++
					continue keys
				}
				return fmt.Errorf("TYPE/PTTL %q: %w", k, err)
			}
		}
		st, tt := typeName(sv[3*i].Str), typeName(tv[3*i].Str)
		ks := keyState{key: k, typ: st, sttl: sv[3*i+1].Int, tttl: tv[3*i+1].Int}
		if st == "none" || ks.sttl == -2 {
			// Gone since the SCAN (or since the last round).
			if j.recheck && tt != "none" && ks.tttl != -2 {
				w.diff(j, k, Extra, "the source no longer has it, the target does")
			}
			continue
		}
		counted++
		switch {
		case tt == "none" || ks.tttl == -2:
			w.diff(j, k, Missing, "the target has no such key")
		case st != tt:
			w.diff(j, k, Type, fmt.Sprintf("source %s, target %s", st, tt))
		case st == "string":
			a, b := sv[3*i+2], tv[3*i+2]
			if d := diffBytes(a, b, 0); d != "" {
				w.diff(j, k, Value, d)
			} else if len(a.Str) == firstBytes {
				w.big = append(w.big, ks)
			} else {
				w.ttl(j, ks)
			}
		default:
			w.keys = append(w.keys, ks)
		}
	}
	if !j.recheck {
		w.c.keys.Add(int64(counted))
	}
	if err := w.collections(j); err != nil {
		return err
	}
	for _, ks := range w.big {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := w.bigValue(ks)
		if err != nil {
			return err
		}
		if d != "" {
			w.diff(j, ks.key, Value, d)
		} else {
			w.ttl(j, ks)
		}
	}
	return nil
}

// ttl reports a TTL difference of a key whose value is equal.
func (w *worker) ttl(j job, ks keyState) {
	if d := ttlDiff(ks.sttl, ks.tttl, w.c.o.TTLTolerance); d != "" {
		w.diff(j, ks.key, TTL, d)
	}
}

// ttlDiff compares two PTTL replies (-1: no expiry) of a key.
func ttlDiff(s, t int64, tol time.Duration) string { return expiryDiff("key", "PTTL", s, t, tol) }

// expiryDiff compares two remaining times to live (-1: none) of what
// (a key, a hash field) as read by cmd, within tol.
func expiryDiff(what, cmd string, s, t int64, tol time.Duration) string {
	switch {
	case s < 0 && t < 0:
		return ""
	case s < 0:
		return fmt.Sprintf("the source %s has no TTL, the target's expires in %d ms", what, t)
	case t < 0:
		return fmt.Sprintf("the source %s expires in %d ms, the target's has no TTL", what, s)
	}
	if d := s - t; d > tol.Milliseconds() || -d > tol.Milliseconds() {
		return fmt.Sprintf("source %s %d ms, target %d ms", cmd, s, t)
	}
	return ""
}

// moved reports whether an error reply says a cluster slot is elsewhere
// or unavailable for the moment: the key is compared again later.
func moved(err error) bool {
	var re *resp.RedisError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code() {
	case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN":
		return true
	}
	return false
}

// typeName returns TYPE's reply as one of a few constant strings, so that
// the common case allocates nothing.
func typeName(b []byte) string {
	switch string(b) {
	case "none":
		return "none"
	case "string":
		return "string"
	case "list":
		return "list"
	case "set":
		return "set"
	case "zset":
		return "zset"
	case "hash":
		return "hash"
	case "stream":
		return "stream"
	}
	return string(b)
}

// reverse checks that each target key of the batch exists in one of the
// source databases that map to its database.
func (w *worker) reverse(j job) error {
	s, t := w.s, w.t
	t.use(j.tdb)
	for _, k := range j.keys {
		t.send(cmdEXISTS, k)
	}
	for _, db := range j.sources {
		s.use(db)
		for _, k := range j.keys {
			s.send(cmdEXISTS, k)
		}
	}
	sv, tv, err := w.exchange()
	if err != nil {
		return err
	}
	n := len(j.keys)
	checked := 0
keys:
	for i, k := range j.keys {
		for d := 0; d <= len(j.sources); d++ {
			v := tv[i]
			if d > 0 {
				v = sv[(d-1)*n+i]
			}
			if err := v.Err(); err != nil {
				if moved(err) {
					w.diff(j, k, Extra, "the key moved between cluster nodes while compared: "+err.Error())
					continue keys
				}
				return fmt.Errorf("EXISTS %q: %w", k, err)
			}
		}
		if tv[i].Int == 0 {
			continue // gone since the SCAN
		}
		checked++
		found := false
		for d := range j.sources {
			found = found || sv[d*n+i].Int > 0
		}
		if !found {
			w.diff(j, k, Extra, "only the target has it")
		}
	}
	if !j.recheck {
		w.c.targetKeys.Add(int64(checked))
	}
	return nil
}
