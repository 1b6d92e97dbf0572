package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
	"github.com/resync/resync/internal/verify"
)

// send runs commands on c in one round trip, failing on any error reply.
func send(t testing.TB, c *dialer.Conn, cmds ...[]string) {
	t.Helper()
	for _, cmd := range cmds {
		c.Writer().WriteCommandStrings(cmd...)
	}
	if err := c.Writer().Flush(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		v, err := c.Reader().ReadValue()
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
	}
}

// verifyData writes the same keys of every type, in db0 and db2, to each
// server.
func verifyData(t *testing.T, servers ...*redisproc.Server) {
	for _, s := range servers {
		c := redistest.Dial(t, s)
		for _, db := range []string{"0", "2"} {
			send(t, c, []string{"SELECT", db},
				[]string{"SET", "str", "v"},
				[]string{"SET", "ttl", "v"}, []string{"PEXPIRE", "ttl", "600000"},
				[]string{"HMSET", "hash", "a", "1", "b", "2"},
				[]string{"RPUSH", "list", "a", "b", "c"},
				[]string{"SADD", "set", "x", "y"},
				[]string{"ZADD", "zset", "1", "a", "2", "b"},
				[]string{"RPUSH", "shape", "a"})
			if redistest.Version(t).AtLeast(5, 0) {
				send(t, c, []string{"XADD", "stream", "1-1", "f", "v"},
					[]string{"XGROUP", "CREATE", "stream", "g1", "0"},
					[]string{"XGROUP", "CREATE", "stream", "g2", "0"},
					[]string{"XREADGROUP", "GROUP", "g1", "c", "STREAMS", "stream", ">"})
			}
		}
	}
}

