// Package verify proves a target equal to its source, or says where it is
// not, while a sync may still be running: a full comparison, then further
// rounds over the keys that differed, so that a key merely in flight is
// not reported; optionally a repair of what still differs, checked again.
//
// Differences are kept in temporary files between rounds, not in memory:
// a target that lacks millions of keys costs disk, not RAM. The files are
// gob, which keeps binary key names exact; reports are JSON.
package verify

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/repair"
	"github.com/resync/resync/internal/task"
)

// Defaults.
const (
	DefaultRounds     = 3
	DefaultRoundDelay = time.Second
	DefaultMaxReport  = 20
)

// Options say what to verify and how.
type Options struct {
	Source, Target dialer.Options
	// Filter means what it means to a sync: selected databases, mapping,
	// key rules; the reserved prefix is always left out.
	Filter filter.Config
	// Compare holds the comparison's settings (tolerance, reverse,
	// sampling, rate, batch, workers); its Filter is set from Filter.
	Compare compare.Options
	// Rounds is how many times a differing key is compared in all before
	// it is reported (default 3); RoundDelay is the pause before each
	// further round (default 1s, doubled each round).
	Rounds     int
	RoundDelay time.Duration
	// Repair copies each differing key from the source again, deletes
	// keys only the target has, then compares those keys again.
	Repair bool
	// Report, when set, receives every difference as a JSON line.
	Report io.Writer
	// MaxReport is how many differences the Summary lists (default 20;
	// negative lists none).
	MaxReport int
	// Progress, when set, is called every few seconds during the first
	// round with the keys compared so far.
	Progress func(keys, diffs int64)
	Logger   *slog.Logger
}

// Summary is the outcome of a verification.
type Summary struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Equal: nothing differs (after the repair, with Repair).
	Equal bool `json:"equal"`
	// Keys is the source keys compared; TargetKeys the target keys looked
	// up on the source by the reverse pass.
	Keys       int64 `json:"keys_checked"`
	TargetKeys int64 `json:"target_keys_checked"`
	// Sample describes the sample ("" when every key was compared).
	Sample string `json:"sample,omitempty"`
	// Per kind, the keys that still differed after the last round.
	Missing     int64 `json:"missing"`
	Extra       int64 `json:"extra"`
	Type        int64 `json:"type_mismatches"`
	Value       int64 `json:"value_mismatches"`
	TTL         int64 `json:"ttl_mismatches"`
	Differences int64 `json:"differences"`
	// FirstRound is how many keys differed in the first round; the
	// others were in flight and agreed in a later round.
	FirstRound int64 `json:"first_round_differences"`
	Rounds     int   `json:"rounds"`
	// Repair's work: keys copied again and deleted, and how many still
	// differ when compared after it.
	Repaired *Repaired `json:"repaired,omitempty"`
	// Seconds is the whole run; KeysPerSec the first round's speed (keys
	// of both passes).
	Seconds    float64 `json:"seconds"`
	KeysPerSec float64 `json:"keys_per_second"`
	// Diffs are the first MaxReport differences.
	Diffs []Difference `json:"diffs"`
}

// Difference is one key that differs, as reports show it.
type Difference struct {
	DB       int    `json:"db"`
	TargetDB int    `json:"target_db"`
	Key      string `json:"key"`
	// KeyBase64 is the key's exact bytes when they are not UTF-8 (JSON
	// cannot carry them in Key).
	KeyBase64 string       `json:"key_base64,omitempty"`
	Kind      compare.Kind `json:"kind"`
	Detail    string       `json:"detail"`
	// Repaired, after a repair, says whether the key is now equal.
	Repaired *bool `json:"repaired,omitempty"`
}

func newDifference(d compare.Diff) Difference {
	out := Difference{DB: d.DB, TargetDB: d.TargetDB, Key: d.Key, Kind: d.Kind, Detail: d.Detail}
	if !utf8.ValidString(d.Key) {
		out.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(d.Key))
	}
	return out
}

func (d Difference) String() string {
	return compare.Diff{DB: d.DB, TargetDB: d.TargetDB, Key: d.Key, Kind: d.Kind, Detail: d.Detail}.String()
}

// Repaired is what a repair did.
type Repaired struct {
	Copied     int64 `json:"copied"`
	Deleted    int64 `json:"deleted"`
	StillDiffs int64 `json:"still_different"`
}

