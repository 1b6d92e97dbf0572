package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := runCLI("help"); code != exitOK || !strings.Contains(out, "verify") {
		t.Fatalf("help: exit %d, %q", code, out)
	}
	if code, _, errOut := runCLI(); code != exitUsage || !strings.Contains(errOut, "usage") {
		t.Fatalf("no command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, %q", code, errOut)
	}
}

func TestDemo(t *testing.T) {
	bin := redistest.Binary(t)
	code, out, errOut := runCLI("demo", "--redis-server", bin)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"source 127.0.0.1:", "user:1", "hash", "(expires in", "to=synchronizing",
		"live:1", "written while syncing", "state stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestDecode(t *testing.T) {
	file := filepath.Join(redistest.RDBFixtures(t), "generated", "release-7.4.1.rdb")
	code, out, errOut := runCLI("decode", "--dbs", "5", "--allow-key-prefix", "db5:s", file)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `{"db":5,"key":"db5:set","type":"set","value":["1","2","3"]}` + "\n" +
		`{"db":5,"key":"db5:stream","type":"stream","value":{"entries":[{"id":"1-1","fields":["f","v"]}],"length":1,"last_id":"1-1","first_id":"1-1","max_deleted_id":"0-0","entries_added":1,"groups":[]}}` + "\n" +
		`{"db":5,"key":"db5:str","type":"string","expire_ms":4102444800789,"value":"in db five"}` + "\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}

	for _, args := range [][]string{{"decode"}, {"decode", "--dbs", "x", file}, {"decode", "--output", "csv", file}, {"decode", "/no/such.rdb"}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.rdb")
	if err := os.WriteFile(bad, []byte("REDIS0009\xfe\x00\x00\x03key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("decode", bad); code != exitFailed || !strings.Contains(errOut, "truncated") {
		t.Errorf("truncated file: exit %d, %q", code, errOut)
	}
}

// resync sync copies the source, follows it, and exits 0 when stopped.
func TestSyncCommand(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "before", "1")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	statusAddr := ln.Addr().String()
	ln.Close()
	go func() {
		done <- run(ctx, []string{"sync", "--source", src.Addr, "--target", "redis://" + dst.Addr, "--name", "cli",
			"--status-addr", statusAddr}, &out, &errOut)
	}()
	waitKey := func(key string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", key) != "1"; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("%s never reached the target: %s", key, errOut.String())
			}
		}
	}
	waitKey("before")
	redistest.Do(t, src, "SET", "after", "2")
	waitKey("after")
	// The source lists resync with the status port, where no Redis answers.
	_, port, _ := net.SplitHostPort(statusAddr)
	if info := redistest.Do(t, src, "INFO", "replication"); !strings.Contains(info, ",port="+port+",") {
		t.Errorf("the source does not list resync at port %s:\n%s", port, info)
	}
	code, sout, serr := runCLI("status", "--status-addr", statusAddr)
	if code != exitOK || !strings.Contains(sout, "task cli: synchronizing (psync)") || !strings.Contains(sout, "source "+src.Addr) {
		t.Fatalf("resync status: exit %d\n%s%s", code, sout, serr)
	}
	if code, sout, _ := runCLI("status", "--status-addr", statusAddr, "--output", "json"); code != exitOK || !strings.Contains(sout, `"state":"synchronizing"`) {
		t.Fatalf("resync status --output json: exit %d %s", code, sout)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if code, _, serr := runCLI("status", "--status-addr", statusAddr); code != exitFailed || !strings.Contains(serr, "no task answers") {
		t.Fatalf("resync status with no task: exit %d %s", code, serr)
	}
	for _, want := range []string{"to=full_sync", "to=synchronizing", "to=stopped", "task=cli"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, errOut.String())
		}
	}
}

func TestMain(m *testing.M) {
	// The test binary doubles as resync, for tests that need a process
	// (signals).
	if os.Getenv("RESYNC_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// A task file gives every setting; flags win over it; mistakes in it are
// usage errors.
func TestSyncConfigFile(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	redistest.Do(t, src, "SET", "tmp:k", "v")
	redistest.Do(t, dst, "SET", "theirs", "v") // allowed by on_conflict = "overwrite"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "task.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name = "fromfile"
status_addr = ""
heartbeat_interval = "100ms"
buffer_bytes = "1MiB"
on_conflict = "overwrite"
block_key_prefix = ["skip:", "tmp:"]

[source]
url = "redis://%s"

[[target]]
url = "redis://%s"
`, src.Addr, dst.Addr)), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"sync", "--config", cfg, "--name", "flagwins"}, &out, &errOut) }()
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("k never arrived: %s", errOut.String())
		}
	}
	cancel()
	if code := <-done; code != exitOK || !strings.Contains(errOut.String(), "task=flagwins") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if redistest.Do(t, dst, "EXISTS", "tmp:k") != "0" {
		t.Fatal("block_key_prefix from the task file was not applied")
	}

	for name, body := range map[string]string{
		"unknown":    "name = \"x\"\ncolour = \"blue\"\n",
		"two":        "[[target]]\nurl = \"a:1\"\n[[target]]\nurl = \"b:1\"\n",
		"bad toml":   "name = \n",
		"bad period": "heartbeat_interval = \"soon\"\n",
		"list":       "on_conflict = [\"a\", \"b\"]\n",
		"bad size":   "big_key_threshold = \"lots\"\n",
	} {
		f := filepath.Join(dir, "bad.toml")
		os.WriteFile(f, []byte(body), 0o600)
		if code, _, serr := runCLI("sync", "--config", f); code != exitUsage {
			t.Errorf("%s: exit %d %s", name, code, serr)
		}
	}
}

// SIGTERM stops a running sync cleanly: exit 0, state stopped logged.
func TestSigtermStopsCleanly(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	cmd := exec.Command(os.Args[0], "sync", "--source", src.Addr, "--target", dst.Addr, "--status-addr", "")
	cmd.Env = append(os.Environ(), "RESYNC_TEST_AS_MAIN=1")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("k never arrived")
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "to=stopped") {
		t.Fatalf("no stopped state in the log:\n%s", errOut.String())
	}
}
