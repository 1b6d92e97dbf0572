package status

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// The dashboard in a real browser, headless Chromium, over a task that
// runs between real servers and has met an error: the page shows the
// state, draws its chart from /status samples and lists the error. The
// screenshot is kept in $RESYNC_ARTIFACTS, else in artifacts/ at the
// repository's root (git-ignored), for a person to look at.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "DEBUG", "POPULATE", "5000")
	tk := task.New(task.Config{Name: "dashboard", Source: src.DialOptions(), Target: dst.DialOptions(),
		HeartbeatInterval: 100 * time.Millisecond, RetryFor: time.Minute})
	srv, err := Start("127.0.0.1:0", tk, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	synchronizing := func() {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if st := tk.Status(); st.State == task.StateSynchronizing && st.LagMs >= 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never synchronizing: %+v", tk.Status())
			}
		}
	}
	synchronizing()
	// An error for the page to list: the source drops resync's link,
	// which resync resumes.
	redistest.Do(t, src, "CLIENT", "KILL", "TYPE", "replica")
	for deadline := time.Now().Add(10 * time.Second); tk.Status().ErrorsTotal == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lost link was not noted")
		}
	}
	synchronizing()
	// Writes while the page watches, for a rate to draw.
	load := redistest.StartLoad(t, src.DialOptions(), 1000, 5*time.Millisecond, nil)
	defer load.Stop()

	url := "http://" + srv.Addr() + "/"
	shot := filepath.Join(artifacts(t), "dashboard.png")
	os.Remove(shot)
	start := time.Now()
	dom := runChromium(t, browser, "--dump-dom", "--screenshot="+shot, url)
	t.Logf("chromium took %s; screenshot %s", time.Since(start).Round(time.Millisecond), shot)

	if !strings.Contains(dom, `<span id="state" class="state" data-state="synchronizing">synchronizing</span>`) {
		t.Errorf("the page does not show the state synchronizing:\n%s", dom)
	}
	canvas := regexp.MustCompile(`<canvas id="chart" data-points="(\d+)"`).FindStringSubmatch(dom)
	if canvas == nil {
		t.Fatalf("no chart canvas:\n%s", dom)
	}
	if n, _ := strconv.Atoi(canvas[1]); n < 2 {
		t.Errorf("the chart drew %d points, want 2 or more", n)
	}
	if !strings.Contains(dom, `<span class="mono">`+src.Addr+`</span>`) || !strings.Contains(dom, `<td class="mono">`+dst.Addr+`</td>`) {
		t.Errorf("the page does not list the source and target:\n%s", dom)
	}
	errs := tk.Status().Errors
	if len(errs) == 0 || !strings.Contains(dom, `<span class="text">`+htmlEscape(errs[0].Text)+`</span>`) {
		t.Errorf("the page does not list the error %v:\n%s", errs, dom)
	}
	if !regexp.MustCompile(`<div class="value" id="ops">[0-9.,]+</div>`).MatchString(dom) {
		t.Errorf("no ops/s figure:\n%s", dom)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10<<10 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
}

