package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/resync/resync/internal/redisproc"
)

// cluster measures a cluster(3) → cluster(3) sync of the data set: the
// full sync (time, rates, peak RSS, and how busy each target master is
// meanwhile), then the stream under both loads for both deliveries. A
// native replica has no cluster-to-cluster equivalent: no limits here.
func (r *runner) cluster(ctx context.Context, d DataSet) error {
	r.logf("cluster: starting a source and a target cluster of 3 masters each")
	src, err := r.startCluster(ctx)
	if err != nil {
		return err
	}
	defer src.Stop()
	dst, err := r.startCluster(ctx)
	if err != nil {
		return err
	}
	defer dst.Stop()
	keys := d.Keys()
	if _, err := r.fill(ctx, "data set, into the source cluster", src.Masters, keys, func() error { return fillCluster(ctx, src.Masters, d) }); err != nil {
		return err
	}
	n := len(dst.Masters)
	var secs, keysPS, mbPS, rss, busy, srcCPU, dstCPU, ownCPU []float64
	perMaster := make([][]float64, n)
	for run := range r.cfg.Runs {
		for _, m := range dst.Masters {
			if _, err := m.Do(ctx, "FLUSHALL"); err != nil {
				return err
			}
		}
		res, err := r.resyncFullSync(ctx, src.Masters, dst.Masters, keys)
		if err != nil {
			return fmt.Errorf("full sync: %w", err)
		}
		s := res.elapsed.Seconds()
		secs, keysPS, mbPS = append(secs, s), append(keysPS, float64(keys)/s), append(mbPS, float64(res.rdbBytes)/1e6/s)
		rss, busy = append(rss, mib(res.peakRSS)), append(busy, res.busy)
		srcCPU, dstCPU, ownCPU = append(srcCPU, res.sourceCPU), append(dstCPU, res.targetCPU), append(ownCPU, res.resyncCPU)
		for m, rate := range res.activity {
			perMaster[m] = append(perMaster[m], rate)
		}
		r.logf("cluster full sync run %d/%d: resync %.2fs, %.0f keys/s, %.1f MB/s, peak RSS %.1f MiB; target masters %s commands/s, all busy %.0f%% of the sync",
			run+1, r.cfg.Runs, s, float64(keys)/s, float64(res.rdbBytes)/1e6/s, mib(res.peakRSS), formatRates(res.activity), res.busy)
	}
	dst.Stop() // the stream's runs start clusters of their own
	rep := r.rep
	rep.add("cluster.full.resync.seconds", "resync full sync, cluster(3) → cluster(3)", "s", secs)
	rep.ratio("cluster.full.resync.seconds", "full.resync.seconds", "standalone")
	rep.add("cluster.full.resync.keys_per_sec", "resync full sync keys/s", "keys/s", keysPS)
	rep.add("cluster.full.resync.mb_per_sec", "resync full sync RDB MB/s", "MB/s", mbPS)
	rep.add("cluster.full.resync.peak_rss_mib", "resync peak RSS", "MiB", rss)
	r.addCPU("cluster.full", srcCPU, dstCPU, ownCPU)
	for m, rates := range perMaster {
		rep.add(fmt.Sprintf("cluster.full.target_master_%d.commands_per_sec", m+1),
			fmt.Sprintf("target master %d (slots %s) commands/s during the sync", m+1, slotRange(m, n)), "cmds/s", rates)
	}
	rep.add("cluster.full.all_masters_busy_pct", "share of the sync with every target master busy at once", "%", busy)

	if err := r.warmUp(ctx, src.Masters); err != nil {
		return err
	}
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		fr := &followerRuns{id: "resync_" + underscore(delivery), label: "resync " + delivery, resync: true}
		if err := r.withResync(ctx, src.Masters, delivery, func(f follower) error {
			return r.measureFollower(ctx, src.Masters, f, fr)
		}); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		r.addFollower("cluster.incremental", fr, "")
		for _, l := range []string{"heavy", "moderate"} {
			id := "cluster.incremental." + fr.id + "." + l + ".applied_ops_per_sec"
			rep.ratio(id, "incremental."+fr.id+"."+l+".applied_ops_per_sec", "standalone")
		}
	}
	return nil
}

// slotRange names master i's slots, as StartCluster assigns them.
func slotRange(i, n int) string {
	first, last := redisproc.SlotRange(i, n)
	return strconv.Itoa(first) + "-" + strconv.Itoa(last)
}

func formatRates(rates []float64) string {
	s := ""
	for i, r := range rates {
		if i > 0 {
			s += "/"
		}
		s += formatValue(r)
	}
	return s
}
