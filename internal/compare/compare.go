// Package compare walks two servers key by key and reports where the
// target differs from the source: missing and extra keys, types, values
// and TTLs. Keys are read with SCAN and the reads pipelined in batches.
package compare

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/resp"
)

// Options say what to compare.
type Options struct {
	// DBs to compare; empty means every database either side holds keys in.
	DBs []int
	// TTLTolerance is how far two TTLs may differ (default 2s).
	TTLTolerance time.Duration
	// SkipPrefix, when not empty, leaves out the keys under it on both
	// sides (resync's reserved prefix).
	SkipPrefix string
	// Reverse also looks for keys only the target has.
	Reverse bool
	// Batch is how many keys one pipelined round reads (default 500).
	Batch int
	// Filter, when set, means what it means to a sync: only the selected
	// source databases, each compared with the target database it maps
	// to, and only the keys that pass (the reserved prefix never does).
	Filter *filter.Filter
}

// Diff is one difference.
type Diff struct {
	DB     int
	Key    string
	Kind   string // missing, extra, type, value, ttl
	Detail string
}

func (d Diff) String() string {
	return fmt.Sprintf("db %d key %q: %s: %s", d.DB, d.Key, d.Kind, d.Detail)
}

// Report is the outcome of a comparison.
type Report struct {
	Keys  int
	Diffs []Diff
}

// Equal reports whether no difference was found.
func (r *Report) Equal() bool { return len(r.Diffs) == 0 }

// Compare compares target with source.
func Compare(ctx context.Context, source, target *dialer.Conn, o Options) (*Report, error) {
	if o.TTLTolerance <= 0 {
		o.TTLTolerance = 2 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	dbs := o.DBs
	if len(dbs) == 0 {
		a, err := keyspaceDBs(source)
		if err != nil {
			return nil, err
		}
		dbs = a
		if o.Filter == nil {
			// Without a mapping a db the target alone has keys in is
			// compared too (its keys are extra).
			b, err := keyspaceDBs(target)
			if err != nil {
				return nil, err
			}
			dbs = append(dbs, b...)
		}
		slices.Sort(dbs)
		dbs = slices.Compact(dbs)
	}
	// Each source db and the target db it is compared with; for
	// --reverse, each target db and the source dbs its keys come from.
	pairs := map[int]int{}
	sources := map[int][]int{}
	for _, db := range dbs {
		t := db
		if o.Filter != nil {
			var ok bool
			if t, ok = o.Filter.DB(db); !ok {
				continue
			}
		}
		pairs[db] = t
		sources[t] = append(sources[t], db)
	}
	rep := &Report{}
	for _, db := range slices.Sorted(maps.Keys(pairs)) {
		if err := compareDB(ctx, source, target, db, pairs[db], o, rep); err != nil {
			return rep, err
		}
	}
	if o.Reverse {
		for _, t := range slices.Sorted(maps.Keys(sources)) {
			if err := reverseDB(ctx, target, source, t, sources[t], o, rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// keyspaceDBs lists the databases INFO keyspace says hold keys.
func keyspaceDBs(c *dialer.Conn) ([]int, error) {
	v, err := c.Do("INFO", "keyspace")
	if err != nil {
		return nil, err
	}
	var dbs []int
	for line := range strings.Lines(v.Text()) {
		if rest, ok := strings.CutPrefix(line, "db"); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ':')])
			if err == nil {
				dbs = append(dbs, n)
			}
		}
	}
	return dbs, nil
}

// pipeline sends cmds and returns their replies, error replies included.
func pipeline(c *dialer.Conn, cmds [][]string) ([]resp.Value, error) {
	w, r := c.Writer(), c.Reader()
	for _, cmd := range cmds {
		w.WriteCommandStrings(cmd...)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Addr(), err)
	}
	out := make([]resp.Value, len(cmds))
	for i := range cmds {
		v, err := r.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Addr(), err)
		}
		out[i] = v
	}
	return out, nil
}

