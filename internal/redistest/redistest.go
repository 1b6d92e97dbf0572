// Package redistest is the test rig: it starts real redis-server processes
// for a test (standalone, replicas, clusters, Sentinels), stops them when the
// test ends, and prints their logs when it fails. The binary is
// $REDIS_SERVER when set, else redis-server from PATH. Only tests import it.
package redistest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// setupTimeout bounds the start of one server or topology.
const setupTimeout = 60 * time.Second

// Binary returns the redis-server the tests run, failing the test (not
// skipping it) when there is none: the suite is about real servers.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := redisproc.FindBinary(os.Getenv("REDIS_SERVER"))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Version returns the version of the redis-server the tests run.
func Version(t testing.TB) redisproc.Version {
	t.Helper()
	v, err := redisproc.BinaryVersion(Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// RequireVersion skips the test when the server is older than major.minor,
// saying why.
func RequireVersion(t testing.TB, major, minor int, why string) {
	t.Helper()
	if v := Version(t); !v.AtLeast(major, minor) {
		t.Skipf("redis-server %s is older than %d.%d, which %s", v, major, minor, why)
	}
}

// RequireTLS skips the test when the server cannot serve TLS: before 6.0,
// or built without it (BUILD_TLS=no).
func RequireTLS(t testing.TB) {
	t.Helper()
	RequireVersion(t, 6, 0, "introduced TLS")
	certs := NewCerts(t)
	o := Options(t)
	o.TLS = certs.ServerTLS(false)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := redisproc.Start(ctx, o)
	if err != nil {
		if strings.Contains(err.Error(), "tls-port") {
			t.Skipf("this redis-server was built without TLS: %v", err)
		}
		t.Fatal(err)
	}
	s.Stop()
}

// Options returns default options for the test's servers, with extra config lines.
func Options(t testing.TB, config ...string) redisproc.Options {
	return redisproc.Options{Binary: Binary(t), Config: config}
}

// Start starts a standalone server with extra config lines.
func Start(t testing.TB, config ...string) *redisproc.Server {
	t.Helper()
	return StartWith(t, Options(t, config...))
}

// StartWith starts a standalone server with full options.
func StartWith(t testing.TB, o redisproc.Options) *redisproc.Server {
	t.Helper()
	if o.Binary == "" {
		o.Binary = Binary(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := redisproc.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	own(t, s)
	return s
}

// StartReplica starts a server replicating master, with its link up.
func StartReplica(t testing.TB, master *redisproc.Server, config ...string) *redisproc.Server {
	t.Helper()
	o := Options(t, config...)
	o.Password = master.DialOptions().Password
	r := StartWith(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := r.ReplicaOf(ctx, master); err != nil {
		t.Fatal(err)
	}
	return r
}

// StartCluster starts a cluster of masters with replicas each, in cluster_state:ok.
func StartCluster(t testing.TB, masters, replicas int, config ...string) *redisproc.Cluster {
	t.Helper()
	return StartClusterWith(t, Options(t, config...), masters, replicas)
}

// StartClusterWith is StartCluster with full options.
func StartClusterWith(t testing.TB, o redisproc.Options, masters, replicas int) *redisproc.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*setupTimeout)
	defer cancel()
	c, err := redisproc.StartCluster(ctx, o, masters, replicas)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		own(t, n)
	}
	return c
}

// StartSentinel starts a Sentinel monitoring master as name, seeing it up.
func StartSentinel(t testing.TB, master *redisproc.Server, name string) *redisproc.Server {
	t.Helper()
	return StartSentinelWith(t, Options(t), master, name)
}

// StartSentinelWith is StartSentinel with options of the Sentinel's own
// (a password: its requirepass).
func StartSentinelWith(t testing.TB, o redisproc.Options, master *redisproc.Server, name string) *redisproc.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := redisproc.StartSentinel(ctx, o, master, name)
	if err != nil {
		t.Fatal(err)
	}
	own(t, s)
	return s
}

// own stops s when the test ends, after printing its log if the test failed.
func own(t testing.TB, s *redisproc.Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of redis-server %s (%s):\n%s", s.Addr, s.Dir, strings.Join(s.LogTail(60), "\n"))
		}
		s.Stop()
	})
}

// Dial connects to s, closing the connection when the test ends.
func Dial(t testing.TB, s *redisproc.Server) *dialer.Conn {
	t.Helper()
	return DialWith(t, s.DialOptions())
}

// DialWith connects with explicit options, closing the connection when the test ends.
func DialWith(t testing.TB, o dialer.Options) *dialer.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialer.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Do runs a command on s and fails the test on an error; it returns the
// reply as text.
func Do(t testing.TB, s *redisproc.Server, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Do(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ReplicaOffset is the offset s's first replica acknowledged (INFO
// replication's slave0), failing the test when s has none.
func ReplicaOffset(t testing.TB, s *redisproc.Server) int64 {
	t.Helper()
	line := redisproc.InfoField(Do(t, s, "INFO", "replication"), "slave0")
	for _, f := range strings.Split(line, ",") {
		if v, ok := strings.CutPrefix(f, "offset="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("replica offset %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no replica in %q", line)
	return 0
}
