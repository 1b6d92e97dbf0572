package compare

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/resync/resync/internal/dialer"
)

// job is one batch of keys for a worker.
type job struct {
	db, tdb int
	// snode and tnode are the source and target nodes that hold the
	// keys (0 for a standalone server).
	snode, tnode int
	keys         [][]byte
	// reverse: the keys are the target's (in tdb); check that one of the
	// source dbs in sources holds each.
	reverse bool
	sources []int
	// recheck: the keys differed before; they are not counted again, and
	// a key the source no longer holds while the target does is extra.
	recheck bool
}

// run starts the workers, feeds them what produce sends, and returns the
// first error of either.
func (c *Comparer) run(ctx context.Context, produce func(context.Context, chan<- job) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var werr error
	fail := func(err error) {
		once.Do(func() { werr = err; cancel() })
	}
	jobs := make(chan job, c.o.Workers)
	var wg sync.WaitGroup
	for range c.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(c)
			defer w.close()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				if err := w.do(ctx, j); err != nil {
					fail(err)
				}
			}
		}()
	}
	err := produce(ctx, jobs)
	close(jobs)
	wg.Wait()
	if werr != nil {
		return werr // it explains the producer's cancellation
	}
	return err
}

// sampler picks keys at random and stops after a number of them. It is
// shared by the scans of a cluster's masters.
type sampler struct {
	mu    sync.Mutex
	p     float64 // probability of taking a key; 1 takes all
	limit int64   // stop after this many; 0 is no limit
	taken int64
}

func (s *sampler) take() bool {
	if s.p >= 1 && s.limit == 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 && s.taken >= s.limit {
		return false
	}
	if s.p < 1 && rand.Float64() >= s.p {
		return false
	}
	s.taken++
	return true
}

func (s *sampler) done() bool {
	if s.limit == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken >= s.limit
}

// sampler returns the sampler for a walk of dbs on one side.
func (c *Comparer) sampler(ctx context.Context, side nodes, dbs []int) (*sampler, error) {
	s := &sampler{p: 1}
	if c.o.SampleKeys <= 0 && c.o.Sample <= 0 {
		return s, nil
	}
	var total int64
	for _, o := range side.opts {
		conn, err := dialer.Dial(ctx, o)
		if err != nil {
			return nil, err
		}
		n, err := dbSizes(conn, dbs)
		conn.Close()
		if err != nil {
			return nil, err
		}
		total += n
	}
	switch {
	case c.o.SampleKeys > 0:
		s.limit = c.o.SampleKeys
		if total > c.o.SampleKeys {
			// A little over the share, so the walk does not fall short
			// before the end of the key space.
			s.p = min(1, 1.1*float64(c.o.SampleKeys)/float64(total))
		}
	case c.o.Sample > 0 && c.o.Sample < 1:
		s.p = c.o.Sample
	}
	return s, nil
}

// dbSizes sums DBSIZE over dbs, for sampling.
func dbSizes(conn *dialer.Conn, dbs []int) (int64, error) {
	var n int64
	for _, db := range dbs {
		if _, err := conn.Do("SELECT", strconv.Itoa(db)); err != nil {
			return 0, err
		}
		v, err := conn.Do("DBSIZE")
		if err != nil {
			return 0, err
		}
		n += v.Int
	}
	return n, nil
}

// limiter spaces out reads to a number of keys per second, across the
// scans that share it.
type limiter struct {
	mu   sync.Mutex
	rate float64
	next time.Time
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	d := l.next.Sub(now)
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Comparer) newLimiter() *limiter {
	if c.o.Rate <= 0 {
		return nil
	}
	return &limiter{rate: float64(c.o.Rate)}
}

// scanSide walks db on every node of one side at once — the source, or
// for reverse the target — and sends its keys in batches, each batch
// bound for one node of the other side.
func (c *Comparer) scanSide(ctx context.Context, reverse bool, db int, s *sampler, lim *limiter, jobs chan<- job) error {
	side, other, name := c.src, c.dst, "source"
	if reverse {
		side, other, name = c.dst, c.src, "target"
	}
	errs := make(chan error, len(side.opts))
	for i, o := range side.opts {
		go func() {
			errs <- c.scanNode(ctx, name, o, db, func(keys [][]byte) error {
				// Batches per node of the other side.
				buckets := map[int][][]byte{}
				for _, k := range keys {
					n := other.node(k)
					buckets[n] = append(buckets[n], k)
				}
				for n, ks := range buckets {
					j := job{db: db, tdb: c.pairs[db], snode: i, tnode: n, keys: ks}
					if reverse {
						j = job{db: db, tdb: db, snode: n, tnode: i, keys: ks, reverse: true, sources: c.sources[db]}
					}
					if err := lim.wait(ctx, len(ks)); err != nil {
						return err
					}
					select {
					case jobs <- j:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}, s)
		}()
	}
	var first error
	for range side.opts {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// scanNode walks db on one node with SCAN, leaving out the keys the
// options exclude, and hands them on in batches.
func (c *Comparer) scanNode(ctx context.Context, name string, o dialer.Options, db int, send func([][]byte) error, s *sampler) error {
	if s.done() {
		return nil
	}
	conn, err := dialer.Dial(ctx, o)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer conn.Close()
	if _, err := conn.Do("SELECT", strconv.Itoa(db)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	count := []byte(strconv.Itoa(c.o.Batch))
	cursor := []byte("0")
	var keys [][]byte
	w, r := conn.Writer(), conn.Reader()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.WriteCommand(cmdSCAN, cursor, cmdCOUNT, count)
		if err := w.Flush(); err != nil {
			return fmt.Errorf("%s %s: SCAN: %w", name, conn.Addr(), err)
		}
		v, err := r.ReadValue()
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			return fmt.Errorf("%s %s: SCAN: %w", name, conn.Addr(), err)
		}
		if len(v.Elems) != 2 {
			return fmt.Errorf("%s %s: SCAN reply %v", name, conn.Addr(), v)
		}
		cursor = v.Elems[0].Str
		for _, k := range v.Elems[1].Elems {
			if !c.wanted(k.Str) || !s.take() {
				continue
			}
			keys = append(keys, k.Str)
			if len(keys) >= c.o.Batch {
				if err := send(keys); err != nil {
					return err
				}
				keys = nil
			}
		}
		if bytes.Equal(cursor, zero) || s.done() {
			if len(keys) == 0 {
				return nil
			}
			return send(keys)
		}
	}
}

// wanted reports whether a key is compared at all.
func (c *Comparer) wanted(k []byte) bool {
	if c.o.SkipPrefix != "" && bytes.HasPrefix(k, []byte(c.o.SkipPrefix)) {
		return false
	}
	return c.o.Filter == nil || c.o.Filter.Key(k)
}