// compareDB walks the source's keys in db and compares each with the
// target's in tdb.
func compareDB(ctx context.Context, source, target *dialer.Conn, db, tdb int, o Options, rep *Report) error {
	if _, err := source.Do("SELECT", strconv.Itoa(db)); err != nil {
		return err
	}
	if _, err := target.Do("SELECT", strconv.Itoa(tdb)); err != nil {
		return err
	}
	return scan(ctx, source, o, func(keys []string) error {
		return compareKeys(source, target, db, keys, o, rep)
	})
}

// reverseDB walks the target's keys in tdb and reports those that none of
// the source dbs it maps from holds.
func reverseDB(ctx context.Context, target, source *dialer.Conn, tdb int, dbs []int, o Options, rep *Report) error {
	if _, err := target.Do("SELECT", strconv.Itoa(tdb)); err != nil {
		return err
	}
	return scan(ctx, target, o, func(keys []string) error {
		for _, db := range dbs {
			if len(keys) == 0 {
				return nil
			}
			if _, err := source.Do("SELECT", strconv.Itoa(db)); err != nil {
				return err
			}
			var err error
			if keys, err = absent(source, keys); err != nil {
				return err
			}
		}
		for _, k := range keys {
			rep.Diffs = append(rep.Diffs, Diff{DB: tdb, Key: k, Kind: "extra", Detail: "only the target has it"})
		}
		return nil
	})
}

// scan hands fn the keys of c's selected db, in SCAN batches, leaving out
// the ones the options exclude.
func scan(ctx context.Context, c *dialer.Conn, o Options, fn func(keys []string) error) error {
	cursor := "0"
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := c.Do("SCAN", cursor, "COUNT", strconv.Itoa(o.Batch))
		if err != nil {
			return err
		}
		if len(v.Elems) != 2 {
			return fmt.Errorf("%s: SCAN reply %v", c.Addr(), v)
		}
		cursor = v.Elems[0].Text()
		var keys []string
		for _, k := range v.Elems[1].Elems {
			if o.SkipPrefix != "" && strings.HasPrefix(k.Text(), o.SkipPrefix) {
				continue
			}
			if o.Filter != nil && !o.Filter.Key(k.Str) {
				continue
			}
			keys = append(keys, k.Text())
		}
		if err := fn(keys); err != nil {
			return err
		}
		if cursor == "0" {
			return nil
		}
	}
}

// absent returns the keys c's selected db does not hold.
func absent(c *dialer.Conn, keys []string) ([]string, error) {
	var cmds [][]string
	for _, k := range keys {
		cmds = append(cmds, []string{"EXISTS", k})
	}
	vs, err := pipeline(c, cmds)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, v := range vs {
		if v.Int == 0 {
			out = append(out, keys[i])
		}
	}
	return out, nil
}

func compareKeys(source, target *dialer.Conn, db int, keys []string, o Options, rep *Report) error {
	var meta [][]string
	for _, k := range keys {
		meta = append(meta, []string{"TYPE", k}, []string{"PTTL", k})
	}
	sm, err := pipeline(source, meta)
	if err != nil {
		return err
	}
	tm, err := pipeline(target, meta)
	if err != nil {
		return err
	}
	var reads [][]string
	var readKeys []int
	for i, k := range keys {
		st, tt := sm[2*i].Text(), tm[2*i].Text()
		if st == "none" {
			continue // gone since the SCAN
		}
		rep.Keys++
		switch {
		case tt == "none":
			rep.Diffs = append(rep.Diffs, Diff{DB: db, Key: k, Kind: "missing", Detail: "the target has no such key"})
			continue
		case st != tt:
			rep.Diffs = append(rep.Diffs, Diff{DB: db, Key: k, Kind: "type", Detail: fmt.Sprintf("source %s, target %s", st, tt)})
			continue
		}
		if d := ttlDiff(sm[2*i+1].Int, tm[2*i+1].Int, o.TTLTolerance); d != "" {
			rep.Diffs = append(rep.Diffs, Diff{DB: db, Key: k, Kind: "ttl", Detail: d})
		}
		cmds := valueReads(st, k)
		if cmds == nil {
			rep.Diffs = append(rep.Diffs, Diff{DB: db, Key: k, Kind: "type", Detail: "cannot compare type " + st})
			continue
		}
		reads = append(reads, cmds...)
		for range cmds {
			readKeys = append(readKeys, i)
		}
	}
	sv, err := pipeline(source, reads)
	if err != nil {
		return err
	}
	tv, err := pipeline(target, reads)
	if err != nil {
		return err
	}
	reported := map[int]bool{}
	for j := range reads {
		i := readKeys[j]
		if reported[i] {
			continue
		}
		a, b := normalize(reads[j], sv[j]), normalize(reads[j], tv[j])
		if a != b {
			reported[i] = true
			rep.Diffs = append(rep.Diffs, Diff{DB: db, Key: keys[i], Kind: "value",
				Detail: fmt.Sprintf("%s: source %.200s, target %.200s", reads[j][0], a, b)})
		}
	}
	return nil
}

