package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resync/resync/internal/precheck"
	"github.com/resync/resync/internal/redistest"
)

// resync check: exit 1 with a FAIL, 0 with warnings only, 2 on bad
// usage; the text and JSON reports; a waived check; a task file applied
// as sync applies it.
func TestCheckCommand(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	redistest.Do(t, dst, "SET", "theirs", "v")
	base := []string{"check", "--source", "redis://" + src.Addr, "--target", "redis://" + dst.Addr}

	code, out, errOut := runCLI(base...)
	if code != exitProblem {
		t.Fatalf("a non-empty target: exit %d, want %d\n%s%s", code, exitProblem, out, errOut)
	}
	for _, want := range []string{"VERDICT  CHECK", "FAIL     conflict", "target " + dst.Addr, "db0 holds 1 key",
		"  fix: empty those databases", "WARN     backlog", "failed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCLI(append(base, "--output", "json")...)
	var rep precheck.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitProblem {
		t.Fatalf("--output json: exit %d, %v:\n%s", code, err, out)
	}
	if rs := rep.Find("conflict"); len(rs) != 1 || rs[0].Verdict != precheck.Fail || rs[0].Node != "target "+dst.Addr || rs[0].Fix == "" {
		t.Errorf("json conflict result: %+v", rs)
	}
	if !strings.Contains(out, `"verdict": "PASS"`) || !strings.Contains(out, `"check": "reachable"`) {
		t.Errorf("json report:\n%s", out)
	}

	// Warnings alone exit 0: the conflict waived, or the rule changed.
	code, out, errOut = runCLI(append(base, "--skip-check", "conflict,clock")...)
	if code != exitOK || !strings.Contains(out, "waived by --skip-check conflict") || !strings.Contains(out, "waived by --skip-check clock") {
		t.Errorf("--skip-check conflict,clock: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(append(base, "--on-conflict", "overwrite")...)
	if code != exitOK || !strings.Contains(out, "WARN     conflict") {
		t.Errorf("--on-conflict overwrite: exit %d\n%s%s", code, out, errOut)
	}

	// A task file: its settings apply as they do for sync.
	task := filepath.Join(t.TempDir(), "task.toml")
	toml := "on_conflict = \"overwrite\"\nskip_check = [\"backlog\"]\n[source]\nurl = \"redis://" + src.Addr + "\"\n[[target]]\nurl = \"redis://" + dst.Addr + "\"\n"
	if err := os.WriteFile(task, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI("check", "--config", task)
	if code != exitOK || !strings.Contains(out, "WARN     conflict") || !strings.Contains(out, "waived by --skip-check backlog") {
		t.Errorf("--config: exit %d\n%s%s", code, out, errOut)
	}

	// Usage errors name what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--skip-check", "nosuch"), `"nosuch": no such check`},
		{append(base, "--skip-check", "auth"), "auth cannot be waived"},
		{append(base, "--output", "yaml"), `--output "yaml"`},
		{append(base, "--on-conflict", "merge"), `--on-conflict "merge"`},
		{[]string{"check", "--source", "redis://" + src.Addr}, "--source and --target are required"},
		{append(base, "--no-such-flag"), "flag provided but not defined"},
	} {
		code, out, errOut := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stderr %q, want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}

// A password never shows in check's output, even with the URL's.
func TestCheckHidesPasswords(t *testing.T) {
	const secret = "Hush-9137"
	o := redistest.Options(t)
	o.Password = secret
	locked := redistest.StartWith(t, o)
	open := redistest.Start(t)
	code, out, errOut := runCLI("check", "--source", "redis://:not-"+secret+"@"+locked.Addr, "--target", "redis://"+open.Addr, "--output", "json")
	if code != exitProblem || !strings.Contains(out, "wrong password for the default user") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, secret) {
		t.Errorf("the output shows the password:\n%s%s", out, errOut)
	}
}

// resync check --source-mode scan checks what scan mode needs: the
// keyspace notifications (a FAIL without --enable-notifications, with
// the fix), the exactness WARN, and no replication checks.
func TestCheckScanMode(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	base := []string{"check", "--source", "redis://" + src.Addr, "--target", "redis://" + dst.Addr, "--source-mode", "scan"}
	code, out, errOut := runCLI(base...)
	if code != exitProblem {
		t.Fatalf("notifications off: exit %d, want %d\n%s%s", code, exitProblem, out, errOut)
	}
	for _, want := range []string{"FAIL     scan-mode", "keyspace notifications are off", "--enable-notifications", "WARN     scan-mode", "cannot be exact",
		"PASS     backlog", "scan mode: no replication link"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCLI(append(base, "--enable-notifications")...)
	if code != exitOK || !strings.Contains(out, "resync will turn them on") {
		t.Errorf("--enable-notifications: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI("check", "--source", src.Addr, "--target", dst.Addr, "--source-mode", "tail"); code != exitUsage || !strings.Contains(errOut, "--source-mode") {
		t.Errorf("--source-mode tail: exit %d: %s", code, errOut)
	}
}
