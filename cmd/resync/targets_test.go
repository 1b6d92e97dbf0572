package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// syncConfig builds resync sync's task.Config from args as runSync does
// (flags, task file, every endpoint read and checked) without running
// the task. It returns what was logged and printed, and the error.
func syncConfig(t *testing.T, args ...string) (task.Config, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	fs, f := newSyncFlags(&stderr)
	if err := fs.Parse(args); err != nil {
		return task.Config{}, stderr.String(), err
	}
	warnings, ok := f.endpointsGiven(fs, "sync", &stderr)
	if !ok {
		return task.Config{}, stderr.String(), errors.New(stderr.String())
	}
	log, logs := newTestLogger()
	cfg, err := f.taskConfig(log, warnings)
	return cfg, logs.String() + stderr.String(), err
}

// startLocked starts a server that asks password.
func startLocked(t *testing.T, password string) *redisproc.Server {
	t.Helper()
	o := redistest.Options(t)
	o.Password = password
	return redistest.StartWith(t, o)
}

// targets returns a config's targets in order: Target, then ExtraTargets.
func targets(cfg task.Config) []dialer.Options {
	return append([]dialer.Options{cfg.Target}, cfg.ExtraTargets...)
}

// login dials o (AUTH included) and says why it could not.
func login(o dialer.Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialer.Dial(ctx, o)
	if err != nil {
		return err
	}
	return c.Close()
}

// writePassword writes a password file and returns its path.
func writePassword(t *testing.T, name, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each --target of resync sync is one more target, in order: the first
// is the task's Target, the others its ExtraTargets, each built as a
// single target is (the --target-* flags and $RESYNC_TARGET_PASSWORD
// apply to every one).
func TestSyncSeveralTargetFlags(t *testing.T) {
	const pw = "shared-Target-pw"
	src := redistest.Start(t)
	t1, t2, t3 := startLocked(t, pw), startLocked(t, pw), startLocked(t, pw)
	pwFile := writePassword(t, "target.pw", pw)

	for _, n := range []int{2, 3} {
		all := []*redisproc.Server{t1, t2, t3}[:n]
		args := []string{"--source", src.Addr, "--target-password-file", pwFile, "--io-timeout", "7s"}
		for _, s := range all {
			args = append(args, "--target", "redis://"+s.Addr)
		}
		cfg, logs, err := syncConfig(t, args...)
		if err != nil {
			t.Fatalf("%d targets: %v\n%s", n, err, logs)
		}
		got := targets(cfg)
		if len(got) != n || len(cfg.ExtraTargets) != n-1 {
			t.Fatalf("%d targets: Target %v, ExtraTargets %v", n, cfg.Target, cfg.ExtraTargets)
		}
		for i, o := range got {
			if o.Addr != all[i].Addr || o.Password != pw || o.IOTimeout != 7*time.Second {
				t.Errorf("%d targets: target %d is %v (password set: %v, io timeout %s), want %s", n, i+1, o, o.Password == pw, o.IOTimeout, all[i].Addr)
			}
			if err := login(o); err != nil {
				t.Errorf("%d targets: target %d: %v", n, i+1, err)
			}
		}
	}

	// One --target stays one target, with no ExtraTargets.
	cfg, logs, err := syncConfig(t, "--source", src.Addr, "--target", t1.Addr, "--target-password-file", pwFile)
	if err != nil || cfg.Target.Addr != t1.Addr || cfg.ExtraTargets != nil {
		t.Errorf("one --target: %v %v %v\n%s", err, cfg.Target, cfg.ExtraTargets, logs)
	}

	// The environment's password, too, is every target's.
	t.Setenv(passwordEnv("target"), pw)
	cfg, logs, err = syncConfig(t, "--source", src.Addr, "--target", t1.Addr, "--target", t2.Addr)
	if err != nil {
		t.Fatalf("$RESYNC_TARGET_PASSWORD: %v\n%s", err, logs)
	}
	for i, o := range targets(cfg) {
		if err := login(o); err != nil {
			t.Errorf("$RESYNC_TARGET_PASSWORD: target %d: %v", i+1, err)
		}
	}
}

// Several [[target]] tables are several targets, each with its own
// password; the --target-* flags win over each table key by key, and
// --target on the command line replaces the tables as a whole.
func TestTaskFileSeveralTargets(t *testing.T) {
	src := redistest.Start(t)
	one, two := startLocked(t, "pw-One"), startLocked(t, "pw-Two")
	twoFile := writePassword(t, "two.pw", "pw-Two")
	p := writeFile(t, `name = "fanout"

[source]
url = "redis://`+src.Addr+`"

[[target]]
url = "redis://`+one.Addr+`"
password = "pw-One"

[[target]]
url = "redis://`+two.Addr+`/2"
password_file = "`+twoFile+`"
`, 0o600)

	cfg, logs, err := syncConfig(t, "--config", p)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if cfg.Name != "fanout" || cfg.Target.Addr != one.Addr || cfg.Target.Password != "pw-One" ||
		len(cfg.ExtraTargets) != 1 || cfg.ExtraTargets[0].Addr != two.Addr || cfg.ExtraTargets[0].Password != "pw-Two" || cfg.ExtraTargets[0].DB != 2 {
		t.Fatalf("Target %#v, ExtraTargets %#v", cfg.Target, cfg.ExtraTargets)
	}
	for i, o := range targets(cfg) {
		if err := login(o); err != nil {
			t.Errorf("target %d: %v", i+1, err)
		}
	}
	if strings.Contains(logs, "process list") {
		t.Errorf("a table's URL drew the command line's warning:\n%s", logs)
	}

	// A --target-* flag wins over every table's key.
	oneFile := writePassword(t, "one.pw", "pw-One")
	cfg, logs, err = syncConfig(t, "--config", p, "--target-password-file", oneFile)
	if err != nil || cfg.Target.Password != "pw-One" || cfg.ExtraTargets[0].Password != "pw-One" {
		t.Errorf("--target-password-file over the tables: %v %#v %#v\n%s", err, cfg.Target, cfg.ExtraTargets, logs)
	}

	// --target replaces the tables: their URLs and their passwords.
	cfg, logs, err = syncConfig(t, "--config", p, "--target", "redis://"+two.Addr)
	if err != nil || cfg.Target.Addr != two.Addr || cfg.Target.Password != "" || cfg.ExtraTargets != nil {
		t.Errorf("--target over the tables: %v %#v %#v\n%s", err, cfg.Target, cfg.ExtraTargets, logs)
	}
	cfg, logs, err = syncConfig(t, "--config", p, "--target", "redis://"+two.Addr, "--target", "redis://"+one.Addr, "--target-password-file", twoFile)
	if err != nil || cfg.Target.Addr != two.Addr || len(cfg.ExtraTargets) != 1 || cfg.ExtraTargets[0].Addr != one.Addr ||
		cfg.ExtraTargets[0].Password != "pw-Two" || cfg.Target.DB != 0 {
		t.Errorf("two --target over the tables: %v %#v %#v\n%s", err, cfg.Target, cfg.ExtraTargets, logs)
	}

	// The commands that take one target refuse two tables (unless
	// --target picks one) and say how to choose.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--config", p}, "line 10: 2 [[target]] tables: resync verify takes one target"},
		{[]string{"restore", "x.rdb", "--config", p}, "line 10: 2 [[target]] tables: resync restore takes one target"},
		{[]string{"check", "--config", p}, "2 targets given: resync check checks one target at a time"},
	} {
		if code, _, errOut := runCLI(c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, want %d and %q:\n%s", c.args, code, exitUsage, c.want, errOut)
		}
	}
	code, out, errOut := runCLI("check", "--config", p, "--target", "redis://"+one.Addr, "--target-password-file", oneFile)
	if code != exitOK || !strings.Contains(out, "target "+one.Addr) {
		t.Errorf("check --target over a file of two targets: exit %d:\n%s%s", code, out, errOut)
	}
}

