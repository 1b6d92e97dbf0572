package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
)

// elems is how many fields, elements or members each small aggregate
// of the data set holds.
const elems = 10

// valueBytes is the size of each string value, and elemBytes of each
// hash value, list element, set or zset member.
const (
	valueBytes = 64
	elemBytes  = 10
)

// DataSet is the benchmark's main data set: Strings strings of 64 bytes,
// then Others each of 10-field hashes, 10-element lists, 10-member sets
// and 10-member sorted sets. Key i is str:i, hash:i, list:i, set:i or
// zset:i, in that order: a key's name and its command follow from its
// index, so the set is never held in memory.
type DataSet struct {
	Strings, Others int
}

// NewDataSet is the data set for --keys n: n strings and n/10 of each
// aggregate.
func NewDataSet(n int) DataSet { return DataSet{Strings: n, Others: n / 10} }

// Keys is the number of keys.
func (d DataSet) Keys() int { return d.Strings + 4*d.Others }

// kinds of keys, in index order.
var kindPrefix = [...]string{"str:", "hash:", "list:", "set:", "zset:"}

// locate returns key i's kind (an index into kindPrefix) and its number
// within the kind.
func (d DataSet) locate(i int) (kind, n int) {
	if i < d.Strings {
		return 0, i
	}
	i -= d.Strings
	return 1 + i/d.Others, i % d.Others
}

// AppendKey appends key i's name to b.
func (d DataSet) AppendKey(b []byte, i int) []byte {
	kind, n := d.locate(i)
	return strconv.AppendInt(append(b, kindPrefix[kind]...), int64(n), 10)
}

// gen writes the data set's commands with random values: printable, so
// that an RDB's LZF compression cannot shrink them and the bytes moved
// are the bytes stored.
type gen struct {
	rng   *rand.PCG
	key   []byte
	vals  [elems][]byte
	num   [elems][]byte // "0" to "9": zset scores
	field [elems][]byte // "f0" to "f9": hash fields
}

func newGen(seed uint64) *gen {
	g := &gen{rng: rand.NewPCG(seed, 0x9e3779b97f4a7c15)}
	for i := range g.vals {
		g.vals[i] = make([]byte, valueBytes)
		g.num[i] = strconv.AppendInt(nil, int64(i), 10)
		g.field[i] = strconv.AppendInt([]byte("f"), int64(i), 10)
	}
	return g
}

// fill sets b to random characters of a 64-letter alphabet.
func (g *gen) fill(b []byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var r uint64
	for i := range b {
		if i%10 == 0 {
			r = g.rng.Uint64()
		}
		b[i] = alphabet[r&63]
		r >>= 6
	}
}

// write writes the command that creates key i of d.
func (g *gen) write(w *resp.Writer, d DataSet, i int) {
	g.key = d.AppendKey(g.key[:0], i)
	kind, _ := d.locate(i)
	switch kind {
	case 0:
		v := g.vals[0][:valueBytes]
		g.fill(v)
		w.WriteArrayHeader(3)
		w.WriteBulkString("SET")
		w.WriteBulk(g.key)
		w.WriteBulk(v)
		return
	case 1:
		// HMSET rather than HSET: every version takes several fields.
		w.WriteArrayHeader(2 + 2*elems)
		w.WriteBulkString("HMSET")
		w.WriteBulk(g.key)
		for j := range elems {
			v := g.vals[j][:elemBytes]
			g.fill(v)
			w.WriteBulk(g.field[j])
			w.WriteBulk(v)
		}
		return
	case 4:
		w.WriteArrayHeader(2 + 2*elems)
		w.WriteBulkString("ZADD")
		w.WriteBulk(g.key)
		for j := range elems {
			v := g.vals[j][:elemBytes]
			g.fill(v)
			w.WriteBulk(g.num[j])
			w.WriteBulk(v)
		}
		return
	}
	name := "RPUSH"
	if kind == 3 {
		name = "SADD"
	}
	w.WriteArrayHeader(2 + elems)
	w.WriteBulkString(name)
	w.WriteBulk(g.key)
	for j := range elems {
		v := g.vals[j][:elemBytes]
		g.fill(v)
		w.WriteBulk(v)
	}
}

