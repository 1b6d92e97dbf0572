package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// Polling while a load runs.
const (
	lagInterval     = 50 * time.Millisecond // the issue's: /status every 50 ms
	catchUpInterval = time.Millisecond
	catchUpLimit    = 10 * time.Minute
	settle          = 3 * heartbeatInterval
)

// loadResult is what one load run measured.
type loadResult struct {
	sourceOps, appliedOps float64
	// Heartbeat lag percentiles (resync), and the lag read from offsets;
	// hbN and offN count their samples.
	hbP50, hbP99, offP50, offP99 float64
	hbN, offN                    int
	catchUp                      time.Duration
	// The machine over the load: the share of its CPU time spent busy,
	// and the mean count of tasks runnable (on a CPU or waiting for one)
	// at the lag samples; past the CPU count, every task waits its turn.
	busyPct, runnable float64
}

// runLoad runs one redis-benchmark load on src while f follows, polling
// f's lag every lagInterval; then writes a marker key on the source and
// times its arrival on f's target.
func (r *runner) runLoad(ctx context.Context, src nodes, f follower, l load, marker string) (loadResult, error) {
	var res loadResult
	// A few idle heartbeats first: the lag the follower reports is the
	// last heartbeat's, which must not be one from the previous load.
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(settle):
	}
	a0, err := f.applied(ctx)
	if err != nil {
		return res, err
	}
	sctx, stop := context.WithCancel(ctx)
	type lags struct {
		hb, off           []float64
		earlyHB, earlyOff []float64
		runnable          []float64
		err               error
	}
	sampled := make(chan lags, 1)
	// The lag resync reports is that of the last heartbeat applied: in
	// the load's first heartbeat interval, one from before the load.
	// Samples then count only for a load too short to have others.
	from := time.Now().Add(heartbeatInterval)
	go func() {
		var got lags
		defer func() {
			if len(got.hb) == 0 && len(got.off) == 0 {
				got.hb, got.off = got.earlyHB, got.earlyOff
			}
			sampled <- got
		}()
		clocks := make(map[string]*offsetClock, len(src))
		conns := make(map[string]*dialer.Conn, len(src))
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for _, s := range src {
			c, err := dialer.Dial(sctx, benchDialOptions(s))
			if err != nil {
				got.err = err
				return
			}
			conns[s.Addr], clocks[s.Addr] = c, &offsetClock{}
		}
		tick := time.NewTicker(lagInterval)
		defer tick.Stop()
		for {
			// The follower first, then the source: the source's offsets
			// are then at least those the follower had reached.
			s, err := f.sample(sctx)
			now := time.Now()
			for addr, c := range conns {
				if err != nil {
					break
				}
				var v string
				if v, err = infoField(c, "replication", "master_repl_offset"); err == nil {
					var off int64
					off, err = strconv.ParseInt(v, 10, 64)
					clocks[addr].add(time.Now(), off)
				}
			}
			if err != nil {
				if sctx.Err() == nil {
					got.err = err
				}
				return
			}
			if m, err := readMachineStat(); err == nil {
				got.runnable = append(got.runnable, float64(m.runnable))
			}
			hbTo, offTo := &got.hb, &got.off
			if now.Before(from) {
				hbTo, offTo = &got.earlyHB, &got.earlyOff
			}
			if s.lagMs != nil {
				*hbTo = append(*hbTo, float64(*s.lagMs))
			}
			// The lag of the shard furthest behind, as resync's own.
			var worst time.Duration
			for addr, applied := range s.offsets {
				c, ok := clocks[addr]
				if !ok {
					got.err = fmt.Errorf("the follower names source %s, not one the bench started", addr)
					return
				}
				worst = max(worst, c.lag(now, applied))
			}
			if len(s.offsets) > 0 {
				*offTo = append(*offTo, float64(worst)/float64(time.Millisecond))
			}
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	m0, err := readMachineStat()
	if err != nil {
		stop()
		<-sampled
		return res, err
	}
	rps, elapsed, err := runBenchmark(ctx, r.cfg.RedisBenchmark, src[0].Port, len(src) > 1, l)
	end := time.Now()
	m1, merr := readMachineStat()
	stop()
	if err == nil {
		err = merr
	}
	lg := <-sampled
	if err == nil {
		err = lg.err
	}
	if err != nil {
		return res, err
	}
	a1, err := f.applied(ctx)
	if err != nil {
		return res, err
	}
	if res.catchUp, err = catchUp(ctx, src, f.target(), marker, end); err != nil {
		return res, err
	}
	res.sourceOps, res.appliedOps = rps, float64(a1-a0)/elapsed.Seconds()
	res.hbN, res.offN = len(lg.hb), len(lg.off)
	res.hbP50, res.hbP99 = percentile(lg.hb, 50), percentile(lg.hb, 99)
	res.offP50, res.offP99 = percentile(lg.off, 50), percentile(lg.off, 99)
	res.busyPct = busyPct(m0, m1)
	for _, n := range lg.runnable {
		res.runnable += n / float64(len(lg.runnable))
	}
	return res, nil
}

// catchUp writes a marker key on the source — on a cluster one on each
// master, every shard's stream must be applied — and returns how long
// after since (the load's end) they all exist on the target.
func catchUp(ctx context.Context, src, dst nodes, marker string, since time.Time) (time.Duration, error) {
	keys := []string{marker}
	if len(src) > 1 {
		keys = keys[:0]
		for i := range src {
			first, _ := redisproc.SlotRange(i, len(src))
			keys = append(keys, marker+":{"+cluster.Tag(first)+"}")
		}
	}
	for _, k := range keys {
		if _, err := src.owner(k).Do(ctx, "SET", k, "1"); err != nil {
			return 0, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpLimit)
	defer cancel()
	for _, k := range keys {
		c, err := dialer.Dial(ctx, benchDialOptions(dst.owner(k)))
		if err != nil {
			return 0, err
		}
		err = poll(ctx, catchUpInterval, func() error {
			v, err := c.Do("EXISTS", k)
			if err != nil {
				return err
			}
			if v.Int == 1 {
				return nil
			}
			return errNotYet
		})
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("the marker %s never reached %s (%s)", k, dst.owner(k).Addr, catchUpLimit)
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(since), nil
}

// infoField reads one field of an INFO section on c.
func infoField(c *dialer.Conn, section, field string) (string, error) {
	v, err := c.Do("INFO", section)
	if err != nil {
		return "", err
	}
	return redisproc.InfoField(v.Text(), field), nil
}

// waitLag waits until resync has measured a lag: a heartbeat has made
// the round trip, so the loads' samples are not empty.
func waitLag(ctx context.Context, f follower) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := poll(ctx, 10*time.Millisecond, func() error {
		s, err := f.sample(ctx)
		if err != nil {
			return err
		}
		if s.lagMs == nil {
			return errNotYet
		}
		return nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("resync measured no lag within a minute of synchronizing")
	}
	return err
}

// followerRuns are the figures of one follower over every run of both
// loads.
type followerRuns struct {
	id, label string // "resync_exactly_once", "resync exactly-once"
	resync    bool
	results   map[string][]loadResult // by load name
}

// measureFollower runs each load cfg.Runs times while f follows src.
func (r *runner) measureFollower(ctx context.Context, src nodes, f follower, fr *followerRuns) error {
	fr.results = map[string][]loadResult{}
	for _, l := range []load{heavyLoad(r.cfg.BenchRequests), moderateLoad(r.cfg.ModerateRequests)} {
		for run := range r.cfg.Runs {
			marker := fmt.Sprintf("bench:marker:%s:%s:%d", fr.id, l.name, run)
			res, err := r.runLoad(ctx, src, f, l, marker)
			if err != nil {
				return fmt.Errorf("%s, %s load: %w", fr.label, l.name, err)
			}
			fr.results[l.name] = append(fr.results[l.name], res)
			lag := fmt.Sprintf("offset lag p50 %.1f ms p99 %.1f ms (%d samples)", res.offP50, res.offP99, res.offN)
			if fr.resync {
				lag = fmt.Sprintf("heartbeat lag p50 %.0f ms p99 %.0f ms (%d samples); ", res.hbP50, res.hbP99, res.hbN) + lag
			}
			r.logf("%s, %s load run %d/%d: source %.0f ops/s, applied %.0f ops/s, %s, catch-up %.3fs; CPUs %.0f%% busy, %.1f tasks runnable",
				fr.label, l.name, run+1, r.cfg.Runs, res.sourceOps, res.appliedOps, lag, res.catchUp.Seconds(), res.busyPct, res.runnable)
		}
	}
	return nil
}

// addFollower records a follower's figures under prefix, with ratios to
// the native replica's figures under native ("" for none).
func (r *runner) addFollower(prefix string, fr *followerRuns, native string) {
	for _, l := range []string{"heavy", "moderate"} {
		results := fr.results[l]
		pick := func(get func(loadResult) float64) []float64 {
			v := make([]float64, len(results))
			for i, res := range results {
				v[i] = get(res)
			}
			return v
		}
		base := prefix + "." + fr.id + "." + l + "."
		label := fr.label + ", " + l + " load: "
		type fig struct {
			id, label, unit string
			get             func(loadResult) float64
			ok              bool
		}
		for _, f := range []fig{
			{"source_ops_per_sec", "source ops/s (redis-benchmark)", "ops/s", func(x loadResult) float64 { return x.sourceOps }, true},
			{"applied_ops_per_sec", "applied ops/s during the load", "ops/s", func(x loadResult) float64 { return x.appliedOps }, true},
			{"heartbeat_lag_p50_ms", "heartbeat lag p50", "ms", func(x loadResult) float64 { return x.hbP50 }, fr.resync},
			{"heartbeat_lag_p99_ms", "heartbeat lag p99", "ms", func(x loadResult) float64 { return x.hbP99 }, fr.resync},
			{"offset_lag_p50_ms", "offset lag p50", "ms", func(x loadResult) float64 { return x.offP50 }, true},
			{"offset_lag_p99_ms", "offset lag p99", "ms", func(x loadResult) float64 { return x.offP99 }, true},
			{"catch_up_seconds", "catch-up after the load", "s", func(x loadResult) float64 { return x.catchUp.Seconds() }, true},
			{"machine_cpu_busy_pct", "the machine's CPUs busy during the load", "%", func(x loadResult) float64 { return x.busyPct }, true},
			{"runnable_tasks", "tasks runnable (on a CPU or waiting), mean", "tasks", func(x loadResult) float64 { return x.runnable }, true},
		} {
			if !f.ok {
				continue
			}
			r.rep.add(base+f.id, label+f.label, f.unit, pick(f.get))
			if native != "" {
				r.rep.ratio(base+f.id, prefix+"."+native+"."+l+"."+f.id, "native")
			}
		}
	}
}

// incremental measures the stream on a standalone source: resync with
// each delivery, and a native replica, each into a fresh server, under
// both loads.
func (r *runner) incremental(ctx context.Context, src *redisproc.Server) error {
	if err := r.warmUp(ctx, nodes{src}); err != nil {
		return err
	}
	var all []*followerRuns
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		fr := &followerRuns{id: "resync_" + underscore(delivery), label: "resync " + delivery, resync: true}
		if err := r.withResync(ctx, nodes{src}, delivery, func(f follower) error {
			return r.measureFollower(ctx, nodes{src}, f, fr)
		}); err != nil {
			return err
		}
		all = append(all, fr)
	}
	fr := &followerRuns{id: "native_replica", label: "native replica"}
	rep, err := r.start(ctx)
	if err != nil {
		return err
	}
	defer rep.Stop()
	r.logf("native replica: full sync before the loads")
	if err := replicate(ctx, rep, src); err != nil {
		return fmt.Errorf("native replica: %w", err)
	}
	c, err := dialer.Dial(ctx, benchDialOptions(rep))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := r.measureFollower(ctx, nodes{src}, &nativeFollower{c: c, replica: rep, source: src}, fr); err != nil {
		return err
	}
	rep.Stop()
	// The native replica's figures first: the reference of the ratios.
	r.addFollower("incremental", fr, "")
	for _, f := range all {
		r.addFollower("incremental", f, fr.id)
	}
	return nil
}

// warmUp runs the heavy load once on the source, untimed, before any
// follower: its new keys are then in every follower's full sync, and
// every measured run overwrites keys rather than the first making them.
func (r *runner) warmUp(ctx context.Context, src nodes) error {
	r.logf("warming up: one untimed heavy load on the source")
	_, _, err := runBenchmark(ctx, r.cfg.RedisBenchmark, src[0].Port, len(src) > 1, heavyLoad(r.cfg.BenchRequests))
	return err
}

// withResync starts a fresh target (or empties the cluster's), runs
// resync into it until synchronizing, runs measure, and stops both.
func (r *runner) withResync(ctx context.Context, src nodes, delivery string, measure func(follower) error, extra ...string) error {
	var dst nodes
	if len(src) == 1 {
		s, err := r.start(ctx)
		if err != nil {
			return err
		}
		defer s.Stop()
		dst = nodes{s}
	} else {
		c, err := r.startCluster(ctx)
		if err != nil {
			return err
		}
		defer c.Stop()
		dst = c.Masters
	}
	keys, err := dbsize(ctx, src)
	if err != nil {
		return err
	}
	r.logf("resync %s: full sync before the loads", delivery)
	p, err := r.startResync(ctx, src[0], dst[0], delivery, extra...)
	if err != nil {
		return err
	}
	// The source's keys less resync's heartbeats, which never reach the target.
	if _, err := p.waitSynced(ctx, dst, int(keys)-len(src)); err != nil {
		p.stop()
		return err
	}
	f := resyncFollower{p: p, dst: dst}
	err = waitLag(ctx, f)
	if err == nil {
		err = measure(f)
	}
	if serr := p.stop(); err == nil {
		err = serr
	}
	return err
}

// underscore is s with dashes as underscores, for figure IDs.
func underscore(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}
