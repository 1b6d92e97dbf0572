package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
)

// The status server's token: required beyond loopback, read from a file
// (or, with a warning, the command line), asked of every request; --pprof
// serves the profiler behind it.
func TestStatusTokenFlags(t *testing.T) {
	unreachable := []string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:2", "--progress", "off"}
	if code, _, errOut := runCLI(append(unreachable, "--status-addr", "0.0.0.0:0")...); code != exitUsage || !strings.Contains(errOut, "--status-addr 0.0.0.0:0") || !strings.Contains(errOut, "token") {
		t.Errorf("no token beyond loopback: exit %d: %s", code, errOut)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	if code, _, errOut := runCLI(append(unreachable, "--status-addr", "127.0.0.1:0", "--status-token", "x", "--status-token-file", tokenFile)...); code != exitUsage || !strings.Contains(errOut, "give one") {
		t.Errorf("both token flags: exit %d: %s", code, errOut)
	}
	// Past the flags, the precheck finds no source: exit 1.
	code, _, errOut := runCLI(append(unreachable, "--status-addr", "0.0.0.0:0", "--status-token", "s3cret-token")...)
	if code != exitProblem || !strings.Contains(errOut, "status token on the command line") || strings.Contains(errOut, "s3cret-token") {
		t.Errorf("--status-token: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(append(unreachable, "--status-addr", "0.0.0.0:0", "--status-token-file", tokenFile)...); code != exitProblem || strings.Contains(errOut, "WARN") {
		t.Errorf("--status-token-file: exit %d: %s", code, errOut)
	}

	src, dst := redistest.Start(t), redistest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs safeBuffer
	stop := startSync(t, &logs, "--source", src.Addr, "--target", dst.Addr, "--status-addr", addr,
		"--status-token-file", tokenFile, "--pprof", "--progress", "off")
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, 10*time.Second, func() bool { return get("/status", "s3cret-token") == http.StatusOK }, logs.String)
	if c := get("/status", ""); c != http.StatusUnauthorized {
		t.Errorf("/status without the token: %d", c)
	}
	if c := get("/debug/pprof/", "s3cret-token"); c != http.StatusOK {
		t.Errorf("--pprof: /debug/pprof/ answered %d", c)
	}
	// resync status asks for the token, and shows the task with it.
	if code, _, errOut := runCLI("status", "--status-addr", addr); code != exitFailed || !strings.Contains(errOut, "status token") {
		t.Errorf("resync status without the token: exit %d: %s", code, errOut)
	}
	if code, out, errOut := runCLI("status", "--status-addr", addr, "--status-token-file", tokenFile); code != exitOK || !strings.Contains(out, "task default:") {
		t.Errorf("resync status with the token: exit %d: %s%s", code, out, errOut)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}