// fillStandalone writes d into one server, pipelined.
func fillStandalone(ctx context.Context, o dialer.Options, d DataSet) error {
	c, err := dialer.Dial(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	g := newGen(1)
	return pipeline(ctx, c, d.Keys(), func(w *resp.Writer, i int) { g.write(w, d, i) }, nil)
}

// fillCluster writes d into a cluster, each key into the master that
// serves its slot, every master at once.
func fillCluster(ctx context.Context, masters []*redisproc.Server, d DataSet) error {
	owned := make([][]int32, len(masters))
	var key []byte
	for i := range d.Keys() {
		key = d.AppendKey(key[:0], i)
		m := ownerOf(cluster.Slot(key), len(masters))
		owned[m] = append(owned[m], int32(i))
	}
	errs := make([]error, len(masters))
	var wg sync.WaitGroup
	for m, s := range masters {
		wg.Go(func() {
			c, err := dialer.Dial(ctx, benchDialOptions(s))
			if err != nil {
				errs[m] = err
				return
			}
			defer c.Close()
			g := newGen(uint64(m) + 1)
			keys := owned[m]
			errs[m] = pipeline(ctx, c, len(keys), func(w *resp.Writer, i int) { g.write(w, d, int(keys[i])) }, nil)
		})
	}
	wg.Wait()
	for m, err := range errs {
		if err != nil {
			return fmt.Errorf("cluster master %s: %w", masters[m].Addr, err)
		}
	}
	return nil
}

// ownerOf is the index of the master that serves slot in a cluster that
// redisproc.StartCluster made with n masters.
func ownerOf(slot, n int) int {
	for i := range n {
		if _, last := redisproc.SlotRange(i, n); slot <= last {
			return i
		}
	}
	return n - 1
}

// BigKeys is the --big data set: a hash of Elements fields, a list of
// Elements elements and a string of StringBytes bytes.
type BigKeys struct {
	Elements, StringBytes int
}

// DefaultBigKeys is what --big adds: a 2M-field hash, a 2M-element list
// and a 64 MiB string.
var DefaultBigKeys = BigKeys{Elements: 2_000_000, StringBytes: 64 << 20}

// bigChunk is how many fields or elements one command of the fill adds.
const bigChunk = 1000

// Keys is the number of keys: three.
func (b BigKeys) Keys() int { return 3 }

// fillBig writes the big keys, pipelined: the hash and the list in
// chunks, then the string.
func fillBig(ctx context.Context, o dialer.Options, b BigKeys) error {
	c, err := dialer.Dial(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	g := newGen(7)
	chunks := (b.Elements + bigChunk - 1) / bigChunk
	elem := make([]byte, 8)
	return pipeline(ctx, c, 2*chunks+1, func(w *resp.Writer, i int) {
		switch {
		case i < chunks:
			n := min(bigChunk, b.Elements-i*bigChunk)
			w.WriteArrayHeader(2 + 2*n)
			w.WriteBulkString("HMSET")
			w.WriteBulkString("big:hash")
			for j := range n {
				g.fill(elem)
				w.WriteBulkString("f" + strconv.Itoa(i*bigChunk+j))
				w.WriteBulk(elem)
			}
		case i < 2*chunks:
			i -= chunks
			n := min(bigChunk, b.Elements-i*bigChunk)
			w.WriteArrayHeader(2 + n)
			w.WriteBulkString("RPUSH")
			w.WriteBulkString("big:list")
			for range n {
				g.fill(elem)
				w.WriteBulk(elem)
			}
		default:
			v := make([]byte, b.StringBytes)
			g.fill(v)
			w.WriteCommand([]byte("SET"), []byte("big:string"), v)
		}
	}, nil)
}
