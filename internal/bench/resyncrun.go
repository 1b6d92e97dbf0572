package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/status"
)

// stallLimit is how long a full sync may show no progress at all before
// the bench gives up on it.
const stallLimit = 2 * time.Minute

// resyncProc is a running "resync sync": the binary under test, in a
// process of its own, watched through its status server.
type resyncProc struct {
	cmd     *exec.Cmd
	url     string // its /status
	logPath string
	client  *http.Client
	done    chan struct{} // closed when the process has exited
	waitErr error         // how it exited, once done is closed
}

// startResync starts resync sync from source to target (the first node
// of each: a cluster is found by resync itself) with the given delivery.
// The process is stopped with stop, or when ctx ends.
func (r *runner) startResync(ctx context.Context, source, target *redisproc.Server, delivery string, extra ...string) (*resyncProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logDir, err := os.MkdirTemp(r.dir, "resync-")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append(r.cfg.Resync[1:len(r.cfg.Resync):len(r.cfg.Resync)], "sync",
		"--source", "redis://"+source.Addr, "--target", "redis://"+target.Addr,
		"--status-addr", addr, "--progress", "off", "--name", "bench",
		"--delivery", delivery, "--heartbeat-interval", heartbeatInterval.String(),
		"--spool-dir", filepath.Join(logDir, "spool"))
	args = append(args, extra...)
	p := &resyncProc{url: "http://" + addr + "/status", logPath: filepath.Join(logDir, "resync.log"),
		client: &http.Client{Timeout: 5 * time.Second}, done: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.CommandContext(ctx, r.cfg.Resync[0], args...)
	cmd.Env = r.cfg.ResyncEnv
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a Ctrl-C reaches the bench alone,
	// which stops resync in order; and killed if the bench dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Cancelled: asked to stop as an operator would, killed if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start resync: %w", err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// freePort finds a free loopback port for resync's status server.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// exited reports, once the process has ended, how, with the end of its log.
func (p *resyncProc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("resync exited (%v): %s", p.waitErr, p.logTail())
	default:
		return nil
	}
}

// logTail is the last lines resync logged.
func (p *resyncProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// status reads /status.
func (p *resyncProc) status(ctx context.Context) (status.Doc, error) {
	var d status.Doc
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return d, err
	}
	res, err := p.client.Do(req)
	if err != nil {
		return d, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return d, fmt.Errorf("GET %s: %s", p.url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		return d, fmt.Errorf("GET %s: %w", p.url, err)
	}
	return d, nil
}

// peakRSS is the process's peak resident set size so far (VmHWM).
func (p *resyncProc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("resync's peak RSS (Linux's /proc only): %w", err)
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := strings.Fields(string(rest))
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM line in /proc/%d/status", p.cmd.Process.Pid)
}

// stop asks resync to stop (SIGTERM, as an operator would) and waits;
// a process that lingers is killed. An exit other than 0 is an error.
func (p *resyncProc) stop() error {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("resync did not stop within 30s of SIGTERM: %s", p.logTail())
		}
	}
	if p.waitErr != nil {
		return fmt.Errorf("resync exited: %v: %s", p.waitErr, p.logTail())
	}
	return nil
}

// waitSynced waits until the full sync is over: /status says
// synchronizing and the targets hold at least keys keys (resync's own
// checkpoints come on top). A task that fails, exits, or makes no
// progress for stallLimit is an error.
func (p *resyncProc) waitSynced(ctx context.Context, targets []*redisproc.Server, keys int) (status.Doc, error) {
	var doc status.Doc
	var progress int64 = -1
	lastMove := time.Now()
	err := poll(ctx, 20*time.Millisecond, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		d, err := p.status(ctx)
		if err != nil {
			// Not up yet (the status port opens after the precheck).
			if time.Since(lastMove) > stallLimit {
				return fmt.Errorf("no status from resync for %s: %v: %s", stallLimit, err, p.logTail())
			}
			return errNotYet
		}
		doc = d
		switch d.State {
		case "failed":
			return fmt.Errorf("resync failed: %s", p.logTail())
		case "synchronizing":
			n, err := dbsize(ctx, targets)
			if err != nil {
				return err
			}
			if n >= int64(keys) {
				return nil
			}
		}
		var moved int64
		for _, s := range d.Shards {
			moved += s.FullSync.RDBBytesReceived + s.FullSync.RDBBytesApplied + s.FullSync.KeysWritten + s.AppliedOffset
		}
		if moved != progress {
			progress, lastMove = moved, time.Now()
		} else if time.Since(lastMove) > stallLimit {
			return fmt.Errorf("resync made no progress for %s (state %s): %s", stallLimit, d.State, p.logTail())
		}
		return errNotYet
	})
	return doc, err
}

// rdbBytes is the snapshot bytes received from every source shard.
func rdbBytes(d status.Doc) int64 {
	var n int64
	for _, s := range d.Shards {
		n += s.FullSync.RDBBytesReceived
	}
	return n
}
