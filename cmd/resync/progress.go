package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/resync/resync/internal/task"
)

// Progress modes (--progress).
const (
	progressAuto = "auto" // the bar on a terminal, else log lines
	progressBar  = "bar"
	progressLog  = "log"
	progressOff  = "off"
)

// How often the bar is redrawn, and the span its rates are measured over
// (steadier than between two redraws).
const (
	barInterval = 500 * time.Millisecond
	rateWindow  = 5 * time.Second
)

// progressMode resolves --progress: auto is the bar when stderr is a
// terminal.
func progressMode(mode string, stderr io.Writer) (string, error) {
	switch mode {
	case progressBar, progressLog, progressOff:
		return mode, nil
	case progressAuto:
		if isTerminal(stderr) {
			return progressBar, nil
		}
		return progressLog, nil
	}
	return "", fmt.Errorf("--progress %q: auto, bar, log or off", mode)
}

// isTerminal tells whether w is a terminal that understands cursor
// movement.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startProgress shows t's progress (the bar on d, or lines on log) until
// ctx is canceled or the returned stop is called; stop waits for the
// display's goroutine to end.
func startProgress(ctx context.Context, t *task.Task, mode string, d *termDisplay, log *slog.Logger, interval time.Duration) (stop func()) {
	if mode == progressOff {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if mode == progressBar {
			barLoop(ctx, t.Status, d)
		} else {
			logLoop(ctx, t.Status, log, interval)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// barLoop redraws the progress block about twice a second.
func barLoop(ctx context.Context, status func() task.Status, d *termDisplay) {
	tick := time.NewTicker(barInterval)
	defer tick.Stop()
	// The last block stays on the screen; later log lines go below it.
	defer d.release()
	var window []progressSample
	for {
		cur := progressSample{at: time.Now(), st: status()}
		for len(window) > 1 && cur.at.Sub(window[0].at) > rateWindow {
			window = window[1:]
		}
		var prev *progressSample
		if len(window) > 0 {
			prev = &window[0]
		}
		d.show(renderBar(measure(cur, prev)))
		window = append(window, cur)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// logLoop logs a full sync's progress every interval, and the steady
// state's summary every three.
func logLoop(ctx context.Context, status func() task.Status, log *slog.Logger, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	prev := progressSample{at: time.Now(), st: status()}
	lastSummary := prev.at
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cur := progressSample{at: time.Now(), st: status()}
		f := measure(cur, &prev)
		switch {
		case f.fullSync:
			logFullSync(log, f)
		case steady(f.state) && cur.at.Sub(lastSummary) >= 3*interval-interval/2:
			logSummary(log, f)
			lastSummary = cur.at
		}
		prev = cur
	}
}

// steady tells whether a task in this state gets the one-line summary.
func steady(state string) bool {
	return state == task.StateSynchronizing || state == task.StateRetrying
}

// progressSample is the task's status at one moment: what rates are
// measured against.
type progressSample struct {
	at time.Time
	st task.Status
}

// shardProgress is one source shard's full sync, as shown.
type shardProgress struct {
	source, state            string
	received, applied, total int64 // snapshot bytes; total -1 when not announced (diskless)
	keys                     int64
	keysPerSec               float64       // -1 until measured
	eta                      time.Duration // -1 when unknown
}

// progressFacts are what the bar and the log lines report.
type progressFacts struct {
	name, state  string
	fullSync     bool // a shard is in its full sync
	shards       []shardProgress
	lagMs        int64   // -1 while unknown
	opsPerSec    float64 // -1 until measured
	applied      []int64 // each shard's applied offset
	spoolBytes   int64   // on disk
	memBytes     int64   // waiting in memory
	backPressure bool
	retries      int64
	lastError    string
}

// shardsOf returns a status's source shards: a cluster's masters, else
// the task itself.
func shardsOf(st task.Status) []task.Status {
	if len(st.Shards) > 0 {
		return st.Shards
	}
	return []task.Status{st}
}

// measure derives the facts shown from the current status and an earlier
// sample (nil when there is none yet: no rates).
func measure(cur progressSample, prev *progressSample) progressFacts {
	st := cur.st
	f := progressFacts{name: st.Name, state: st.State, lagMs: st.LagMs, opsPerSec: -1,
		spoolBytes: st.SpoolDiskBytes, memBytes: st.SpoolMemBytes, backPressure: st.BackPressure,
		retries: st.Retries, lastError: st.LastError}
	var dt float64
	if prev != nil {
		dt = cur.at.Sub(prev.at).Seconds()
	}
	if dt > 0 && st.Commands >= prev.st.Commands {
		f.opsPerSec = float64(st.Commands-prev.st.Commands) / dt
	}
	before := map[string]task.Status{}
	if prev != nil {
		for _, s := range shardsOf(prev.st) {
			before[s.SourceAddr] = s
		}
	}
	for _, s := range shardsOf(st) {
		f.applied = append(f.applied, s.Applied)
		p := shardProgress{source: s.SourceAddr, state: s.State, received: s.RDBBytes, applied: s.RDBBytesApplied,
			total: s.RDBBytesTotal, keys: s.KeysWritten, keysPerSec: -1, eta: -1}
		if s.State == task.StateFullSync {
			f.fullSync = true
			// A shard whose counts went back began another full sync:
			// no rate across the two.
			if b, ok := before[s.SourceAddr]; ok && dt > 0 && s.KeysWritten >= b.KeysWritten && s.RDBBytesApplied >= b.RDBBytesApplied {
				p.keysPerSec = float64(s.KeysWritten-b.KeysWritten) / dt
				rate := float64(s.RDBBytesApplied-b.RDBBytesApplied) / dt
				if p.total > 0 && rate > 0 {
					p.eta = time.Duration(float64(max(p.total-p.applied, 0)) / rate * float64(time.Second)).Round(time.Second)
				}
			}
		}
		f.shards = append(f.shards, p)
	}
	return f
}

// renderBar lays the facts out for a terminal: during a full sync a
// heading and a line per shard, then one line.
func renderBar(f progressFacts) []string {
	if !f.fullSync {
		line := "resync " + f.name + ": " + f.state
		if steady(f.state) {
			line += "  " + summaryText(f)
		}
		return []string{line}
	}
	lines := []string{"resync " + f.name + ": full sync"}
	for _, s := range f.shards {
		var b strings.Builder
		fmt.Fprintf(&b, "  %s  %s", s.source, s.state)
		switch s.state {
		case task.StateFullSync:
			if s.received == 0 {
				b.WriteString("  waiting for the source's snapshot")
				break
			}
			if s.total >= 0 {
				fmt.Fprintf(&b, "  snapshot %s of %s received, %s applied (%s)",
					humanBytes(s.received), humanBytes(s.total), humanBytes(s.applied), percent(s.applied, s.total))
			} else {
				fmt.Fprintf(&b, "  snapshot %s received (size not announced), %s applied",
					humanBytes(s.received), humanBytes(s.applied))
			}
			fmt.Fprintf(&b, "  %d keys", s.keys)
			if s.keysPerSec >= 0 {
				fmt.Fprintf(&b, "  %s keys/s", humanRate(s.keysPerSec))
			}
			if s.eta >= 0 {
				fmt.Fprintf(&b, "  ETA %s", s.eta)
			}
		case task.StateSynchronizing:
			fmt.Fprintf(&b, "  full sync done: %d keys", s.keys)
		}
		lines = append(lines, b.String())
	}
	return lines
}

// summaryText is the steady state's summary: lag, ops/s, applied
// offset(s), spool, retries.
func summaryText(f progressFacts) string {
	parts := []string{"lag unknown"}
	if f.lagMs >= 0 {
		parts[0] = fmt.Sprintf("lag %dms", f.lagMs)
	}
	if f.opsPerSec >= 0 {
		parts = append(parts, humanRate(f.opsPerSec)+" ops/s")
	}
	offsets := make([]string, len(f.applied))
	for i, o := range f.applied {
		offsets[i] = strconv.FormatInt(o, 10)
	}
	label := "applied offset "
	if len(offsets) > 1 {
		label = "applied offsets "
	}
	parts = append(parts, label+strings.Join(offsets, ","))
	if f.memBytes > 0 {
		parts = append(parts, "buffered "+humanBytes(f.memBytes))
	}
	if f.spoolBytes > 0 {
		parts = append(parts, "spool "+humanBytes(f.spoolBytes))
	}
	if f.backPressure {
		parts = append(parts, "back-pressure (not reading the source)")
	}
	parts = append(parts, fmt.Sprintf("retries %d", f.retries))
	if f.state == task.StateRetrying && f.lastError != "" {
		// Server text: no control characters reach the terminal.
		parts = append(parts, "last error: "+strings.Map(printableRune, f.lastError))
	}
	return strings.Join(parts, "  ")
}

// logFullSync logs a line per shard in its full sync.
func logFullSync(log *slog.Logger, f progressFacts) {
	for _, s := range f.shards {
		if s.state != task.StateFullSync {
			continue
		}
		attrs := []any{"shard", s.source, "rdb_bytes_received", s.received, "rdb_bytes_applied", s.applied}
		if s.total >= 0 {
			attrs = append(attrs, "rdb_bytes_total", s.total, "percent", percent(s.applied, s.total))
		} else {
			attrs = append(attrs, "rdb_bytes_total", "size not announced")
		}
		attrs = append(attrs, "keys_written", s.keys)
		if s.keysPerSec >= 0 {
			attrs = append(attrs, "keys_per_sec", int64(s.keysPerSec))
		}
		if s.eta >= 0 {
			attrs = append(attrs, "eta", s.eta.String(), "eta_seconds", int64(s.eta.Seconds()))
		}
		log.Info("full sync progress", attrs...)
	}
}

// logSummary logs the steady state's summary.
func logSummary(log *slog.Logger, f progressFacts) {
	attrs := []any{"state", f.state}
	if f.lagMs >= 0 {
		attrs = append(attrs, "lag_ms", f.lagMs)
	}
	if f.opsPerSec >= 0 {
		attrs = append(attrs, "ops_per_sec", int64(f.opsPerSec))
	}
	if len(f.applied) == 1 {
		attrs = append(attrs, "applied_offset", f.applied[0])
	} else {
		attrs = append(attrs, "applied_offsets", f.applied)
	}
	if f.memBytes > 0 {
		attrs = append(attrs, "buffered_bytes", f.memBytes)
	}
	if f.spoolBytes > 0 {
		attrs = append(attrs, "spool_bytes", f.spoolBytes)
	}
	if f.backPressure {
		attrs = append(attrs, "back_pressure", true)
	}
	attrs = append(attrs, "retries", f.retries)
	log.Info(f.state, attrs...)
}

func percent(n, total int64) string {
	if total <= 0 {
		return "0.0%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(min(n, total))/float64(total))
}

// humanBytes shows a byte count in binary units: 512B, 1.5KiB, 64.0MiB.
func humanBytes(n int64) string {
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, unit := float64(n)/(1<<10), "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1<<10 {
			break
		}
		v, unit = v/(1<<10), u
	}
	return fmt.Sprintf("%.1f%s", v, unit)
}

// humanRate shows a rate: 950, 45.6k, 1.2M.
func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// termDisplay keeps a block of progress lines at the bottom of a
// terminal. The logger writes through it: a log line clears the block,
// appears where it was, and the block is drawn again below it.
type termDisplay struct {
	mu    sync.Mutex
	out   io.Writer
	lines []string // on the screen now
}

// Write writes one or more whole log lines above the block.
func (d *termDisplay) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	d.erase(&b)
	b.Write(p)
	d.draw(&b)
	if _, err := d.out.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// show replaces the block with lines.
func (d *termDisplay) show(lines []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	d.erase(&b)
	d.lines = lines
	d.draw(&b)
	d.out.Write(b.Bytes()) // a lost redraw is redone half a second later
}

// release leaves the block on the screen as it is: later writes go below.
func (d *termDisplay) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lines = nil
}

// erase moves the cursor to the first line of the block and clears from
// there down.
func (d *termDisplay) erase(b *bytes.Buffer) {
	if n := len(d.lines); n > 0 {
		fmt.Fprintf(b, "\r\x1b[%dA\x1b[J", n)
	}
}

// draw writes the block with line wrapping off, so that each line takes
// one row whatever the terminal's width, as erase counts on.
func (d *termDisplay) draw(b *bytes.Buffer) {
	if len(d.lines) == 0 {
		return
	}
	b.WriteString("\x1b[?7l")
	for _, l := range d.lines {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[?7h")
}

// printableRune keeps a rune that prints, and drops control characters
// (an escape sequence in a server's error text would drive the terminal).
func printableRune(r rune) rune {
	if unicode.IsControl(r) {
		return -1
	}
	return r
}
