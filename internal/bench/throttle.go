package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/resync/resync/internal/dialer"
)

// throttleOps is the bound the throttle part sets (--target-max-ops).
const throttleOps = 10_000

// throttleWindow is one measurement of the target's rate; the runs are
// consecutive windows of one backlog, while the bound holds resync back.
const throttleWindow = 3 * time.Second

// throttle runs resync with --target-max-ops 10000 (at-least-once: one
// target command per source command) and puts a backlog on the source
// far above that rate; the commands the target processes per second, in
// consecutive windows while the backlog lasts, are the figure.
// The source is a server of its own, empty: the data set's full sync, at
// the bound, would take minutes and measure nothing more.
func (r *runner) throttle(ctx context.Context) error {
	src, err := r.start(ctx)
	if err != nil {
		return err
	}
	defer src.Stop()
	// Enough for every window and a second more, at the bound.
	requests := throttleOps * (int(throttleWindow.Seconds())*r.cfg.Runs + 2)
	var rates []float64
	err = r.withResync(ctx, nodes{src}, "at-least-once", func(f follower) error {
		dst := f.target()[0]
		c, err := dialer.Dial(ctx, benchDialOptions(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		processed := func() (float64, error) {
			v, err := infoField(c, "stats", "total_commands_processed")
			if err != nil {
				return 0, err
			}
			return strconv.ParseFloat(v, 64)
		}
		l := load{name: "throttle", requests: requests, pipeline: 16, clients: 50}
		if _, _, err := runBenchmark(ctx, r.cfg.RedisBenchmark, src.Port, false, l); err != nil {
			return err
		}
		r.logf("throttle: %d SETs on the source; resync bound to %d ops/s on the target", requests, throttleOps)
		prev, err := processed()
		if err != nil {
			return err
		}
		for run := range r.cfg.Runs {
			t0 := time.Now()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(throttleWindow):
			}
			cur, err := processed()
			if err != nil {
				return err
			}
			// Less the INFO that reads the count.
			rate := (cur - prev - 1) / time.Since(t0).Seconds()
			prev = cur
			rates = append(rates, rate)
			r.logf("throttle run %d/%d: the target processed %.0f commands/s", run+1, r.cfg.Runs, rate)
		}
		return nil
	}, "--target-max-ops", strconv.Itoa(throttleOps))
	if err != nil {
		return err
	}
	id := "throttle.resync.target_ops_per_sec"
	r.rep.add(id, fmt.Sprintf("target commands/s with --target-max-ops %d", throttleOps), "ops/s", rates)
	r.rep.add("throttle.bound", "the bound (--target-max-ops)", "ops/s", []float64{throttleOps})
	r.rep.ratio(id, "throttle.bound", "the bound")
	return nil
}
