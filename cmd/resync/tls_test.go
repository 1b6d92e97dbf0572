package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// startTLS starts a server that speaks TLS only, with certs.
func startTLS(t *testing.T, certs *redistest.Certs, requireClientCert bool, config ...string) *redisproc.Server {
	t.Helper()
	o := redistest.Options(t, config...)
	o.TLS = certs.ServerTLS(requireClientCert)
	return redistest.StartWith(t, o)
}

// startSync runs resync sync until the returned stop is called, which
// returns its exit code.
func startSync(t *testing.T, logs *safeBuffer, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"sync"}, args...), &bytes.Buffer{}, logs) }()
	t.Cleanup(cancel)
	return func() int {
		cancel()
		return <-done
	}
}

// waitKey waits until key exists on s.
func waitKey(t *testing.T, s *redisproc.Server, key string, logs *safeBuffer) {
	t.Helper()
	waitUntil(t, 30*time.Second, func() bool { return redistest.Do(t, s, "EXISTS", key) == "1" },
		func() string { return key + " never reached the target:\n" + logs.String() })
}

// TLS on both sides, through the one set of flags every command has: a
// source that requires a client certificate (rediss://), a target reached
// as an ACL user with a password file (redis:// made TLS by its
// --target-tls-ca). sync copies and follows the source; verify, dump and
// restore work over the same settings.
func TestTLSEverywhere(t *testing.T) {
	redistest.RequireTLS(t)
	certs := redistest.NewCerts(t)
	const pw = "tls-Target-pw"
	src := startTLS(t, certs, true)
	dst := startTLS(t, certs, false, "user resyncer on >"+pw+" ~* &* +@all")
	pwFile := filepath.Join(t.TempDir(), "target.pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	redistest.Do(t, src, "SET", "k", "v")
	redistest.Do(t, src, "HSET", "h", "f", "v")
	redistest.Do(t, src, "RPUSH", "l", "a", "b")
	srcArgs := []string{"--source", "rediss://" + src.Addr, "--source-tls-ca", certs.CAFile,
		"--source-tls-cert", certs.ClientCert, "--source-tls-key", certs.ClientKey}
	dstArgs := []string{"--target", "redis://resyncer@" + dst.Addr, "--target-tls-ca", certs.CAFile, "--target-password-file", pwFile}

	var logs safeBuffer
	stop := startSync(t, &logs, append(append([]string{"--status-addr", "", "--progress", "off", "--name", "tls"}, srcArgs...), dstArgs...)...)
	waitKey(t, dst, "k", &logs)
	redistest.Do(t, src, "SET", "after", "1")
	waitKey(t, dst, "after", &logs)
	if code := stop(); code != exitOK {
		t.Fatalf("sync: exit %d:\n%s", code, logs.String())
	}
	equal(t, src, dst)
	// The precheck's warnings (the source's default replication
	// settings) aside, TLS draws none.
	var warned []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "WARN") && !strings.Contains(line, "precheck WARN") {
			warned = append(warned, line)
		}
	}
	if strings.Contains(logs.String(), pw) || len(warned) > 0 {
		t.Errorf("a warning or the password in the log:\n%s", logs.String())
	}

	if code, out, errOut := runCLI(append(append([]string{"verify"}, srcArgs...), dstArgs...)...); code != exitOK || !strings.Contains(out, "EQUAL") {
		t.Fatalf("verify: exit %d: %s %s", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "snap.rdb")
	if code, out, errOut := runCLI(append([]string{"dump", "-o", file}, srcArgs...)...); code != exitOK {
		t.Fatalf("dump: exit %d: %s %s", code, out, errOut)
	}
	// The certificate holds 127.0.0.1 and localhost: name the one to check.
	third := startTLS(t, certs, false)
	code, out, errOut := runCLI("restore", file, "--target", "rediss://"+third.Addr, "--target-tls-ca", certs.CAFile, "--target-tls-server-name", "localhost")
	if code != exitOK || !strings.Contains(out, "4 keys written") {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
}

// A certificate signed by a CA resync was not given fails the task at
// once, naming the side and why; --tls-insecure accepts it, with a
// warning.
func TestTLSWrongCA(t *testing.T) {
	redistest.RequireTLS(t)
	certs := redistest.NewCerts(t)
	tlsServer, plain := startTLS(t, certs, false), redistest.Start(t)
	redistest.Do(t, tlsServer, "SET", "k", "v")
	redistest.Do(t, plain, "SET", "p", "v")
	for _, c := range []struct{ side, source, target string }{
		{"source", "rediss://" + tlsServer.Addr, plain.Addr},
		{"target", plain.Addr, "rediss://" + tlsServer.Addr},
	} {
		code, _, errOut := runCLI("sync", "--source", c.source, "--target", c.target, "--"+c.side+"-tls-ca", certs.OtherCAFile,
			"--status-addr", "", "--progress", "off", "--on-conflict", "overwrite")
		// The precheck stops it, naming the side, why and the fix.
		for _, want := range []string{`check=reachable node="` + c.side + " " + tlsServer.Addr + `" why="TLS: certificate not trusted: the server's certificate is signed by an unknown authority`,
			"fix=\"check --" + c.side + "-tls-ca", "the precheck failed (reachable)"} {
			if code != exitProblem || !strings.Contains(errOut, want) {
				t.Errorf("%s: exit %d, want %d and %q:\n%s", c.side, code, exitProblem, want, errOut)
			}
		}
		// Waived, the task says the same in its own words.
		code, _, errOut = runCLI("sync", "--source", c.source, "--target", c.target, "--"+c.side+"-tls-ca", certs.OtherCAFile,
			"--status-addr", "", "--progress", "off", "--on-conflict", "overwrite", "--skip-check", "reachable")
		if code != exitUsage || !strings.Contains(errOut, "reachable") {
			t.Errorf("%s: --skip-check reachable: exit %d (it cannot be waived):\n%s", c.side, code, errOut)
		}
	}

	var logs safeBuffer
	stop := startSync(t, &logs, "--source", "rediss://"+tlsServer.Addr, "--source-tls-ca", certs.OtherCAFile, "--tls-insecure",
		"--target", plain.Addr, "--status-addr", "", "--progress", "off", "--on-conflict", "overwrite")
	waitKey(t, plain, "k", &logs)
	if code := stop(); code != exitOK {
		t.Fatalf("--tls-insecure: exit %d:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), "TLS certificate verification is off for the source") {
		t.Errorf("no warning for --tls-insecure:\n%s", logs.String())
	}
}
