package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
)

// get fetches a status server's page.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// A sync with passwords on both sides (the source's in its URL on the
// command line, the target's ACL user with a password file), through a
// lost target and a wrong password: the passwords appear nowhere in the
// logs, /status, /metrics, the dashboard, the check's report or the
// error messages.
func TestPasswordsAppearNowhere(t *testing.T) {
	redistest.RequireVersion(t, 6, 0, "ACL users")
	const srcPW, dstPW, wrongPW = "Src-S3cret-pw", "Dst-S3cret-pw", "Wrong-S3cret-pw"
	so := redistest.Options(t)
	so.Password = srcPW
	src := redistest.StartWith(t, so)
	dst := redistest.Start(t, "user resyncer on >"+dstPW+" ~* &* +@all", "user default off")
	pwFile := filepath.Join(t.TempDir(), "target.pw")
	if err := os.WriteFile(pwFile, []byte(dstPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srcURL := "redis://:" + srcPW + "@" + src.Addr
	dstURL := "redis://resyncer@" + dst.Addr
	redistest.Do(t, src, "SET", "k", "v")
	dstOpts := dst.DialOptions()
	dstOpts.Username, dstOpts.Password = "resyncer", dstPW

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var logs safeBuffer
	cmd := exec.Command(os.Args[0], "sync", "--source", srcURL, "--target", dstURL, "--target-password-file", pwFile,
		"--status-addr", "127.0.0.1:"+strconv.Itoa(port), "--log-format", "json", "--name", "secrets", "--retry-for", "1m")
	cmd.Env = append(os.Environ(), "RESYNC_TEST_AS_MAIN=1")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	arrived := func(key string) {
		t.Helper()
		c := redistest.DialWith(t, dstOpts)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if v, err := c.Do("EXISTS", key); err == nil && v.Int == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never arrived:\n%s", key, logs.String())
			}
		}
	}
	arrived("k")

	// Lose the target for a moment: errors and retries get logged and
	// listed in /status.
	dst.Kill()
	release := redistest.HoldPort(t, dst)
	redistest.Do(t, src, "SET", "during", "v")
	time.Sleep(1500 * time.Millisecond)
	release()
	if err := dst.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	arrived("during")

	var seen strings.Builder
	page := get(t, base+"/")
	seen.WriteString(page)
	// The dashboard's own files, whatever they are called.
	for _, m := range regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(page, -1) {
		seen.WriteString(get(t, base+m[1]))
	}
	st := get(t, base+"/status")
	if !strings.Contains(st, `"errors"`) {
		t.Errorf("/status lists no errors after a lost target: %s", st)
	}
	seen.WriteString(st)
	seen.WriteString(get(t, base+"/metrics"))

	// The precheck, and a wrong password, with their messages.
	_, out, errOut := runCLI("check", "--source", srcURL, "--target", dstURL, "--target-password-file", pwFile, "--on-conflict", "overwrite")
	seen.WriteString(out + errOut)
	wrongFile := filepath.Join(t.TempDir(), "wrong.pw")
	os.WriteFile(wrongFile, []byte(wrongPW), 0o600)
	code, out, errOut := runCLI("sync", "--source", srcURL, "--target", dstURL, "--target-password-file", wrongFile, "--status-addr", "", "--name", "wrong")
	if code == exitOK {
		t.Errorf("a wrong target password: exit 0")
	}
	if !strings.Contains(out+errOut, "resyncer") {
		t.Errorf("the wrong password's message does not name the user: %s", out+errOut)
	}
	seen.WriteString(out + errOut)

	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	seen.WriteString(logs.String())
	all := seen.String()
	if !strings.Contains(all, "redis://:***@"+src.Addr) && !strings.Contains(all, src.Addr) {
		t.Errorf("the output never names the source: the test would not see a leak")
	}
	for _, pw := range []string{srcPW, dstPW, wrongPW} {
		if i := strings.Index(all, pw); i >= 0 {
			t.Errorf("password %q appears in the output: …%s…", pw, all[max(0, i-200):min(len(all), i+100)])
		}
	}
	if !strings.Contains(logs.String(), "process list") {
		t.Errorf("no warning for the password on the command line:\n%s", logs.String())
	}
}
