package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redistest"
)

// A full sync of a 2M-field hash and a 2M-element list: with a 4 MiB
// big-key threshold both go in chunks and resync's peak RSS stays far
// below the keys' size. The binary is built without the race detector
// (which multiplies memory) and measured from /proc.
func TestBigKeyMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and syncs 4M elements")
	}
	bin := filepath.Join(t.TempDir(), "resync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src, dst := redistest.Start(t), redistest.Start(t)
	const n = 2_000_000
	fillBig(t, redistest.Dial(t, src), n)
	srcMem := redistest.Do(t, src, "MEMORY", "USAGE", "hash", "SAMPLES", "0")

	cmd := exec.Command(bin, "sync", "--source", "redis://"+src.Addr, "--target", "redis://"+dst.Addr,
		"--status-addr", "", "--big-key-threshold", "4MiB", "--buffer-bytes", "8MiB")
	var logs safeBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	for {
		select {
		case err := <-exited:
			t.Fatalf("resync sync exited: %v\n%s", err, logs.String())
		default:
		}
		if redistest.Do(t, dst, "HLEN", "hash") == strconv.Itoa(n) && redistest.Do(t, dst, "LLEN", "list") == strconv.Itoa(n) {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("not synced after 2 minutes:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	peak := procStatus(t, cmd.Process.Pid, "VmHWM")
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("resync sync: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "big=2") {
		t.Fatalf("the two keys were not written in chunks:\n%s", logs.String())
	}
	t.Logf("2M-field hash (%s bytes on the source) and 2M-element list synced in %v; resync peak RSS %d MiB", srcMem, elapsed.Round(time.Millisecond), peak>>20)
	if peak > 100<<20 {
		t.Fatalf("peak RSS %d MiB, want under 100 MiB", peak>>20)
	}
}

// fillBig writes a hash of n fields and a list of n elements, pipelined.
func fillBig(t *testing.T, c *dialer.Conn, n int) {
	t.Helper()
	w, r := c.Writer(), c.Reader()
	sent := 0
	for i := 0; i < n; i += 1000 {
		h := []string{"HSET", "hash"}
		l := []string{"RPUSH", "list"}
		for j := i; j < i+1000 && j < n; j++ {
			h = append(h, fmt.Sprintf("field:%d", j), fmt.Sprintf("value:%d", j))
			l = append(l, fmt.Sprintf("element:%d", j))
		}
		w.WriteCommandStrings(h...)
		w.WriteCommandStrings(l...)
		sent += 2
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for range sent {
		v, err := r.ReadValue()
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// procStatus reads a size field (kB) of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
