package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// sentinelReplicas returns a Sentinel's view of a master's replicas, by
// port: each one's flags.
func sentinelReplicas(t *testing.T, s *redisproc.Server, name string) map[int]string {
	t.Helper()
	v, err := redistest.Dial(t, s).Do("SENTINEL", "SLAVES", name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, r := range v.Elems {
		f := map[string]string{}
		for i := 0; i+1 < len(r.Elems); i += 2 {
			f[r.Elems[i].Text()] = r.Elems[i+1].Text()
		}
		port, _ := strconv.Atoi(f["port"])
		out[port] = f["flags"]
	}
	return out
}

// A Sentinel watching the source sees resync's replication link, but
// never as a replica it could promote: resync announces its status port,
// where no Redis answers, so the Sentinel marks that "replica" down. A
// failover with only resync attached finds no good replica; with a real
// replica beside it, the failover picks the real one.
func TestSentinelNeverPromotesResync(t *testing.T) {
	m := redistest.Start(t)
	redistest.Do(t, m, "SET", "k", "v")
	s := redistest.StartSentinel(t, m, "src")
	dst := redistest.Start(t)
	port := freePort(t)
	var logs bytes.Buffer
	startProcess(t, &logs, "--source", m.Addr, "--target", dst.Addr, "--status-addr", "127.0.0.1:"+strconv.Itoa(port), "--name", "sentinel")
	for deadline := time.Now().Add(20 * time.Second); redistest.Do(t, dst, "EXISTS", "k") != "1"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sync did not start")
		}
	}
	// The Sentinel learns of the link from the master's INFO (every 10 s)
	// and finds nothing it can talk to at that port.
	var flags string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		flags = sentinelReplicas(t, s, "src")[port]
		if strings.Contains(flags, "s_down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinel lists resync's link with flags %q, want it down (s_down)", flags)
		}
	}
	t.Logf("the Sentinel's view of resync's link: flags %q", flags)
	_, err := redistest.Dial(t, s).Do("SENTINEL", "FAILOVER", "src")
	if err == nil || !strings.Contains(err.Error(), "NOGOODSLAVE") {
		t.Fatalf("a failover with only resync attached: %v, want NOGOODSLAVE", err)
	}

	rep := redistest.StartReplica(t, m)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := sentinelReplicas(t, s, "src")
		if f, ok := r[rep.Port]; ok && f == "slave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Sentinel never saw the real replica as good: %v", r)
		}
	}
	if _, err := redistest.Dial(t, s).Do("SENTINEL", "FAILOVER", "src"); err != nil {
		t.Fatalf("failover with a real replica: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v, err := redistest.Dial(t, s).Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "src")
		if err == nil && len(v.Elems) == 2 {
			if got := net.JoinHostPort(v.Elems[0].Text(), v.Elems[1].Text()); got == rep.Addr {
				break
			} else if got != m.Addr {
				t.Fatalf("the Sentinel promoted %s, not the real replica %s", got, rep.Addr)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the failover did not happen")
		}
	}
	if role := redisproc.InfoField(redistest.Do(t, rep, "INFO", "replication"), "role"); role != "master" {
		t.Fatalf("the real replica's role after the failover: %s", role)
	}
}

// Sentinels with a password of their own: --source-sentinel-password-file
// lets resync ask them for the master; without it the task says which
// Sentinel refused it and why.
func TestSentinelPasswordFlags(t *testing.T) {
	redistest.RequireVersion(t, 5, 0, "Sentinel's requirepass came with 5.0.1")
	m := redistest.Start(t)
	redistest.Do(t, m, "SET", "k", "v")
	so := redistest.Options(t)
	so.Password = "Sentinel-S3cret"
	s := redistest.StartSentinelWith(t, so, m, "src")
	dst := redistest.Start(t)
	args := []string{"sync", "--source", m.Addr, "--target", dst.Addr, "--source-sentinel", s.Addr, "--source-master", "src",
		"--status-addr", "", "--progress", "off", "--retry-for", "1s"}
	code, _, errOut := runCLI(args...)
	if code != exitFailed || !strings.Contains(errOut, s.Addr) || !strings.Contains(errOut, "password") {
		t.Fatalf("no Sentinel password: exit %d: %s", code, errOut)
	}
	pw := filepath.Join(t.TempDir(), "sentinel.pw")
	if err := os.WriteFile(pw, []byte("Sentinel-S3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	stop := startSync(t, &logs, append(args[1:], "--source-sentinel-password-file", pw)...)
	waitKey(t, dst, "k", &logs)
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
	if strings.Contains(logs.String()+errOut, "Sentinel-S3cret") {
		t.Fatal("the Sentinel's password is in the output")
	}
}