// What cannot work with several targets is a usage error that says why:
// one server given twice, Sentinels (which locate one target), and a
// second target for the commands that take one. Each target's settings
// are checked as a single one's, and an error names the target.
func TestSeveralTargetsRefused(t *testing.T) {
	dup := writeFile(t, "[source]\nurl = \"127.0.0.1:1\"\n[[target]]\nurl = \"redis://127.0.0.1:7002\"\n[[target]]\nurl = \"redis://localhost:7003\"\n[[target]]\nurl = \"LOCALHOST:7003/4\"\n", 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "redis://127.0.0.1:7002/1"},
			"--target 127.0.0.1:7002 given twice (targets 1 and 2): give each target once"},
		{[]string{"sync", "--config", dup}, "--target LOCALHOST:7003 given twice (targets 2 and 3)"},
		{[]string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "127.0.0.1:7003",
			"--target-sentinel", "127.0.0.1:26379", "--target-master", "mymaster"},
			"--target-sentinel and --target-master locate one target, and 2 are given"},
		{[]string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "127.0.0.1:7003", "--target-tls-ca", "/no/such/ca.pem"},
			"target 1: TLS CA file"},
		{[]string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "redis://127.0.0.1:port"},
			"target 2: --target: bad redis URL"},
		{[]string{"check", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "127.0.0.1:7003"},
			"2 targets given: resync check checks one target at a time"},
		{[]string{"verify", "--source", "127.0.0.1:1", "--target", "127.0.0.1:7002", "--target", "127.0.0.1:7003"},
			"given twice: resync verify takes one target"},
		{[]string{"restore", "x.rdb", "--target", "127.0.0.1:7002", "--target", "127.0.0.1:7003"},
			"given twice: resync restore takes one target"},
		{[]string{"sync", "--source", "127.0.0.1:1", "--source", "127.0.0.1:2", "--target", "127.0.0.1:7002"},
			"given twice: resync sync takes one source"},
		{[]string{"check", "--source", "127.0.0.1:1", "--source", "127.0.0.1:2", "--target", "127.0.0.1:7002"},
			"given twice: resync check takes one source"},
	} {
		if code, _, errOut := runCLI(c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, want %d and %q:\n%s", c.args, code, exitUsage, c.want, errOut)
		}
	}

	// A password in each URL on the command line: each draws the
	// process-list warning, and neither shows.
	_, logs, err := syncConfig(t, "--source", "127.0.0.1:1", "--target", "redis://:Secret-one@127.0.0.1:7002", "--target", "redis://:Secret-two@127.0.0.1:7003")
	if err != nil || strings.Count(logs, "shows in the process list") != 2 || strings.Contains(logs, "Secret-") {
		t.Errorf("passwords in URLs: %v\n%s", err, logs)
	}
}

