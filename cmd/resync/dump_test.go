package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// dump takes a snapshot of a running source (disk-based and diskless
// transfers), restore loads it into an empty server: the two are equal.
func TestDumpThenRestore(t *testing.T) {
	for _, mode := range []string{"no", "yes"} {
		t.Run("diskless-"+mode, func(t *testing.T) {
			src := redistest.Start(t, "repl-diskless-sync "+mode)
			dst := redistest.Start(t)
			c := redistest.Dial(t, src)
			for _, cmd := range [][]string{
				{"SET", "s", "v"}, {"RPUSH", "l", "a", "b"}, {"HSET", "h", "f", "v"},
				{"ZADD", "z", "1.5", "m"}, {"SADD", "set", "x"}, {"XADD", "st", "1-1", "f", "v"},
				{"SET", "ttl", "v", "PX", "600000"}, {"SELECT", "4"}, {"SET", "in4", "v"},
			} {
				if _, err := c.Do(cmd...); err != nil {
					t.Fatal(err)
				}
			}
			file := filepath.Join(t.TempDir(), "snap.rdb")
			code, out, errOut := runCLI("dump", "--source", "redis://"+src.Addr, "-o", file, "--output", "json")
			if code != exitOK {
				t.Fatalf("dump: exit %d: %s", code, errOut)
			}
			var sum struct {
				Keys  int64 `json:"keys"`
				Bytes int64 `json:"bytes"`
			}
			if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Keys != 8 {
				t.Fatalf("dump summary %q: %v", out, err)
			}
			if st, err := os.Stat(file); err != nil || st.Size() != sum.Bytes {
				t.Fatalf("file: %v, %d bytes reported", err, sum.Bytes)
			}
			if m, _ := filepath.Glob(file + ".partial-*"); len(m) != 0 {
				t.Fatalf("temporary files left: %q", m)
			}
			code, out, errOut = runCLI("restore", file, "--target", "redis://"+dst.Addr)
			if code != exitOK || !strings.Contains(out, "8 keys written") {
				t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
			}
			rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(),
				compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Equal() || rep.Keys != 8 {
				t.Fatalf("%d keys compared, differences: %v", rep.Keys, rep.Diffs)
			}
			// A second restore into the same target meets the conflict rule.
			if code, _, errOut := runCLI("restore", file, "--target", "redis://"+dst.Addr); code != exitFailed || !strings.Contains(errOut, "not empty") {
				t.Fatalf("restore into a full target: exit %d: %s", code, errOut)
			}
			if code, _, errOut := runCLI("restore", "--on-conflict", "overwrite", file, "--target", "redis://"+dst.Addr); code != exitOK {
				t.Fatalf("restore --on-conflict overwrite: exit %d: %s", code, errOut)
			}
		})
	}
	for _, args := range [][]string{{"dump"}, {"dump", "--source", "redis://127.0.0.1:1"}, {"restore"},
		{"restore", "a.rdb"}, {"restore", "a.rdb", "--target", "redis://127.0.0.1:1", "--rewrite", "sometimes"},
		{"restore", "a.rdb", "--target", "redis://127.0.0.1:1", "--map-db", "1:0", "--map-db", "2:0"}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
