package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
)

// replicate makes replica a native replica of source and waits until its
// link is up and the snapshot is loaded (master_link_status:up,
// loading:0), however long that takes.
func replicate(ctx context.Context, replica, source *redisproc.Server) error {
	c, err := dialer.Dial(ctx, benchDialOptions(replica))
	if err != nil {
		return err
	}
	defer c.Close()
	// SLAVEOF: every version knows it, REPLICAOF only 5.0 and later.
	if _, err := c.Do("SLAVEOF", "127.0.0.1", strconv.Itoa(source.Port)); err != nil {
		return err
	}
	return poll(ctx, 5*time.Millisecond, func() error {
		repl, err := c.Do("INFO", "replication")
		if err != nil {
			return err
		}
		pers, err := c.Do("INFO", "persistence")
		if err != nil {
			return err
		}
		if redisproc.InfoField(repl.Text(), "master_link_status") == "up" &&
			redisproc.InfoField(repl.Text(), "master_sync_in_progress") == "0" &&
			redisproc.InfoField(pers.Text(), "loading") == "0" {
			return nil
		}
		return errNotYet
	})
}

// limitA is one native full sync of source into a fresh server: from
// SLAVEOF until the replica has loaded the snapshot.
func (r *runner) limitA(ctx context.Context, source *redisproc.Server, keys int) (time.Duration, error) {
	rep, err := r.start(ctx)
	if err != nil {
		return 0, err
	}
	defer rep.Stop()
	t0 := time.Now()
	if err := replicate(ctx, rep, source); err != nil {
		return 0, fmt.Errorf("native replica %s: %w", rep.Addr, err)
	}
	elapsed := time.Since(t0)
	if n, err := dbsize(ctx, []*redisproc.Server{rep}); err != nil || n < int64(keys) {
		return 0, fmt.Errorf("native replica %s: %d keys after the sync, want %d (%v)", rep.Addr, n, keys, err)
	}
	return elapsed, nil
}

// restoreFile writes the data set as RESTORE commands, in RESP, with the
// DUMP payloads read from source: limit B's input, made before its clock
// starts.
func (r *runner) restoreFile(ctx context.Context, source *redisproc.Server, d DataSet) (string, int64, error) {
	path := filepath.Join(r.dir, "restore.resp")
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	c, err := dialer.Dial(ctx, benchDialOptions(source))
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	out := resp.NewWriterSize(f, 1<<20)
	var key []byte
	err = pipeline(ctx, c, d.Keys(), func(w *resp.Writer, i int) {
		key = d.AppendKey(key[:0], i)
		w.WriteCommand([]byte("DUMP"), key)
	}, func(i int, v resp.Value) error {
		if v.Nil() {
			return fmt.Errorf("DUMP %s: no such key", d.AppendKey(nil, i))
		}
		// The reader's own key: the writer goroutine reuses its buffer.
		out.WriteCommand([]byte("RESTORE"), d.AppendKey(nil, i), []byte("0"), v.Str, []byte("REPLACE"))
		return out.Err()
	})
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		return "", 0, fmt.Errorf("RESTORE file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	return path, out.Written(), nil
}

// limitB is one mass insertion of the RESTORE file into a fresh server
// through redis-cli --pipe: from redis-cli's start to its exit, once the
// last reply is in.
func (r *runner) limitB(ctx context.Context, file string, keys int) (elapsed time.Duration, targetCPU float64, err error) {
	dst, err := r.start(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer dst.Stop()
	in, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	before, err := readServerCPU(ctx, []*redisproc.Server{dst})
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, r.cfg.RedisCLI, "-h", "127.0.0.1", "-p", strconv.Itoa(dst.Port), "--pipe", "--pipe-timeout", "0")
	cmd.Stdin = bufio.NewReaderSize(in, 1<<20)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	elapsed = time.Since(t0)
	if err != nil || !strings.Contains(out.String(), "errors: 0,") {
		return 0, 0, fmt.Errorf("redis-cli --pipe into %s: %v: %s", dst.Addr, err, strings.TrimSpace(out.String()))
	}
	after, err := readServerCPU(ctx, []*redisproc.Server{dst})
	if err != nil {
		return 0, 0, err
	}
	if n, err := dbsize(ctx, []*redisproc.Server{dst}); err != nil || n != int64(keys) {
		return 0, 0, fmt.Errorf("redis-cli --pipe into %s: %d keys after, want %d (%v)", dst.Addr, n, keys, err)
	}
	return elapsed, after.since(before).main, nil
}
