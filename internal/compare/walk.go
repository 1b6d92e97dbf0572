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
	keys    [][]byte
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

// sampler picks keys at random and stops after a number of them.
type sampler struct {
	p     float64 // probability of taking a key; 1 takes all
	limit int64   // stop after this many; 0 is no limit
	taken int64
}

func (s *sampler) take() bool {
	if s.limit > 0 && s.taken >= s.limit {
		return false
	}
	if s.p < 1 && rand.Float64() >= s.p {
		return false
	}
	s.taken++
	return true
}

func (s *sampler) done() bool { return s.limit > 0 && s.taken >= s.limit }

// newSampler sizes a sampler for a key space of total keys.
func (c *Comparer) newSampler(total int64) *sampler {
	s := &sampler{p: 1}
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
	return s
}

// limiter spaces out reads to a number of keys per second.
type limiter struct {
	rate float64
	next time.Time
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	d := l.next.Sub(now)
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
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

// sampler returns the sampler for a walk of dbs on one side.
func (c *Comparer) sampler(ctx context.Context, side dialer.Options, dbs []int) (*sampler, error) {
	if c.o.SampleKeys <= 0 && c.o.Sample <= 0 {
		return &sampler{p: 1}, nil
	}
	conn, err := dialer.Dial(ctx, side)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	total, err := dbSizes(conn, dbs)
	if err != nil {
		return nil, err
	}
	return c.newSampler(total), nil
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

// scanSource sends the source keys of db, in batches, to be compared
// with the target's in tdb.
func (c *Comparer) scanSource(ctx context.Context, db, tdb int, s *sampler, jobs chan<- job) error {
	conn, err := dialer.Dial(ctx, c.source)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer conn.Close()
	return c.scan(ctx, conn, db, s, func(keys [][]byte) job {
		return job{db: db, tdb: tdb, keys: keys}
	}, jobs)
}

// scanTarget sends the target keys of tdb to be looked up on the source.
func (c *Comparer) scanTarget(ctx context.Context, tdb int, s *sampler, jobs chan<- job) error {
	conn, err := dialer.Dial(ctx, c.target)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer conn.Close()
	return c.scan(ctx, conn, tdb, s, func(keys [][]byte) job {
		return job{db: tdb, tdb: tdb, keys: keys, reverse: true, sources: c.sources[tdb]}
	}, jobs)
}

// scan walks db on conn with SCAN, leaving out the keys the options
// exclude, and sends them in batches.
func (c *Comparer) scan(ctx context.Context, conn *dialer.Conn, db int, s *sampler, mk func([][]byte) job, jobs chan<- job) error {
	if s.done() {
		return nil
	}
	if _, err := conn.Do("SELECT", strconv.Itoa(db)); err != nil {
		return err
	}
	lim := c.newLimiter()
	count := []byte(strconv.Itoa(c.o.Batch))
	cursor := []byte("0")
	var keys [][]byte
	send := func() error {
		if len(keys) == 0 {
			return nil
		}
		if err := lim.wait(ctx, len(keys)); err != nil {
			return err
		}
		select {
		case jobs <- mk(keys):
		case <-ctx.Done():
			return ctx.Err()
		}
		keys = nil
		return nil
	}
	w, r := conn.Writer(), conn.Reader()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.WriteCommand(cmdSCAN, cursor, cmdCOUNT, count)
		if err := w.Flush(); err != nil {
			return fmt.Errorf("%s: SCAN: %w", conn.Addr(), err)
		}
		v, err := r.ReadValue()
		if err != nil {
			return fmt.Errorf("%s: SCAN: %w", conn.Addr(), err)
		}
		if err := v.Err(); err != nil {
			return fmt.Errorf("%s: SCAN: %w", conn.Addr(), err)
		}
		if len(v.Elems) != 2 {
			return fmt.Errorf("%s: SCAN reply %v", conn.Addr(), v)
		}
		cursor = v.Elems[0].Str
		for _, k := range v.Elems[1].Elems {
			if !c.wanted(k.Str) || !s.take() {
				continue
			}
			keys = append(keys, k.Str)
			if len(keys) >= c.o.Batch {
				if err := send(); err != nil {
					return err
				}
			}
		}
		if bytes.Equal(cursor, zero) || s.done() {
			return send()
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
