package task_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/task"
)

// scriptedSource serves a replica the given RDB file as its snapshot,
// then streams the commands, as a source of 4.0-6.2 does: their scripts
// travel in the snapshot's "lua" AUX fields, and the stream carries
// EVALSHA verbatim. Other connections (the precheck, the heartbeat) get
// +OK to anything.
func scriptedSource(t *testing.T, version string, snapshot []byte, stream [][]string) string {
	t.Helper()
	return redistest.ScriptedPeer(t, func(c net.Conn) { serveScripted(c, version, snapshot, stream) })
}

func serveScripted(c net.Conn, version string, snapshot []byte, stream [][]string) {
	r, bw := resp.NewReader(c), bufio.NewWriter(c)
	w := resp.NewWriter(bw)
	streamed := false
	for {
		args, err := r.ReadCommand()
		if err != nil {
			return
		}
		switch name := strings.ToUpper(string(args[0])); {
		case name == "PING":
			bw.WriteString("+PONG\r\n")
		case name == "INFO":
			info := "# Server\r\nredis_version:" + version + "\r\n"
			fmt.Fprintf(bw, "$%d\r\n%s\r\n", len(info), info)
		case name == "PSYNC":
			fmt.Fprintf(bw, "+FULLRESYNC %s 0\r\n$%d\r\n", strings.Repeat("a", 40), len(snapshot))
			bw.Write(snapshot)
		case name == "REPLCONF" && strings.EqualFold(string(args[1]), "ACK"):
			if !streamed {
				streamed = true
				for _, cmd := range stream {
					w.WriteCommandStrings(cmd...)
				}
				w.Flush()
				bw.Flush()
			}
			continue // no reply to an ACK
		default:
			bw.WriteString("+OK\r\n")
		}
		bw.Flush()
	}
}

// The Lua scripts a 4.0-6.2 snapshot keeps are loaded before the stream
// starts, so the EVALSHA it carries finds them on the target.
func TestLuaAuxScriptsLoaded(t *testing.T) {
	const sha = "11953e05eb549814ccef94c000ab843f889cde85"
	for _, v := range []string{"4.0.14", "5.0.14", "6.2.14"} {
		t.Run(v, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(redistest.RDBFixtures(t), "generated", "release-"+v+".rdb"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte("lua")) {
				t.Fatal("the fixture holds no lua AUX field: the test proves nothing")
			}
			redistest.RequireVersion(t, int(v[0]-'0'), int(v[2]-'0'), "loads the RDB version of Redis "+v)
			addr := scriptedSource(t, v, data, [][]string{{"SELECT", "0"}, {"EVALSHA", sha, "1", "k", "a"}, {"SET", "after-evalsha", "1"}})
			dst := redistest.Start(t)
			tk := syncUntil(t, addr, dst, "after-evalsha")
			if got, err := redistest.Dial(t, dst).Do("SCRIPT", "EXISTS", sha); err != nil || len(got.Elems) != 1 || got.Elems[0].Int != 1 {
				t.Fatalf("SCRIPT EXISTS on the target: %v %v", got, err)
			}
			if st := tk.Status(); st.KeysWritten == 0 || st.CommandsByName["EVALSHA"] != 1 {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// A script that failed half way on a source before 7.0 is replicated
// verbatim and fails the same way on the target: its writes stay, the
// error is what the source answered, and the task goes on.
func TestScriptErrorAsOnSource(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(redistest.RDBFixtures(t), "generated", "release-6.2.14.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	redistest.RequireVersion(t, 6, 2, "loads the RDB version of Redis 6.2")
	addr := scriptedSource(t, "6.2.14", data, [][]string{{"SELECT", "0"},
		{"EVAL", "redis.call('SET', KEYS[1], 'x') return redis.call('INCR', KEYS[1])", "1", "half"},
		{"SET", "after-eval", "1"}})
	dst := redistest.Start(t)
	syncUntil(t, addr, dst, "after-eval")
	if got := redistest.Do(t, dst, "GET", "half"); got != "x" {
		t.Fatalf("the script's write before its error: %q", got)
	}
}

// Empty collections (saved by servers with Redis's empty-keys bug) are
// skipped, as Redis skips them on load; RESTORE would refuse them.
func TestEmptyCollectionsSkipped(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "loads RDB 10")
	data, err := os.ReadFile(filepath.Join(redistest.RDBFixtures(t), "redis-redis", "corrupt_empty_keys.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	addr := scriptedSource(t, "7.0.0", data, [][]string{{"SELECT", "0"}, {"SET", "after", "1"}})
	dst := redistest.Start(t)
	tk := syncUntil(t, addr, dst, "after")
	if keys := keysOf(t, dst); len(keys) != 1 || tk.Status().KeysWritten != 0 {
		t.Fatalf("target holds %q, %d keys written by the full sync; want only the streamed one", keys, tk.Status().KeysWritten)
	}
}

// syncUntil runs a task from a scripted source into dst until key has
// arrived; the task stops when the test ends.
func syncUntil(t *testing.T, addr string, dst *redisproc.Server, key string) *task.Task {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tk := task.New(task.Config{Source: dialer.Options{Addr: addr}, Target: dst.DialOptions()})
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", key) != "1"; time.Sleep(10 * time.Millisecond) {
		if st := tk.Status(); st.State == task.StateFailed || time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
	}
	return tk
}
