package bench

import "time"

// offsetClock remembers when the source reached which replication offset,
// so that a follower's offset can be read as a lag in time: how long ago
// the source was where the follower is now. It is how a native replica's
// lag is measured (and resync's, beside its heartbeat), from polling
// INFO replication on both every lagInterval; between two samples the
// source is taken to advance evenly.
type offsetClock struct {
	times []time.Time
	offs  []int64
}

// add records that the source's offset was off at t; samples come in
// time order.
func (c *offsetClock) add(t time.Time, off int64) {
	if n := len(c.offs); n > 0 && off < c.offs[n-1] {
		off = c.offs[n-1] // offsets only grow; a regression is noise
	}
	c.times, c.offs = append(c.times, t), append(c.offs, off)
}

// lag is how far behind, at now, a follower that has applied the
// source's stream up to offset applied is: now minus when the source's
// offset first passed applied. Zero when it has caught up with the last
// sample; at least the age of the first sample when it is behind that.
func (c *offsetClock) lag(now time.Time, applied int64) time.Duration {
	n := len(c.offs)
	if n == 0 || applied >= c.offs[n-1] {
		return 0
	}
	if applied < c.offs[0] {
		return max(0, now.Sub(c.times[0]))
	}
	// The first sample past applied; the one before it is at or below.
	i := 1
	for c.offs[i] <= applied {
		i++
	}
	t0, t1 := c.times[i-1], c.times[i]
	frac := float64(applied-c.offs[i-1]) / float64(c.offs[i]-c.offs[i-1])
	passed := t0.Add(time.Duration(frac * float64(t1.Sub(t0))))
	return max(0, now.Sub(passed))
}