func (o *Options) defaults() {
	if o.Rounds <= 0 {
		o.Rounds = DefaultRounds
	}
	if o.RoundDelay <= 0 {
		o.RoundDelay = DefaultRoundDelay
	}
	if o.MaxReport == 0 {
		o.MaxReport = DefaultMaxReport
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run verifies the target against the source.
func Run(ctx context.Context, o Options) (*Summary, error) {
	o.defaults()
	start := time.Now()
	fc := o.Filter
	fc.ReservedPrefix = task.ReservedPrefix
	f, err := filter.New(fc)
	if err != nil {
		return nil, err
	}
	co := o.Compare
	co.Filter, co.SkipPrefix = f, task.ReservedPrefix
	c := compare.New(o.Source, o.Target, co)
	sum := &Summary{Source: o.Source.Addr, Target: o.Target.Addr, Sample: sampleText(co), Diffs: []Difference{}}

	if err := c.Prepare(ctx); err != nil {
		return sum, err
	}
	cur, err := newSpool()
	if err != nil {
		return nil, err
	}
	defer cur.remove()
	stop := o.watch(c)
	err = c.Walk(ctx, cur.add)
	stop()
	if err == nil {
		err = cur.err
	}
	sum.Keys, sum.TargetKeys, sum.Rounds = c.Keys(), c.TargetKeys(), 1
	if err != nil {
		return sum, err
	}
	sum.FirstRound = cur.n
	if walk := time.Since(start).Seconds(); walk > 0 {
		// The walk's speed: later rounds are mostly waiting.
		sum.KeysPerSec = float64(sum.Keys+sum.TargetKeys) / walk
	}
	o.Logger.Info("first round done", "keys", sum.Keys, "target_keys", sum.TargetKeys, "differences", cur.n,
		"seconds", time.Since(start).Seconds())

	delay := o.RoundDelay
	for sum.Rounds < o.Rounds && cur.n > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return sum, ctx.Err()
		}
		next, err := recheck(ctx, c, cur)
		if err != nil {
			return sum, err
		}
		cur.remove()
		cur = next
		sum.Rounds++
		delay *= 2
		o.Logger.Info("round done", "round", sum.Rounds, "still_different", cur.n)
	}
	defer cur.remove()

	// still holds, after a repair, the keys that differ even so.
	var still map[stillKey]bool
	if o.Repair && cur.n > 0 {
		if still, sum.Repaired, err = o.repair(ctx, c, cur); err != nil {
			return sum, err
		}
	}
	if err := o.summarize(sum, cur, still); err != nil {
		return sum, err
	}
	sum.Equal = sum.Differences == 0 || sum.Repaired != nil && sum.Repaired.StillDiffs == 0
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// watch calls the progress function every few seconds until stopped.
func (o *Options) watch(c *compare.Comparer) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				o.Progress(c.Keys()+c.TargetKeys(), c.Diffs())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// recheckChunk bounds the differences compared again at once.
const recheckChunk = 10_000

// recheck compares again the keys in cur and returns those that still
// differ.
func recheck(ctx context.Context, c *compare.Comparer, cur *spool) (*spool, error) {
	next, err := newSpool()
	if err != nil {
		return nil, err
	}
	err = cur.each(recheckChunk, func(ds []compare.Diff) error {
		if err := c.Recheck(ctx, ds, next.add); err != nil {
			return err
		}
		return next.err
	})
	if err != nil {
		next.remove()
		return nil, err
	}
	return next, nil
}

// repair copies or deletes the keys in cur, then compares them again; it
// returns those that still differ.
func (o *Options) repair(ctx context.Context, c *compare.Comparer, cur *spool) (map[stillKey]bool, *Repaired, error) {
	ro := repair.Options{Source: o.Source, Target: o.Target, Filter: o.Filter, Logger: o.Logger}
	rep := &Repaired{}
	still := map[stillKey]bool{}
	err := cur.each(recheckChunk, func(ds []compare.Diff) error {
		// Copies are read from the source node that holds each key (a
		// cluster's master); deletions go to the target.
		type job struct {
			o      repair.Options
			keys   []repair.Key
			delete bool
		}
		var jobs []*job
		bySource := map[string]*job{}
		var deletes job
		deletes.o, deletes.delete = ro, true
		for _, d := range ds {
			k := repair.Key{DB: d.DB, Key: []byte(d.Key)}
			if d.Kind == compare.Extra {
				deletes.keys = append(deletes.keys, k)
				continue
			}
			src := c.SourceFor(k.Key)
			j := bySource[src.Addr]
			if j == nil {
				j = &job{o: ro}
				j.o.Source = src
				bySource[src.Addr] = j
				jobs = append(jobs, j)
			}
			j.keys = append(j.keys, k)
		}
		for _, j := range append(jobs, &deletes) {
			if len(j.keys) == 0 {
				continue
			}
			do := repair.Copy
			if j.delete {
				do = repair.Delete
			}
			n, err := do(ctx, j.o, j.keys)
			rep.Copied += n.Copied
			rep.Deleted += n.Deleted
			if err != nil {
				return fmt.Errorf("repair: %w", err)
			}
		}
		// What a repair wrote is compared again at once: it is what
		// the source held a moment ago.
		return c.Recheck(ctx, ds, func(d compare.Diff) {
			rep.StillDiffs++
			still[stillKey{d.TargetDB, d.Key}] = true
		})
	})
	o.Logger.Info("repair done", "copied", rep.Copied, "deleted", rep.Deleted, "still_different", rep.StillDiffs)
	return still, rep, err
}

// stillKey names a key that still differs after a repair, by its target
// db: a repaired key that differs again may differ in another way (a key
// the source deleted meanwhile is extra, counted in its target db).
type stillKey struct {
	tdb int
	key string
}

// summarize counts the final differences, keeps the first few and writes
// all of them to the report.
func (o *Options) summarize(sum *Summary, cur *spool, still map[stillKey]bool) error {
	var enc *json.Encoder
	var bw *bufio.Writer
	if o.Report != nil {
		bw = bufio.NewWriter(o.Report)
		enc = json.NewEncoder(bw)
	}
	err := cur.each(recheckChunk, func(ds []compare.Diff) error {
		for _, d := range ds {
			sum.Differences++
			switch d.Kind {
			case compare.Missing:
				sum.Missing++
			case compare.Extra:
				sum.Extra++
			case compare.Type:
				sum.Type++
			case compare.Value:
				sum.Value++
			case compare.TTL:
				sum.TTL++
			}
			line := newDifference(d)
			if still != nil {
				ok := !still[stillKey{d.TargetDB, d.Key}]
				line.Repaired = &ok
			}
			if len(sum.Diffs) < o.MaxReport {
				sum.Diffs = append(sum.Diffs, line)
			}
			if enc != nil {
				if err := enc.Encode(line); err != nil {
					return fmt.Errorf("report: %w", err)
				}
			}
		}
		return nil
	})
	if err == nil && bw != nil {
		if err = bw.Flush(); err != nil {
			err = fmt.Errorf("report: %w", err)
		}
	}
	return err
}

func sampleText(o compare.Options) string {
	switch {
	case o.SampleKeys > 0:
		return fmt.Sprintf("about %d keys picked at random", o.SampleKeys)
	case o.Sample > 0 && o.Sample < 1:
		return fmt.Sprintf("%g%% of the keys picked at random", o.Sample*100)
	}
	return ""
}

// spool is a temporary file of differences.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	enc *gob.Encoder
	n   int64
	err error // the first write error
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "resync-verify-*.gob")
	if err != nil {
		return nil, fmt.Errorf("differences file: %w", err)
	}
	w := bufio.NewWriter(f)
	return &spool{f: f, w: w, enc: gob.NewEncoder(w)}, nil
}

func (s *spool) add(d compare.Diff) {
	if s.err != nil {
		return
	}
	if err := s.enc.Encode(d); err != nil {
		s.err = fmt.Errorf("differences file: %w", err)
		return
	}
	s.n++
}

// each reads the differences back, n at a time.
func (s *spool) each(n int, fn func([]compare.Diff) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("differences file: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("differences file: %w", err)
	}
	dec := gob.NewDecoder(bufio.NewReader(s.f))
	batch := make([]compare.Diff, 0, n)
	for {
		var d compare.Diff
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("differences file: %w", err)
		}
		if batch = append(batch, d); len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

func (s *spool) remove() {
	if s.f == nil {
		return
	}
	s.f.Close()
	os.Remove(s.f.Name())
	s.f = nil
}
