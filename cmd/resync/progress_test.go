package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// A cluster source in its full sync: a line per shard, with rates and
// ETA measured against the earlier sample.
func TestRenderFullSync(t *testing.T) {
	shard := func(addr, state string, received, applied, total, keys int64) task.Status {
		return task.Status{SourceAddr: addr, State: state, RDBBytes: received, RDBBytesApplied: applied, RDBBytesTotal: total, KeysWritten: keys, LagMs: -1}
	}
	prev := progressSample{at: t0, st: task.Status{Name: "orders", State: task.StateFullSync, Shards: []task.Status{
		shard("10.0.0.1:7000", task.StateFullSync, 100<<20, 50<<20, 400<<20, 500_000),
		shard("10.0.0.2:7000", task.StateFullSync, 10<<20, 8<<20, -1, 90_000),
		shard("10.0.0.3:7000", task.StateFullSync, 0, 0, -1, 0),
		shard("10.0.0.4:7000", task.StateSynchronizing, 1<<20, 1<<20, 1<<20, 7_000),
	}}}
	cur := progressSample{at: t0.Add(2 * time.Second), st: task.Status{Name: "orders", State: task.StateFullSync, Shards: []task.Status{
		shard("10.0.0.1:7000", task.StateFullSync, 200<<20, 70<<20, 400<<20, 600_000), // 10 MiB/s applied: 33 s to go
		shard("10.0.0.2:7000", task.StateFullSync, 12<<20, 9<<20, -1, 91_000),
		shard("10.0.0.3:7000", task.StateFullSync, 0, 0, -1, 0),
		shard("10.0.0.4:7000", task.StateSynchronizing, 1<<20, 1<<20, 1<<20, 7_000),
	}}}
	want := []string{
		"resync orders: full sync",
		"  10.0.0.1:7000  full_sync  snapshot 200.0MiB of 400.0MiB received, 70.0MiB applied (17.5%)  600000 keys  50.0k keys/s  ETA 33s",
		"  10.0.0.2:7000  full_sync  snapshot 12.0MiB received (size not announced), 9.0MiB applied  91000 keys  500 keys/s",
		"  10.0.0.3:7000  full_sync  waiting for the source's snapshot",
		"  10.0.0.4:7000  synchronizing  full sync done: 7000 keys",
	}
	if got := renderBar(measure(cur, &prev)); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// No earlier sample: no rates, no ETA.
	got := renderBar(measure(cur, nil))
	if want := "  10.0.0.1:7000  full_sync  snapshot 200.0MiB of 400.0MiB received, 70.0MiB applied (17.5%)  600000 keys"; got[1] != want {
		t.Errorf("got %q, want %q", got[1], want)
	}
	// A shard whose counts went back began another full sync: no rate.
	back := progressSample{at: t0.Add(4 * time.Second), st: task.Status{Name: "orders", State: task.StateFullSync, Shards: []task.Status{
		shard("10.0.0.1:7000", task.StateFullSync, 1<<20, 1<<20, 400<<20, 10),
	}}}
	if got := renderBar(measure(back, &cur)); strings.Contains(got[1], "keys/s") || strings.Contains(got[1], "ETA") {
		t.Errorf("a rate across two full syncs: %q", got[1])
	}
}