func TestVerifyCommand(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	verifyData(t, src, dst)
	base := []string{"verify", "--source", src.Addr, "--target", dst.Addr, "--reverse"}
	code, out, errOut := runCLI(base...)
	if code != exitOK || !strings.Contains(out, ": EQUAL") || !strings.Contains(out, "target keys looked up") {
		t.Fatalf("equal servers: exit %d\n%s%s", code, out, errOut)
	}

	// One difference of each kind, in db2; db0 stays equal.
	want := map[string]string{ // key: kind
		"str": "missing", "extra": "extra", "shape": "type", "hash": "value",
		"list": "value", "zset": "value", "ttl": "ttl",
	}
	c := redistest.Dial(t, dst)
	send(t, c, []string{"SELECT", "2"},
		[]string{"DEL", "str"},
		[]string{"SET", "extra", "1"},
		[]string{"DEL", "shape"}, []string{"SADD", "shape", "a"},
		[]string{"HSET", "hash", "b", "3"},
		[]string{"LSET", "list", "0", "b"}, []string{"LSET", "list", "1", "a"},
		[]string{"ZADD", "zset", "5", "b"},
		[]string{"PERSIST", "ttl"})
	if redistest.Version(t).AtLeast(5, 0) {
		send(t, c, []string{"XGROUP", "DESTROY", "stream", "g2"})
		want["stream"] = "value"
	}
	report := filepath.Join(t.TempDir(), "diff.jsonl")
	code, out, errOut = runCLI(append(base, "--rounds", "1", "--report", report)...)
	if code != exitProblem || !strings.Contains(out, "NOT EQUAL") {
		t.Fatalf("differences: exit %d\n%s%s", code, out, errOut)
	}
	for key, kind := range want {
		if line := fmt.Sprintf("db 2 key %q: %s: ", key, kind); !strings.Contains(out, line) {
			t.Errorf("the report lacks %q:\n%s", line, out)
		}
	}
	for _, detail := range []string{`hash field "b": source "2", target "3"`, `list index 0: source "a", target "b"`,
		`zset member "b": source score 2, target score 5`, "source list, target set", "the target's has no TTL"} {
		if !strings.Contains(out, detail) {
			t.Errorf("the report lacks %q:\n%s", detail, out)
		}
	}
	if redistest.Version(t).AtLeast(5, 0) && !strings.Contains(out, `consumer group "g2": only the source has it`) {
		t.Errorf("the report lacks the missing consumer group:\n%s", out)
	}
	var lines []verify.Difference
	f, err := os.Open(report)
	if err != nil {
		t.Fatal(err)
	}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var d verify.Difference
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, d)
	}
	f.Close()
	if len(lines) != len(want) {
		t.Fatalf("report file: %d lines, want %d: %v", len(lines), len(want), lines)
	}

	// JSON for machines, and a short list on the terminal.
	code, out, _ = runCLI(append(base, "--rounds", "1", "--output", "json")...)
	var sum verify.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || code != exitProblem {
		t.Fatalf("--output json: exit %d %v\n%s", code, err, out)
	}
	if sum.Equal || sum.Missing != 1 || sum.Extra != 1 || sum.Type != 1 || sum.TTL != 1 || int(sum.Differences) != len(want) {
		t.Fatalf("summary %+v", sum)
	}
	code, out, _ = runCLI(append(base, "--rounds", "1", "--max-report", "2")...)
	if more := fmt.Sprintf("… and %d more", len(want)-2); code != exitProblem || !strings.Contains(out, more) {
		t.Fatalf("--max-report 2: exit %d, want %q:\n%s", code, more, out)
	}

	// Repair, then a clean verify.
	code, out, errOut = runCLI(append(base, "--rounds", "1", "--repair")...)
	if code != exitOK || !strings.Contains(out, "REPAIRED") || !strings.Contains(out, "1 deleted from the target; 0 still differ") {
		t.Fatalf("--repair: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(base...)
	if code != exitOK || !strings.Contains(out, ": EQUAL") {
		t.Fatalf("after the repair: exit %d\n%s%s", code, out, errOut)
	}
}

func TestVerifySelectionAndSample(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	send(t, sc, []string{"SELECT", "1"}, []string{"MSET", "a", "1", "tmp:x", "1"}, []string{"SELECT", "5"}, []string{"SET", "other", "1"})
	send(t, dc, []string{"SELECT", "3"}, []string{"MSET", "a", "1", "tmp:y", "2", "resync:checkpoint:x", "1"})
	code, out, errOut := runCLI("verify", "--source", src.Addr, "--target", dst.Addr, "--reverse",
		"--dbs", "1", "--map-db", "1:3", "--block-key-prefix", "tmp:")
	if code != exitOK || !strings.Contains(out, "1 source keys compared") {
		t.Fatalf("db1→db3 without tmp: exit %d\n%s%s", code, out, errOut)
	}
	// The same from a sync's task file: sync-only settings are skipped.
	file := filepath.Join(t.TempDir(), "task.toml")
	os.WriteFile(file, []byte(fmt.Sprintf(`name = "t"
dbs = "1"
map_db = ["1:3"]
block_key_prefix = ["tmp:"]
on_conflict = "overwrite"
buffer_bytes = "1MiB"
reverse = true
[source]
url = "redis://%s"
[[target]]
url = "redis://%s"
`, src.Addr, dst.Addr)), 0o600)
	if code, out, errOut := runCLI("verify", "--config", file); code != exitOK || !strings.Contains(out, "target keys looked up") {
		t.Fatalf("--config: exit %d\n%s%s", code, out, errOut)
	}

	redistest.Do(t, src, "DEBUG", "POPULATE", "10000")
	redistest.Do(t, dst, "DEBUG", "POPULATE", "10000")
	code, out, errOut = runCLI("verify", "--source", src.Addr, "--target", dst.Addr, "--dbs", "0", "--sample", "5%")
	if code != exitOK || !strings.Contains(out, "a sample: 5% of the keys picked at random") {
		t.Fatalf("--sample 5%%: exit %d\n%s%s", code, out, errOut)
	}
	for _, bad := range []string{"0", "-3", "101%", "x"} {
		if code, _, _ := runCLI("verify", "--source", src.Addr, "--target", dst.Addr, "--sample", bad); code != exitUsage {
			t.Errorf("--sample %s: exit %d, want %d", bad, code, exitUsage)
		}
	}
	if code, _, errOut := runCLI("verify", "--source", "127.0.0.1:1", "--target", dst.Addr); code != exitFailed || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("unreachable source: exit %d %s", code, errOut)
	}
}

// TestVerifyWhileSyncing runs verify against a running sync under a
// steady write load: keys in flight differ in the first round, agree in a
// later one, and none is reported.
func TestVerifyWhileSyncing(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, src, "DEBUG", "POPULATE", "30000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var syncErr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sync", "--source", src.Addr, "--target", dst.Addr, "--status-addr", ""}, &bytes.Buffer{}, &syncErr)
	}()
	for deadline := time.Now().Add(20 * time.Second); userKeys(t, dst) != 30000; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the full sync did not finish: %s", syncErr.String())
		}
	}

	// About 5000 writes a second over 10000 keys of several types.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	var loadErr error
	c := redistest.Dial(t, src)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for loadCtx.Err() == nil {
			<-tick.C
			var cmds [][]string
			for range 50 {
				n := rand.IntN(10000)
				k := strconv.Itoa(n)
				switch n % 5 {
				case 0:
					cmds = append(cmds, []string{"SET", "key:" + k, strconv.Itoa(rand.Int())})
				case 1:
					cmds = append(cmds, []string{"HINCRBY", "h:" + k, "f" + strconv.Itoa(n%7), "1"})
				case 2:
					cmds = append(cmds, []string{"RPUSH", "l:" + k, k}, []string{"LTRIM", "l:" + k, "-5", "-1"})
				case 3:
					cmds = append(cmds, []string{"ZINCRBY", "z:" + k, "1.5", "m" + strconv.Itoa(n%3)})
				case 4:
					cmds = append(cmds, []string{"SET", "t:" + k, "v", "PX", strconv.Itoa(60000 + rand.IntN(60000))})
				}
			}
			for _, cmd := range cmds {
				c.Writer().WriteCommandStrings(cmd...)
			}
			if loadErr = c.Writer().Flush(); loadErr != nil {
				return
			}
			for range cmds {
				if _, loadErr = c.Receive("load"); loadErr != nil {
					return
				}
			}
			writes += len(cmds)
		}
	}()
	// A rate cap stretches the walk over seconds of load.
	code, out, errOut := runCLI("verify", "--source", src.Addr, "--target", dst.Addr, "--reverse", "--rate", "20000", "--output", "json")
	stopLoad()
	wg.Wait()
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	var sum verify.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("exit %d: %v\n%s%s", code, err, out, errOut)
	}
	t.Logf("%d writes during the verify; %d keys compared in %.1fs; %d differed in the first round, %d after %d rounds",
		writes, sum.Keys, sum.Seconds, sum.FirstRound, sum.Differences, sum.Rounds)
	if code != exitOK || !sum.Equal || sum.Keys < 30000 || sum.Seconds < 1.5 {
		t.Fatalf("verify during a sync: exit %d, diffs %v\n%s", code, sum.Diffs, errOut)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("sync: exit %d: %s", code, syncErr.String())
	}
}