// ttlDiff compares two PTTL replies (-1: no expiry).
func ttlDiff(s, t int64, tol time.Duration) string {
	switch {
	case s < 0 && t < 0:
		return ""
	case s < 0 || t < 0:
		return fmt.Sprintf("source PTTL %d, target %d", s, t)
	}
	if d := s - t; d > tol.Milliseconds() || -d > tol.Milliseconds() {
		return fmt.Sprintf("source PTTL %d ms, target %d ms", s, t)
	}
	return ""
}

// valueReads are the commands that read a key's whole value.
func valueReads(typ, k string) [][]string {
	switch typ {
	case "string":
		return [][]string{{"GET", k}}
	case "list":
		return [][]string{{"LRANGE", k, "0", "-1"}}
	case "set":
		return [][]string{{"SMEMBERS", k}}
	case "zset":
		return [][]string{{"ZRANGE", k, "0", "-1", "WITHSCORES"}}
	case "hash":
		return [][]string{{"HGETALL", k}}
	case "stream":
		return [][]string{{"XRANGE", k, "-", "+"}, {"XINFO", "GROUPS", k}}
	}
	return nil
}

// normalize turns a reply into text where order does not matter for the
// type: set members and hash fields sorted; stream group idle times and
// the like are dropped.
func normalize(cmd []string, v resp.Value) string {
	switch cmd[0] {
	case "SMEMBERS":
		var m []string
		for _, e := range v.Elems {
			m = append(m, strconv.Quote(e.Text()))
		}
		slices.Sort(m)
		return strings.Join(m, ",")
	case "HGETALL":
		var m []string
		for i := 0; i+1 < len(v.Elems); i += 2 {
			m = append(m, strconv.Quote(v.Elems[i].Text())+"="+strconv.Quote(v.Elems[i+1].Text()))
		}
		slices.Sort(m)
		return strings.Join(m, ",")
	case "ZRANGE":
		// Scores as numbers: servers print one double differently (7.2+
		// the shortest form, older ones %.17g; -0 as 0 or -0).
		var m []string
		for i := 0; i+1 < len(v.Elems); i += 2 {
			score := v.Elems[i+1].Text()
			if f, err := strconv.ParseFloat(score, 64); err == nil {
				if f == 0 {
					f = 0 // -0 == 0 in a zset's order
				}
				score = strconv.FormatFloat(f, 'g', -1, 64)
			}
			m = append(m, strconv.Quote(v.Elems[i].Text())+"="+score)
		}
		return strings.Join(m, ",")
	case "XINFO":
		// Per group: name, pending count, last-delivered-id. Not
		// entries-read: the stream does not carry it exactly (a native
		// replica of 7.x reports it unknown where its source counts),
		// nor the consumers' idle times.
		var gs []string
		for _, g := range v.Elems {
			f := map[string]string{}
			for i := 0; i+1 < len(g.Elems); i += 2 {
				f[g.Elems[i].Text()] = g.Elems[i+1].Text()
			}
			gs = append(gs, fmt.Sprintf("%s pending=%s last=%s", f["name"], f["pending"], f["last-delivered-id"]))
		}
		slices.Sort(gs)
		return strings.Join(gs, ";")
	}
	return v.String()
}
