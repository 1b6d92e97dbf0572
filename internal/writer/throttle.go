package writer

import (
	"sync/atomic"
	"time"
)

// throttle bounds the commands and bytes a writer sends per second (a
// token bucket each): --target-max-ops and --target-max-bytes, to spare
// a production target. A command bigger than a whole second's bytes
// still goes, and the ones after it wait off the debt.
type throttle struct {
	ops, bytes       float64 // per second; 0 is no bound
	opsTok, bytesTok float64
	last             time.Time
	waited           atomic.Int64 // nanoseconds spent waiting, for the status
}

// burst is how much of a second's allowance may go at once: small, so
// the rate holds over short spans too.
const burst = 100 * time.Millisecond

func newThrottle(ops, bytes int) *throttle {
	if ops <= 0 && bytes <= 0 {
		return nil
	}
	t := &throttle{ops: float64(ops), bytes: float64(bytes), last: time.Now()}
	t.opsTok, t.bytesTok = t.capacity(t.ops), t.capacity(t.bytes)
	return t
}

func (t *throttle) capacity(rate float64) float64 {
	return max(rate*burst.Seconds(), 1)
}

// take spends one command of size bytes and says how long to wait
// before sending it (0: at once).
func (t *throttle) take(size int) time.Duration {
	now := time.Now()
	elapsed := now.Sub(t.last).Seconds()
	t.last = now
	var wait float64
	if t.ops > 0 {
		t.opsTok = min(t.opsTok+elapsed*t.ops, t.capacity(t.ops)) - 1
		if t.opsTok < 0 {
			wait = -t.opsTok / t.ops
		}
	}
	if t.bytes > 0 {
		t.bytesTok = min(t.bytesTok+elapsed*t.bytes, t.capacity(t.bytes)) - float64(size)
		if t.bytesTok < 0 {
			wait = max(wait, -t.bytesTok/t.bytes)
		}
	}
	return time.Duration(wait * float64(time.Second))
}

// Throttled is how long the writer has waited on --target-max-ops and
// --target-max-bytes.
func (w *Writer) Throttled() time.Duration {
	if w.limit == nil {
		return 0
	}
	return time.Duration(w.limit.waited.Load())
}

// pace waits what the throttle says before a command of size bytes; what
// is buffered goes out first, so that it is not held back with it. A
// closing writer stops waiting.
func (w *Writer) pace(size int) error {
	d := w.limit.take(size)
	if d <= 0 {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	start := time.Now()
	select {
	case <-timer.C:
	case <-w.closing:
	}
	w.limit.waited.Add(int64(time.Since(start)))
	return w.Err()
}