// fillRouted writes SET key value for each key on the master that serves
// it, and on the standalone server.
func fillRouted(t *testing.T, c *redisproc.Cluster, s *redisproc.Server, n int) {
	top, err := cluster.Load(redistest.Dial(t, c.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string][][]string{}
	var all [][]string
	for i := range n {
		k := "key:" + strconv.Itoa(i)
		cmd := []string{"SET", k, "v" + k}
		if i%3 == 0 {
			cmd = []string{"RPUSH", k, "a", k}
		}
		addr := top.Masters[top.Owner(cluster.Slot([]byte(k)))].Addr
		byNode[addr] = append(byNode[addr], cmd)
		all = append(all, cmd)
	}
	for _, m := range c.Masters {
		send(t, redistest.Dial(t, m), byNode[m.Addr]...)
	}
	send(t, redistest.Dial(t, s), all...)
}

func TestVerifyCluster(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	cl, single := redistest.StartCluster(t, 3, 0), redistest.Start(t)
	fillRouted(t, cl, single, 3000)
	node := cl.Masters[1].Addr // any node: the others are found
	if code, out, errOut := runCLI("verify", "--source", node, "--target", single.Addr, "--reverse"); code != exitOK || !strings.Contains(out, "3000 source keys compared") {
		t.Fatalf("cluster → standalone: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("verify", "--source", single.Addr, "--target", node, "--reverse"); code != exitOK || !strings.Contains(out, "3000 source keys compared") {
		t.Fatalf("standalone → cluster: exit %d\n%s%s", code, out, errOut)
	}
	c := redistest.Dial(t, single)
	send(t, c, []string{"DEL", "key:1", "key:2", "key:3"}, []string{"RPUSH", "key:6", "x"}, []string{"SET", "extra", "1"})
	code, out, errOut := runCLI("verify", "--source", node, "--target", single.Addr, "--reverse", "--rounds", "1", "--repair")
	if code != exitOK || !strings.Contains(out, "5 differences") || !strings.Contains(out, "repair: 4 keys copied from the source again, 1 deleted from the target; 0 still differ") {
		t.Fatalf("cluster → standalone --repair: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("verify", "--source", node, "--target", single.Addr, "--reverse"); code != exitOK {
		t.Fatalf("after the repair: exit %d\n%s%s", code, out, errOut)
	}
	// And into a cluster: copies and deletions go to the master that
	// serves each key.
	send(t, c, []string{"SET", "key:1", "changed"}, []string{"SET", "only-source", "1"})
	top, err := cluster.Load(redistest.Dial(t, cl.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cl.Masters {
		if m.Addr == top.Masters[top.Owner(cluster.Slot([]byte("stray")))].Addr {
			send(t, redistest.Dial(t, m), []string{"SET", "stray", "1"})
		}
	}
	code, out, errOut = runCLI("verify", "--source", single.Addr, "--target", node, "--reverse", "--rounds", "1", "--repair")
	if code != exitOK || !strings.Contains(out, "repair: 2 keys copied from the source again, 1 deleted from the target; 0 still differ") {
		t.Fatalf("standalone → cluster --repair: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("verify", "--source", single.Addr, "--target", node, "--reverse"); code != exitOK {
		t.Fatalf("after the repair into the cluster: exit %d\n%s%s", code, out, errOut)
	}
}

// userKeys counts a server's db 0 keys outside resync's reserved prefix.
func userKeys(t *testing.T, s *redisproc.Server) int {
	t.Helper()
	n, _ := strconv.Atoi(redistest.Do(t, s, "DBSIZE"))
	v, err := redistest.Dial(t, s).Do("KEYS", task.ReservedPrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	return n - len(v.Elems)
}