// The steady state is one line: lag, ops/s, applied offset, spool,
// retries (and the last error while retrying).
func TestRenderSteady(t *testing.T) {
	prev := progressSample{at: t0, st: task.Status{Name: "default", State: task.StateSynchronizing, Commands: 1000, LagMs: 2}}
	st := task.Status{Name: "default", State: task.StateSynchronizing, Commands: 1600, LagMs: 3, Applied: 123456,
		SpoolDiskBytes: 2 << 20, Retries: 1}
	cur := progressSample{at: t0.Add(2 * time.Second), st: st}
	want := []string{"resync default: synchronizing  lag 3ms  300 ops/s  applied offset 123456  spool 2.0MiB  retries 1"}
	if got := renderBar(measure(cur, &prev)); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	st.State, st.LagMs, st.LastError, st.SpoolDiskBytes, st.SpoolMemBytes, st.BackPressure = task.StateRetrying, -1, "target: connection refused", 0, 1536, true
	want = []string{"resync default: retrying  lag unknown  applied offset 123456  buffered 1.5KiB  back-pressure (not reading the source)  retries 1  last error: target: connection refused"}
	if got := renderBar(measure(progressSample{at: cur.at, st: st}, nil)); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	st = task.Status{Name: "c", State: task.StateSynchronizing, LagMs: 0, Shards: []task.Status{{Applied: 10}, {Applied: 20}}}
	if got := renderBar(measure(progressSample{at: t0, st: st}, nil)); got[0] != "resync c: synchronizing  lag 0ms  applied offsets 10,20  retries 0" {
		t.Errorf("cluster: %q", got)
	}
	if got := renderBar(measure(progressSample{at: t0, st: task.Status{Name: "p", State: task.StatePrecheck}}, nil)); got[0] != "resync p: precheck" {
		t.Errorf("precheck: %q", got)
	}
}

// The log lines carry the same facts as fields.
func TestProgressLogLines(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	prev := progressSample{at: t0, st: task.Status{State: task.StateFullSync, SourceAddr: "s:1", RDBBytesTotal: 1000, RDBBytesApplied: 100, KeysWritten: 10}}
	cur := progressSample{at: t0.Add(10 * time.Second), st: task.Status{State: task.StateFullSync, SourceAddr: "s:1",
		RDBBytes: 800, RDBBytesApplied: 600, RDBBytesTotal: 1000, KeysWritten: 60}}
	logFullSync(log, measure(cur, &prev))
	cur.st.RDBBytesTotal = -1
	logFullSync(log, measure(cur, &prev))
	logSummary(log, measure(progressSample{at: t0.Add(20 * time.Second), st: task.Status{State: task.StateSynchronizing,
		Commands: 50, LagMs: 4, Applied: 77, SpoolDiskBytes: 5, Retries: 2}}, &cur))
	lines := jsonLines(t, b.String())
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	check := func(line map[string]any, want map[string]any) {
		t.Helper()
		for k, v := range want {
			if line[k] != v {
				t.Errorf("%s = %v, want %v (%v)", k, line[k], v, line)
			}
		}
	}
	check(lines[0], map[string]any{"msg": "full sync progress", "shard": "s:1", "rdb_bytes_received": 800.0, "rdb_bytes_applied": 600.0,
		"rdb_bytes_total": 1000.0, "percent": "60.0%", "keys_written": 60.0, "keys_per_sec": 5.0, "eta": "8s", "eta_seconds": 8.0})
	check(lines[1], map[string]any{"rdb_bytes_total": "size not announced"})
	if _, ok := lines[1]["eta"]; ok {
		t.Errorf("an ETA without a size: %v", lines[1])
	}
	check(lines[2], map[string]any{"msg": "synchronizing", "state": "synchronizing", "lag_ms": 4.0, "ops_per_sec": 5.0,
		"applied_offset": 77.0, "spool_bytes": 5.0, "retries": 2.0})
}

