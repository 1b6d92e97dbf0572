package bench

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// Sampling of the target masters' activity during a cluster full sync.
const (
	activityInterval = 100 * time.Millisecond
	// busyRate is the rate (commands/s) above which a master counts as
	// busy in an interval: far above the sampler's own INFO.
	busyRate = 1000
)

// activity samples total_commands_processed on each server every
// activityInterval, to show whether they work at once or in turn.
type activity struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	n      int
	times  []time.Time
	counts [][]int64 // counts[i] are the servers' counters at times[i]
	rates  []float64
	busy   float64
}

// startActivity starts sampling; stop ends it.
func startActivity(ctx context.Context, servers []*redisproc.Server) (*activity, error) {
	conns := make([]*dialer.Conn, 0, len(servers))
	for _, s := range servers {
		c, err := dialer.Dial(ctx, benchDialOptions(s))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &activity{cancel: cancel, done: make(chan struct{}), n: len(servers)}
	go func() {
		defer close(a.done)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		tick := time.NewTicker(activityInterval)
		defer tick.Stop()
		for {
			counts := make([]int64, len(conns))
			for i, c := range conns {
				v, err := c.Do("INFO", "stats")
				if err != nil {
					return // the figures end here; the sync's own checks say why
				}
				counts[i], _ = strconv.ParseInt(redisproc.InfoField(v.Text(), "total_commands_processed"), 10, 64)
			}
			a.times, a.counts = append(a.times, time.Now()), append(a.counts, counts)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return a, nil
}

// stop ends the sampling (once; later calls return the same) and
// returns each server's mean rate over the busy window — from the first
// interval in which any server was busy to the last — and the share of
// that window's intervals in which every server was busy.
func (a *activity) stop() (rates []float64, busy float64) {
	a.once.Do(func() {
		a.cancel()
		<-a.done
		a.rates, a.busy = activityFigures(a.times, a.counts, a.n)
	})
	return a.rates, a.busy
}

// activityFigures computes stop's figures from the samples.
func activityFigures(times []time.Time, counts [][]int64, n int) (rates []float64, busy float64) {
	rates = make([]float64, n)
	first, last := -1, -1
	busyAll := make([]bool, len(times))
	for i := 1; i < len(times); i++ {
		dt := times[i].Sub(times[i-1]).Seconds()
		any, all := false, true
		for m := range n {
			r := float64(counts[i][m]-counts[i-1][m]) / dt
			any = any || r >= busyRate
			all = all && r >= busyRate
		}
		busyAll[i] = all
		if any {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return rates, 0
	}
	window := times[last].Sub(times[first-1]).Seconds()
	for m := range n {
		rates[m] = float64(counts[last][m]-counts[first-1][m]) / window
	}
	k := 0
	for i := first; i <= last; i++ {
		if busyAll[i] {
			k++
		}
	}
	return rates, 100 * float64(k) / float64(last-first+1)
}
