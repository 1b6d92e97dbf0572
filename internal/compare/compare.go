// Package compare walks two servers key by key and reports where the
// target differs from the source: missing and extra keys, types, values
// and TTLs.
//
// Keys are found with SCAN and read in pipelined batches by several
// workers at once, each with its own connections. A batch costs three
// commands per key on each side (TYPE, PTTL and the first 16 KiB of a
// string) and one more round for collections; a value bigger than one
// read (a long string, a collection past a few hundred elements) is
// compared in chunks — GETRANGE, LRANGE, ZRANGE by rank, HSCAN against
// HMGET, SSCAN against SISMEMBER, XRANGE — so no value is ever held whole.
//
// A pass can be repeated for the keys that differed (Recheck), which is
// how verify tells a key that was merely in flight on a running sync
// from one that really differs.
package compare

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
)

// Options say what to compare.
type Options struct {
	// DBs to compare (source databases); empty means every database
	// either side holds keys in.
	DBs []int
	// Filter, when set, means what it means to a sync: only the selected
	// source databases, each compared with the target database it maps
	// to, and only the keys that pass (the reserved prefix never does).
	Filter *filter.Filter
	// SkipPrefix, when not empty, leaves out the keys under it on both
	// sides (resync's reserved prefix, when there is no Filter).
	SkipPrefix string
	// TTLTolerance is how far two TTLs may differ (default 2s).
	TTLTolerance time.Duration
	// Reverse also looks for keys only the target has.
	Reverse bool
	// Batch is how many keys one pipelined round reads (default 256).
	Batch int
	// Workers is how many batches are compared at once, each on its own
	// pair of connections (default 4).
	Workers int
	// Sample, in (0, 1), compares only that fraction of the keys, picked
	// at random; SampleKeys > 0 compares about that many keys, picked at
	// random over the whole key space. Zero compares every key.
	Sample     float64
	SampleKeys int64
	// Rate caps the keys read per second from the source (and, for
	// Reverse, from the target); 0 is no cap.
	Rate int
}

// Kind is the kind of a difference.
type Kind string

// Kinds of difference, from the most to the least serious: a key has one.
const (
	Missing Kind = "missing" // the source has the key, the target does not
	Extra   Kind = "extra"   // the target has a key the source does not
	Type    Kind = "type"    // both have it, as different types
	Value   Kind = "value"   // same type, different value
	TTL     Kind = "ttl"     // same value, TTLs apart by more than the tolerance
)

// Kinds lists every kind, in order.
var Kinds = []Kind{Missing, Extra, Type, Value, TTL}

// Diff is one key that differs.
type Diff struct {
	// DB is the source database; for Extra, the target database.
	DB int `json:"db"`
	// TargetDB is the target database the key is compared in.
	TargetDB int    `json:"target_db"`
	Key      string `json:"key"`
	Kind     Kind   `json:"kind"`
	Detail   string `json:"detail"`
}

func (d Diff) String() string {
	db := fmt.Sprintf("db %d", d.DB)
	if d.TargetDB != d.DB {
		db = fmt.Sprintf("db %d→%d", d.DB, d.TargetDB)
	}
	return fmt.Sprintf("%s key %q: %s: %s", db, d.Key, d.Kind, d.Detail)
}

// Report is the outcome of Compare.
type Report struct {
	Keys  int // source keys compared
	Diffs []Diff
}

// Equal reports whether no difference was found.
func (r *Report) Equal() bool { return len(r.Diffs) == 0 }

// Compare compares target with source in one pass and returns every
// difference; for tests and small data sets (verify streams them).
func Compare(ctx context.Context, source, target dialer.Options, o Options) (*Report, error) {
	c := New(source, target, o)
	rep := &Report{}
	err := c.Walk(ctx, func(d Diff) { rep.Diffs = append(rep.Diffs, d) })
	rep.Keys = int(c.Keys())
	return rep, err
}