// jsonLines decodes JSON log lines.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// A log line written while the block is shown clears it, appears in its
// place, and the block is drawn again under it.
func TestTermDisplay(t *testing.T) {
	var b bytes.Buffer
	d := &termDisplay{out: &b}
	d.Write([]byte("first\n"))
	d.show([]string{"a", "b"})
	d.Write([]byte("log line\n"))
	d.show([]string{"c"})
	d.release()
	d.Write([]byte("after\n"))
	const block = "\x1b[?7la\x1b[K\nb\x1b[K\n\x1b[?7h"
	want := "first\n" + block + "\r\x1b[2A\x1b[J" + "log line\n" + block + "\r\x1b[2A\x1b[J" + "\x1b[?7lc\x1b[K\n\x1b[?7h" + "after\n"
	if got := b.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestProgressMode(t *testing.T) {
	var b bytes.Buffer
	for in, want := range map[string]string{"auto": progressLog, "bar": progressBar, "log": progressLog, "off": progressOff} {
		if got, err := progressMode(in, &b); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	if code, _, errOut := runCLI("sync", "--source", "a:1", "--target", "b:1", "--progress", "fancy"); code != exitUsage || !strings.Contains(errOut, `--progress "fancy"`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// Without a terminal, resync sync logs the full sync's progress and then
// the steady state's summary, as JSON with --log-format json.
func TestSyncProgressLog(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "DEBUG", "POPULATE", "50000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs safeBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sync", "--source", src.Addr, "--target", dst.Addr, "--status-addr", "",
			"--log-format", "json", "--progress-interval", "100ms",
			// A full sync that lasts several intervals (about a second),
			// however fast the machine.
			"--target-max-ops", "50000"}, &bytes.Buffer{}, &logs)
	}()
	waitUntil(t, 60*time.Second, func() bool { return strings.Contains(logs.String(), `"msg":"synchronizing"`) }, logs.String)
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
	var full, summary map[string]any
	for _, l := range jsonLines(t, logs.String()) {
		switch l["msg"] {
		case "full sync progress":
			full = l
		case "synchronizing":
			summary = l
		}
	}
	if full == nil {
		t.Fatalf("no full sync progress line:\n%s", logs.String())
	}
	for _, k := range []string{"shard", "rdb_bytes_received", "rdb_bytes_applied", "rdb_bytes_total", "keys_written", "keys_per_sec"} {
		if _, ok := full[k]; !ok {
			t.Errorf("the full sync line lacks %s: %v", k, full)
		}
	}
	if full["shard"] != src.Addr {
		t.Errorf("shard %v, want %s", full["shard"], src.Addr)
	}
	for _, k := range []string{"state", "ops_per_sec", "applied_offset", "retries"} {
		if _, ok := summary[k]; !ok {
			t.Errorf("the summary lacks %s: %v", k, summary)
		}
	}
}

// safeBuffer is a command's stderr, read while it runs.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitUntil polls cond until it holds, or fails the test showing what
// says why.
func waitUntil(t *testing.T, within time.Duration, cond func() bool, why func() string) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s:\n%s", within, why())
		}
	}
}

// --progress bar draws the block and keeps the log lines whole around it.
func TestSyncProgressBar(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	var out safeBuffer
	stop := startSync(t, &out, "--source", src.Addr, "--target", dst.Addr, "--status-addr", "", "--progress", "bar", "--name", "bar")
	waitKey(t, dst, "k", &out)
	waitUntil(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "resync bar: synchronizing  lag") }, out.String)
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	// On the screen, every log line is whole and the block shows once,
	// at the bottom.
	lines := screen(out.String())
	logLines := 0
	for i, line := range lines {
		switch {
		case strings.Contains(line, "msg="):
			logLines++
			if !strings.HasPrefix(line, "time=") {
				t.Errorf("a garbled log line: %q", line)
			}
		case strings.HasPrefix(line, "resync bar:") && i != len(lines)-4:
			t.Errorf("a progress line left among the log lines at %d: %q", i, line)
		}
	}
	if logLines < 5 || !strings.Contains(lines[len(lines)-3], "to=stopped") {
		t.Errorf("log lines lost:\n%s", strings.Join(lines, "\n"))
	}
}

// screen plays output on a terminal of unbounded width and returns its
// lines: enough of one for the escapes termDisplay writes (cursor up,
// erase down, erase to the end of the line, line wrapping off and on).
func screen(out string) []string {
	lines := []string{""}
	row := 0
	esc := regexp.MustCompile(`^\x1b\[(\??)([0-9]*)([A-Za-z])`)
	for len(out) > 0 {
		if m := esc.FindStringSubmatch(out); m != nil {
			out = out[len(m[0]):]
			n, _ := strconv.Atoi(m[2])
			switch {
			case m[1] == "?": // wrapping: all lines fit
			case m[3] == "A":
				row = max(row-n, 0)
			case m[3] == "J":
				lines = append(lines[:row], "")
			case m[3] == "K": // the cursor is at the end of its line
			}
			continue
		}
		switch c := out[0]; c {
		case '\n':
			row++
			if row == len(lines) {
				lines = append(lines, "")
			}
		case '\r': // writes here start on an empty line
		default:
			lines[row] += string(c)
		}
		out = out[1:]
	}
	return lines
}
