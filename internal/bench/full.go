package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/resync/resync/internal/redisproc"
)

// fullResult is one timed resync full sync.
type fullResult struct {
	elapsed  time.Duration
	rdbBytes int64
	peakRSS  int64
	// activity is each target master's commands per second over the
	// sync, and busy the share of the sync's samples in which every
	// master was busy at once (cluster targets only).
	activity []float64
	busy     float64
	// The CPU seconds each party used over the sync: the sources (their
	// snapshots' forks included), the targets, resync.
	sourceCPU, targetCPU, resyncCPU float64
}

// resyncFullSync times one resync full sync from sources into targets
// (empty): from the process's start until /status says synchronizing
// and the targets hold every key. With several target masters it also
// samples how busy each one is meanwhile.
func (r *runner) resyncFullSync(ctx context.Context, sources, targets []*redisproc.Server, keys int) (fullResult, error) {
	var res fullResult
	var act *activity
	if len(targets) > 1 {
		var err error
		if act, err = startActivity(ctx, targets); err != nil {
			return res, err
		}
		defer act.stop()
	}
	srcBefore, err := readServerCPU(ctx, sources)
	if err != nil {
		return res, err
	}
	dstBefore, err := readServerCPU(ctx, targets)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	p, err := r.startResync(ctx, sources[0], targets[0], "exactly-once")
	if err != nil {
		return res, err
	}
	doc, err := p.waitSynced(ctx, targets, keys)
	res.elapsed = time.Since(t0)
	if err == nil {
		res.peakRSS, err = p.peakRSS()
	}
	if err == nil {
		res.resyncCPU, err = p.cpuSeconds()
	}
	if err == nil {
		var dst serverCPU
		if dst, err = readServerCPU(ctx, targets); err == nil {
			res.targetCPU = dst.since(dstBefore).main
		}
	}
	if err == nil {
		// A fork's time counts once the source has reaped it.
		var src serverCPU
		if err = waitNoFork(ctx, sources); err == nil {
			if src, err = readServerCPU(ctx, sources); err == nil {
				d := src.since(srcBefore)
				res.sourceCPU = d.main + d.children
			}
		}
	}
	if act != nil {
		res.activity, res.busy = act.stop()
	}
	if serr := p.stop(); err == nil {
		err = serr
	}
	res.rdbBytes = rdbBytes(doc)
	return res, err
}

// fullSync measures the full sync of the data set in src: limit A (a
// native replica), limit B (RESTORE through redis-cli --pipe) and
// resync, interleaved run by run so that the machine's drift touches
// them alike; and resync's peak RSS.
func (r *runner) fullSync(ctx context.Context, src *redisproc.Server, d DataSet) error {
	full := r.cfg.wants(PartFull)
	keys := d.Keys()
	var file string
	if full {
		r.logf("limit B: writing the RESTORE file from DUMP payloads")
		var size int64
		var err error
		if file, size, err = r.restoreFile(ctx, src, d); err != nil {
			return err
		}
		r.logf("limit B: RESTORE file of %.1f MiB", mib(size))
	}
	var limA, limB, limBCPU, secs, keysPS, mbPS, rss, srcCPU, dstCPU, ownCPU []float64
	for run := range r.cfg.Runs {
		if full {
			a, err := r.limitA(ctx, src, keys)
			if err != nil {
				return fmt.Errorf("limit A: %w", err)
			}
			limA = append(limA, a.Seconds())
			b, cpu, err := r.limitB(ctx, file, keys)
			if err != nil {
				return fmt.Errorf("limit B: %w", err)
			}
			limB, limBCPU = append(limB, b.Seconds()), append(limBCPU, cpu)
			r.logf("full sync run %d/%d: limit A (native replica) %.2fs, limit B (redis-cli --pipe) %.2fs", run+1, r.cfg.Runs, a.Seconds(), b.Seconds())
		}
		dst, err := r.start(ctx)
		if err != nil {
			return err
		}
		res, err := r.resyncFullSync(ctx, []*redisproc.Server{src}, []*redisproc.Server{dst}, keys)
		dst.Stop()
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		s := res.elapsed.Seconds()
		secs, keysPS, mbPS, rss = append(secs, s), append(keysPS, float64(keys)/s), append(mbPS, float64(res.rdbBytes)/1e6/s), append(rss, mib(res.peakRSS))
		srcCPU, dstCPU, ownCPU = append(srcCPU, res.sourceCPU), append(dstCPU, res.targetCPU), append(ownCPU, res.resyncCPU)
		r.logf("full sync run %d/%d: resync %.2fs, %.0f keys/s, %.1f MB/s, peak RSS %.1f MiB", run+1, r.cfg.Runs, s, float64(keys)/s, float64(res.rdbBytes)/1e6/s, mib(res.peakRSS))
	}
	rep := r.rep
	if full {
		rep.add("full.native_replica.seconds", "limit A: native replica full sync", "s", limA)
		rep.add("full.restore_pipe.seconds", "limit B: RESTORE via redis-cli --pipe", "s", limB)
		rep.add("full.resync.seconds", "resync full sync", "s", secs)
		rep.ratio("full.resync.seconds", "full.native_replica.seconds", "limit A")
		rep.ratio("full.resync.seconds", "full.restore_pipe.seconds", "limit B")
		rep.add("full.resync.keys_per_sec", "resync full sync keys/s", "keys/s", keysPS)
		rep.add("full.resync.mb_per_sec", "resync full sync RDB MB/s", "MB/s", mbPS)
		r.addCPU("full", srcCPU, dstCPU, ownCPU)
		rep.add("full.restore_pipe.target_cpu_seconds", "limit B: the target's CPU", "CPU s", limBCPU)
	}
	if r.cfg.wants(PartMemory) {
		f := rep.add("memory.resync.peak_rss_mib", "resync peak RSS, full sync", "MiB", rss)
		if used := rep.DataSet.UsedMemoryBytes; used > 0 {
			f.Ratios = append(f.Ratios, Ratio{To: "data_set.used_memory_bytes", Label: "source used_memory", Value: f.Median / mib(used)})
		}
	}
	return nil
}