// resync sync runs the precheck for each target before it starts: a
// failure names the target it is about, and a check found alike for
// every target (the source's settings) is logged once, naming them all.
func TestSyncPrecheckEachTarget(t *testing.T) {
	src, clean, busy := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	redistest.Do(t, busy, "SET", "theirs", "v")
	code, _, errOut := runCLI("sync", "--source", src.Addr, "--target", clean.Addr, "--target", busy.Addr,
		"--status-addr", "", "--progress", "off")
	if code != exitProblem {
		t.Fatalf("a non-empty second target: exit %d, want %d:\n%s", code, exitProblem, errOut)
	}
	both := clean.Addr + "," + busy.Addr
	for _, want := range []string{
		"the precheck failed (conflict for target " + busy.Addr + ")",
		"check=conflict node=\"target " + busy.Addr + "\" target=" + busy.Addr + " ",
		"check=backlog node=\"source " + src.Addr + "\" target=" + both + " ",
		"targets=2",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, "check=backlog"); n != 1 {
		t.Errorf("the source's backlog WARN logged %d times:\n%s", n, errOut)
	}
	if strings.Contains(errOut, "conflict for target "+clean.Addr) || strings.Contains(errOut, "check=conflict node=\"target "+clean.Addr) {
		t.Errorf("the empty target is said to conflict:\n%s", errOut)
	}
	if redistest.Do(t, clean, "DBSIZE") != "0" {
		t.Errorf("the sync began despite the failed precheck")
	}
}

// resync sync with two targets, each with its own password from a
// [[target]] table: both get the data and what follows, from one
// replication link, and resync status lists both.
func TestSyncTwoTargetsRuns(t *testing.T) {
	src := redistest.Start(t)
	d1, d2 := startLocked(t, "pw-one"), startLocked(t, "pw-two")
	redistest.Do(t, src, "SET", "before", "1")
	file := filepath.Join(t.TempDir(), "task.toml")
	toml := "[source]\nurl = \"redis://" + src.Addr + "\"\n\n[[target]]\nurl = \"redis://" + d1.Addr + "\"\npassword = \"pw-one\"\n\n" +
		"[[target]]\nurl = \"redis://" + d2.Addr + "\"\npassword = \"pw-two\"\n"
	if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	statusAddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sync", "--config", file, "--name", "two", "--status-addr", statusAddr}, &out, &errOut)
	}()
	exists := func(d *redisproc.Server, pw, key string) bool {
		o := d.DialOptions()
		o.Password = pw
		c := redistest.DialWith(t, o)
		defer c.Close()
		v, err := c.Do("EXISTS", key)
		return err == nil && v.Int == 1
	}
	wait := func(key string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !exists(d1, "pw-one", key) || !exists(d2, "pw-two", key); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not reach both targets: %s", key, errOut.String())
			}
		}
	}
	wait("before")
	redistest.Do(t, src, "SET", "after", "2")
	wait("after")
	if n := redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "connected_slaves"); n != "1" {
		t.Errorf("%s replicas on the source: want one link for both targets", n)
	}
	code, sout, serr := runCLI("status", "--status-addr", statusAddr)
	if code != exitOK || !strings.Contains(sout, "target "+d1.Addr+"  synchronizing") || !strings.Contains(sout, "target "+d2.Addr+"  synchronizing") {
		t.Fatalf("resync status: exit %d\n%s%s", code, sout, serr)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "pw-one") || strings.Contains(errOut.String(), "pw-two") {
		t.Fatal("a password in the log")
	}
}