// Comparer compares one source with one target.
type Comparer struct {
	source, target dialer.Options
	o              Options

	// pairs maps each compared source db to its target db; sources is
	// the reverse: each target db and the source dbs that map to it.
	planOnce sync.Once
	planErr  error
	pairs    map[int]int
	sources  map[int][]int
	// Each side's nodes: the server itself, or a cluster's masters with
	// the map of which serves each slot.
	src, dst nodes

	// fieldTTLs: whether the source keeps hash field TTLs (7.4+), learnt
	// from the first hash compared (fieldTTLsUnknown, Yes, No).
	fieldTTLs atomic.Int32

	keys       atomic.Int64 // source keys compared
	targetKeys atomic.Int64 // target keys checked by the reverse pass
	diffs      atomic.Int64

	mu   sync.Mutex // serializes emit
	emit func(Diff)
}

// New returns a Comparer; nothing is dialled until Walk or Recheck.
func New(source, target dialer.Options, o Options) *Comparer {
	if o.TTLTolerance <= 0 {
		o.TTLTolerance = 2 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Rate > 0 && o.Batch > max(1, o.Rate/4) {
		// Smaller batches keep a low rate smooth.
		o.Batch = max(1, o.Rate/4)
	}
	return &Comparer{source: source, target: target, o: o}
}

// Clusters reports which sides are clusters (known once prepared).
func (c *Comparer) Clusters() (source, target bool) {
	return c.src.top != nil, c.dst.top != nil
}

// SourceFor returns how to reach the source node that holds key.
func (c *Comparer) SourceFor(key []byte) dialer.Options {
	if n := c.src.node(key); n >= 0 && n < len(c.src.opts) {
		return c.src.opts[n]
	}
	return c.source
}

// Keys returns how many source keys have been compared so far.
func (c *Comparer) Keys() int64 { return c.keys.Load() }

// TargetKeys returns how many target keys the reverse pass has checked.
func (c *Comparer) TargetKeys() int64 { return c.targetKeys.Load() }

// Diffs returns how many differences have been found so far.
func (c *Comparer) Diffs() int64 { return c.diffs.Load() }

func (c *Comparer) report(d Diff) {
	c.diffs.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emit(d)
}

// Prepare finds both sides' nodes and decides which databases are
// compared with which; Walk and Recheck do it when it has not been done.
func (c *Comparer) Prepare(ctx context.Context) error { return c.plan(ctx) }

// plan decides which databases are compared with which.
func (c *Comparer) plan(ctx context.Context) error {
	c.planOnce.Do(func() { c.planErr = c.makePlan(ctx) })
	return c.planErr
}

func (c *Comparer) makePlan(ctx context.Context) error {
	src, err := dialer.Dial(ctx, c.source)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := dialer.Dial(ctx, c.target)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	if c.src, err = discover(src, c.source); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if c.dst, err = discover(dst, c.target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	// A cluster has db 0 only.
	sk, tk := []int{0}, []int{0}
	if c.src.top == nil {
		if sk, err = keyspaceDBs(src); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	if c.dst.top == nil {
		if tk, err = keyspaceDBs(dst); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	f := c.o.Filter
	mapDB := func(db int) (int, bool) {
		if f == nil {
			return db, true
		}
		return f.DB(db)
	}
	// A source db is compared when it holds keys, or when the target db
	// it maps to does (then its keys are extra, or missing on the source).
	candidates := c.o.DBs
	if c.src.top != nil {
		candidates = []int{0}
	} else if len(candidates) == 0 {
		hi := filter.DefaultDatabases - 1
		for _, db := range append(slices.Clone(sk), tk...) {
			hi = max(hi, db)
		}
		for db := 0; db <= hi; db++ {
			candidates = append(candidates, db)
		}
	}
	c.pairs, c.sources = map[int]int{}, map[int][]int{}
	for _, db := range candidates {
		t, ok := mapDB(db)
		if !ok {
			continue
		}
		if len(c.o.DBs) == 0 && !slices.Contains(sk, db) && !slices.Contains(tk, t) {
			continue
		}
		if t != 0 && c.dst.top != nil {
			return fmt.Errorf("the target is a cluster, which has db 0 only, and source db %d would be compared with db %d: choose the source databases with --dbs and map them with --map-db %d:0", db, t, db)
		}
		c.pairs[db] = t
		c.sources[t] = append(c.sources[t], db)
	}
	return nil
}

// nodes are one side's servers: the one server of a standalone side, or
// a cluster's masters.
type nodes struct {
	opts []dialer.Options
	top  *cluster.Topology // nil for a standalone server
}

// discover finds a side's nodes through a connection to one of them.
func discover(c *dialer.Conn, o dialer.Options) (nodes, error) {
	on, err := cluster.Enabled(c)
	if err != nil || !on {
		return nodes{opts: []dialer.Options{o}}, err
	}
	top, err := cluster.Load(c)
	if err != nil {
		return nodes{}, err
	}
	if n := top.Uncovered(); n > 0 {
		return nodes{}, fmt.Errorf("the cluster at %s does not serve %d of its %d slots: compare once it is whole", c.Addr(), n, cluster.Slots)
	}
	n := nodes{top: top}
	for i := range top.Masters {
		n.opts = append(n.opts, top.Options(o, i))
	}
	return n, nil
}

// node returns the index of the node that holds key.
func (n nodes) node(key []byte) int {
	if n.top == nil {
		return 0
	}
	return n.top.Owner(cluster.Slot(key))
}

// refresh reads a cluster's map again, keeping the node list's order
// where nodes stay.
func (c *Comparer) refresh(ctx context.Context) error {
	for _, side := range []struct {
		n    *nodes
		base dialer.Options
		name string
	}{{&c.src, c.source, "source"}, {&c.dst, c.target, "target"}} {
		if side.n.top == nil {
			continue
		}
		conn, err := dialer.Dial(ctx, side.base)
		if err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		n, err := discover(conn, side.base)
		conn.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		*side.n = n
	}
	return nil
}

// keyspaceDBs lists the databases INFO keyspace says hold keys.
func keyspaceDBs(c *dialer.Conn) ([]int, error) {
	v, err := c.Do("INFO", "keyspace")
	if err != nil {
		return nil, err
	}
	return redisproc.KeyspaceDBs(v.Text()), nil
}

// Walk compares every source key (and with Reverse, every target key)
// and hands each difference to emit, one call at a time.
func (c *Comparer) Walk(ctx context.Context, emit func(Diff)) error {
	if err := c.plan(ctx); err != nil {
		return err
	}
	c.emit = emit
	dbs := slices.Sorted(maps.Keys(c.pairs))
	tdbs := slices.Sorted(maps.Keys(c.sources))
	lim := c.newLimiter()
	return c.run(ctx, func(ctx context.Context, jobs chan<- job) error {
		s, err := c.sampler(ctx, c.src, dbs)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		for _, db := range dbs {
			if err := c.scanSide(ctx, false, db, s, lim, jobs); err != nil {
				return err
			}
		}
		if !c.o.Reverse {
			return nil
		}
		if s, err = c.sampler(ctx, c.dst, tdbs); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		for _, t := range tdbs {
			if err := c.scanSide(ctx, true, t, s, lim, jobs); err != nil {
				return err
			}
		}
		return nil
	})
}

// Recheck compares again the keys of earlier differences and hands each
// that still differs to emit (with what it is now: a key missing earlier
// may now differ in value, or be equal).
func (c *Comparer) Recheck(ctx context.Context, diffs []Diff, emit func(Diff)) error {
	if err := c.plan(ctx); err != nil {
		return err
	}
	// Slots may have moved since (a key that answered MOVED differs).
	if err := c.refresh(ctx); err != nil {
		return err
	}
	c.emit = emit
	return c.run(ctx, func(ctx context.Context, jobs chan<- job) error {
		type group struct {
			db, tdb, snode, tnode int
			extra                 bool
		}
		groups := map[group][][]byte{}
		var order []group
		for _, d := range diffs {
			k := []byte(d.Key)
			g := group{d.DB, d.TargetDB, c.src.node(k), c.dst.node(k), d.Kind == Extra}
			if _, ok := groups[g]; !ok {
				order = append(order, g)
			}
			groups[g] = append(groups[g], k)
		}
		for _, g := range order {
			keys := groups[g]
			for len(keys) > 0 {
				n := min(len(keys), c.o.Batch)
				j := job{db: g.db, tdb: g.tdb, snode: g.snode, tnode: g.tnode, keys: keys[:n], recheck: true}
				if g.extra {
					j.reverse, j.sources = true, c.sources[g.tdb]
				}
				select {
				case jobs <- j:
				case <-ctx.Done():
					return ctx.Err()
				}
				keys = keys[n:]
			}
		}
		return nil
	})
}