// bigKeys measures a full sync of the big keys alone, by resync (time
// and peak RSS) and by a native replica.
func (r *runner) bigKeys(ctx context.Context) error {
	b := r.cfg.BigKeys
	src, err := r.start(ctx)
	if err != nil {
		return err
	}
	defer src.Stop()
	info, err := r.fill(ctx, "big keys", nodes{src}, b.Keys(), func() error { return fillBig(ctx, benchDialOptions(src), b) })
	if err != nil {
		return err
	}
	info.BigElements, info.BigStringBytes = b.Elements, b.StringBytes
	r.rep.BigDataSet = info
	var native, secs, rss []float64
	for run := range r.cfg.Runs {
		a, err := r.limitA(ctx, src, b.Keys())
		if err != nil {
			return fmt.Errorf("native replica: %w", err)
		}
		native = append(native, a.Seconds())
		dst, err := r.start(ctx)
		if err != nil {
			return err
		}
		res, err := r.resyncFullSync(ctx, []*redisproc.Server{src}, []*redisproc.Server{dst}, b.Keys())
		dst.Stop()
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		secs, rss = append(secs, res.elapsed.Seconds()), append(rss, mib(res.peakRSS))
		r.logf("big keys run %d/%d: native replica %.2fs; resync %.2fs, peak RSS %.1f MiB", run+1, r.cfg.Runs, a.Seconds(), res.elapsed.Seconds(), mib(res.peakRSS))
	}
	rep := r.rep
	f := rep.add("memory.big.resync.peak_rss_mib", "resync peak RSS, big keys", "MiB", rss)
	f.Ratios = append(f.Ratios, Ratio{To: "big_data_set.used_memory_bytes", Label: "source used_memory", Value: f.Median / mib(info.UsedMemoryBytes)})
	rep.add("memory.big.native_replica.seconds", "big keys: native replica full sync", "s", native)
	rep.add("memory.big.resync.seconds", "big keys: resync full sync", "s", secs)
	rep.ratio("memory.big.resync.seconds", "memory.big.native_replica.seconds", "native replica")
	return nil
}

// addCPU reports the CPU each party used over resync's full syncs, and
// what their sum takes at least on this machine's CPUs: the three run at
// once, so a sync cannot end sooner, however little resync itself uses.
func (r *runner) addCPU(prefix string, src, dst, own []float64) {
	rep := r.rep
	rep.add(prefix+".cpu.source_seconds", "CPU during resync's sync: the source (its snapshot's fork included)", "CPU s", src)
	rep.add(prefix+".cpu.target_seconds", "CPU during resync's sync: the target", "CPU s", dst)
	rep.add(prefix+".cpu.resync_seconds", "CPU during resync's sync: resync", "CPU s", own)
	bound := make([]float64, len(src))
	for i := range bound {
		bound[i] = (src[i] + dst[i] + own[i]) / float64(runtime.NumCPU())
	}
	rep.add(prefix+".cpu.bound_seconds", fmt.Sprintf("their sum over %d CPUs: the least time this work takes here", runtime.NumCPU()), "s", bound)
	rep.ratio(prefix+".resync.seconds", prefix+".cpu.bound_seconds", "the CPU bound")
}