// What no quick run between real servers shows at once, drawn from a
// made-up status: a cluster source in full sync, one shard's size
// unknown (diskless), another retrying under back-pressure, more errors
// than the status keeps.
func TestDashboardShowsAClusterFullSync(t *testing.T) {
	browser := chromium(t)
	const MiB = 1 << 20
	start := time.Now()
	var n atomic.Int64
	status := func() task.Status {
		calls := n.Add(1)
		errs := []task.ErrorEvent{
			{Time: start.Add(-90 * time.Second), Text: "replication from 10.0.0.3:7000: read tcp 10.0.0.9:51234->10.0.0.3:7000: i/o timeout"},
			{Time: start.Add(-30 * time.Second), Text: "target 10.0.1.1:7000: LOADING Redis is loading the dataset in memory"},
			{Time: start.Add(-2 * time.Second), Text: "replication from 10.0.0.3:7000: <script>alert(1)</script> connection reset by peer"},
		}
		shards := []task.Status{
			{SourceAddr: "10.0.0.1:7000", State: task.StateFullSync, ReplID: "8f2d6c1e0b9a4f3e2d1c0b9a8f7e6d5c4b3a2918",
				Received: 0, Applied: 0, LagMs: -1, RDBBytesTotal: 512 * MiB, RDBBytes: 300*MiB + calls*MiB, RDBBytesApplied: 220*MiB + calls*MiB,
				KeysWritten: 1_204_332 + calls*4000, SpoolMemBytes: 12 * MiB},
			{SourceAddr: "10.0.0.2:7000", State: task.StateFullSync, ReplID: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
				LagMs: -1, RDBBytesTotal: -1, RDBBytes: 80 * MiB, RDBBytesApplied: 61 * MiB, KeysWritten: 402_117, SpoolMemBytes: 3 * MiB},
			{SourceAddr: "10.0.0.3:7000", State: task.StateRetrying, ReplID: "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
				Received: 9_876_543_210, Applied: 9_876_001_000, LagMs: -1, RDBBytesTotal: 2048 * MiB, RDBBytes: 2048 * MiB,
				RDBBytesApplied: 2048 * MiB, KeysWritten: 3_500_000, SpoolMemBytes: 64 * MiB, SpoolDiskBytes: 1536 * MiB,
				BackPressure: true, Retries: 4, Errors: errs},
		}
		st := task.Status{Name: "orders-eu", State: task.StateRetrying, TargetAddr: "10.0.1.1:7000",
			LastError: errs[2].Text, Commands: 1000 * calls, CommandsByName: map[string]int64{"SET": 1000 * calls}}
		aggregateForTest(&st, shards)
		st.ErrorsTotal = 27
		return st
	}
	srv := httptest.NewServer(handler(status, Options{}))
	defer srv.Close()
	shot := filepath.Join(artifacts(t), "dashboard-cluster-full-sync.png")
	os.Remove(shot)
	dom := runChromium(t, browser, "--dump-dom", "--screenshot="+shot, srv.URL+"/")
	for _, want := range []string{
		`<span id="state" class="state" data-state="retrying">retrying</span>`,
		`<span class="mono">10.0.0.1:7000</span>`, `<span class="mono">10.0.0.2:7000</span>`, `<span class="mono">10.0.0.3:7000</span>`,
		`data-state="full_sync">full sync</span>`, "size not announced", `<span class="tag"`, ">back-pressure<",
		"27 in all, the last 3 shown", "&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(dom, "<script>alert") {
		t.Error("an error's text became HTML")
	}
	if t.Failed() {
		t.Log(dom)
	}
}

// aggregateForTest sums shards as the task does for a cluster source
// (task.aggregate is the task's own).
func aggregateForTest(st *task.Status, shards []task.Status) {
	st.Shards = shards
	st.RDBBytesTotal = 0
	for _, s := range shards {
		st.Received += s.Received
		st.Applied += s.Applied
		st.KeysWritten += s.KeysWritten
		st.RDBBytes += s.RDBBytes
		st.Retries += s.Retries
		st.SpoolMemBytes += s.SpoolMemBytes
		st.SpoolDiskBytes += s.SpoolDiskBytes
		st.BackPressure = st.BackPressure || s.BackPressure
		st.Errors = append(st.Errors, s.Errors...)
	}
	st.LagMs = -1
	st.RDBBytesTotal = -1
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// chromium finds Debian's chromium; a test run without it fails, unless
// RESYNC_SKIP_BROWSER=1 says to skip.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("RESYNC_SKIP_BROWSER") == "1" {
		t.Skip("RESYNC_SKIP_BROWSER=1")
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: `make test` installs it (.ci/install-chromium), "+
			"or set RESYNC_SKIP_BROWSER=1 to skip the browser test: %v", err)
	}
	return path
}

// runChromium runs headless Chromium with a fresh profile and returns
// what it printed. Virtual time lets the page's one-second polls run
// without waiting for them; the whole process group goes when the run
// ends, however it ends.
func runChromium(t *testing.T, browser string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900", "--virtual-time-budget=8000"}, args...)
	cmd := exec.CommandContext(ctx, browser, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	killGroup := func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.Cancel = killGroup
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	killGroup() // the renderer and other helpers, if any are left
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish in 60 s:\n%s", errOut.String())
	}
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, errOut.String())
	}
	return out.String()
}

// artifacts is the directory for files a person looks at after a run.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RESYNC_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for dir = wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			if filepath.Dir(dir) == dir {
				t.Fatalf("no go.mod above %s", wd)
			}
		}
		dir = filepath.Join(dir, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
