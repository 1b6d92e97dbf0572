package compare_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

func fill(t *testing.T, s *redisproc.Server) {
	for _, cmd := range [][]string{
		{"SET", "s", "v"}, {"RPUSH", "l", "a", "b"}, {"SADD", "set", "x", "y", "z"},
		{"ZADD", "z", "1", "a", "2.5", "b"}, {"HMSET", "h", "f", "1", "g", "2"},
		{"SET", "ttl", "v"}, {"PEXPIRE", "ttl", "100000"},
		{"SELECT", "2"}, {"SET", "in2", "v"},
	} {
		redistest.Do(t, s, cmd...)
	}
	if redistest.Version(t).AtLeast(5, 0) {
		redistest.Do(t, s, "XADD", "x", "1-1", "f", "v")
		redistest.Do(t, s, "XGROUP", "CREATE", "x", "g", "0")
	}
}

func run(t *testing.T, a, b *redisproc.Server, o compare.Options) *compare.Report {
	t.Helper()
	rep, err := compare.Compare(context.Background(), a.DialOptions(), b.DialOptions(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// kinds lists a report's differences as "kind:key", sorted.
func kinds(rep *compare.Report) []string {
	var out []string
	for _, d := range rep.Diffs {
		out = append(out, string(d.Kind)+":"+d.Key)
	}
	slices.Sort(out)
	return out
}

func TestCompare(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	fill(t, a)
	fill(t, b)
	if rep := run(t, a, b, compare.Options{Reverse: true}); !rep.Equal() || rep.Keys < 7 {
		t.Fatalf("equal servers: %d keys, %v", rep.Keys, rep.Diffs)
	}
	for _, cmd := range [][]string{
		{"RPUSH", "l", "c"},                 // value
		{"DEL", "s"},                        // missing
		{"DEL", "set"}, {"SET", "set", "x"}, // type
		{"PERSIST", "ttl"},                 // ttl
		{"SET", "only-target", "1"},        // extra
		{"SET", "resync:heartbeat:t", "1"}, // skipped
	} {
		redistest.Do(t, b, cmd...)
	}
	rep := run(t, a, b, compare.Options{Reverse: true, SkipPrefix: "resync:"})
	want := []string{"extra:only-target", "missing:s", "ttl:ttl", "type:set", "value:l"}
	if got := kinds(rep); !slices.Equal(got, want) {
		t.Fatalf("diffs %q, want %q", got, want)
	}
}

// pipe sends commands in one round trip and fails the test on any error.
func pipe(t testing.TB, c *dialer.Conn, cmds [][]string) {
	t.Helper()
	w, r := c.Writer(), c.Reader()
	for _, cmd := range cmds {
		w.WriteCommandStrings(cmd...)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for range cmds {
		v, err := r.ReadValue()
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// bigData writes, to every server given, collections too big for one read
// (so they are compared in chunks) and small ones of each type.
func bigData(t *testing.T, servers ...*redisproc.Server) {
	streams := redistest.Version(t).AtLeast(5, 0)
	for _, s := range servers {
		c := redistest.Dial(t, s)
		c.SetIOTimeout(time.Minute)
		var cmds [][]string
		for i := range 5000 {
			n := strconv.Itoa(i)
			cmds = append(cmds,
				[]string{"HSET", "bighash", "f" + n, "v" + n},
				[]string{"RPUSH", "biglist", "e" + n},
				[]string{"SADD", "bigset", "m" + n},
				[]string{"ZADD", "bigzset", n, "m" + n})
			if streams {
				cmds = append(cmds, []string{"XADD", "bigstream", n + "-1", "f", n})
			}
		}
		cmds = append(cmds,
			[]string{"SET", "bigstring", strings.Repeat("0123456789", 300_000)},
			[]string{"HMSET", "hash", "a", "1", "b", "2"},
			[]string{"RPUSH", "list", "a", "b", "c"},
			[]string{"ZADD", "zset", "1", "a", "2", "b"},
			[]string{"SET", "ttl", "v"}, []string{"PEXPIRE", "ttl", "100000"})
		if streams {
			cmds = append(cmds,
				[]string{"XADD", "stream", "1-1", "f", "v"},
				[]string{"XADD", "stream", "2-1", "f", "w"},
				[]string{"XGROUP", "CREATE", "stream", "g1", "0"},
				[]string{"XGROUP", "CREATE", "stream", "g2", "0"},
				[]string{"XREADGROUP", "GROUP", "g1", "c", "COUNT", "1", "STREAMS", "stream", ">"},
				[]string{"XGROUP", "CREATE", "bigstream", "g", "0"})
		}
		if redistest.Version(t).AtLeast(7, 4) {
			cmds = append(cmds,
				[]string{"HPEXPIRE", "hash", "3600000", "FIELDS", "1", "a"},
				[]string{"HPEXPIRE", "bighash", "3600000", "FIELDS", "1", "f4000"})
		}
		for len(cmds) > 0 {
			n := min(len(cmds), 1000)
			pipe(t, c, cmds[:n])
			cmds = cmds[n:]
		}
	}
}

// TestEachKindOfDifference changes one thing at a time on the target and
// checks the comparison names the key and the kind, for small values and
// for values compared in chunks.
func TestEachKindOfDifference(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	bigData(t, a, b)
	if rep := run(t, a, b, compare.Options{Reverse: true}); !rep.Equal() {
		t.Fatalf("equal servers: %v", rep.Diffs)
	}
	streams := redistest.Version(t).AtLeast(5, 0)
	cases := []struct {
		name   string
		change [][]string
		want   string // kind:key
		detail string // part of the detail
	}{
		{"missing key", [][]string{{"DEL", "hash"}}, "missing:hash", "no such key"},
		{"extra key", [][]string{{"SET", "extra", "1"}}, "extra:extra", "only the target"},
		{"other type", [][]string{{"DEL", "list"}, {"SADD", "list", "a"}}, "type:list", "source list, target set"},
		{"hash field", [][]string{{"HSET", "hash", "b", "3"}}, "value:hash", `hash field "b"`},
		{"hash field only on target", [][]string{{"HSET", "hash", "c", "3"}}, "value:hash", "only the target"},
		{"list order", [][]string{{"LSET", "list", "0", "b"}, {"LSET", "list", "1", "a"}}, "value:list", "list index 0"},
		{"zset score", [][]string{{"ZADD", "zset", "7", "b"}}, "value:zset", `zset member "b": source score 2, target score 7`},
		{"ttl removed", [][]string{{"PERSIST", "ttl"}}, "ttl:ttl", "has no TTL"},
		{"big hash field", [][]string{{"HSET", "bighash", "f4321", "x"}}, "value:bighash", `hash field "f4321"`},
		{"big hash field replaced", [][]string{{"HDEL", "bighash", "f17"}, {"HSET", "bighash", "new", "1"}}, "value:bighash", `hash field "f17": only the source`},
		{"big list order", [][]string{{"LSET", "biglist", "3000", "e3001"}, {"LSET", "biglist", "3001", "e3000"}}, "value:biglist", "list index 3000"},
		{"big list longer", [][]string{{"RPUSH", "biglist", "more"}}, "value:biglist", "length: source 5000"},
		{"big set member", [][]string{{"SREM", "bigset", "m4000"}, {"SADD", "bigset", "other"}}, "value:bigset", `set member "m4000"`},
		{"big zset score", [][]string{{"ZADD", "bigzset", "4500.5", "m4500"}}, "value:bigzset", `zset member "m4500"`},
		{"big string", [][]string{{"SETRANGE", "bigstring", "2000000", "X"}}, "value:bigstring", "from byte 2000000"},
	}
	if streams {
		cases = append(cases, []struct {
			name   string
			change [][]string
			want   string
			detail string
		}{
			{"consumer group missing", [][]string{{"XGROUP", "DESTROY", "stream", "g2"}}, "value:stream", `consumer group "g2": only the source`},
			{"pending count", [][]string{{"XACK", "stream", "g1", "1-1"}}, "value:stream", `consumer group "g1": pending source 1, target 0`},
			{"big stream entry", rebuiltStream(3333), "value:bigstream", `stream entry 3333-1`},
			{"big stream shorter", [][]string{{"XDEL", "bigstream", "3333-1"}}, "value:bigstream", "length: source 5000 entries, target 4999"},
			{"last id", [][]string{{"XADD", "stream", "9-1", "f", "v"}, {"XDEL", "stream", "9-1"}}, "value:stream", "last-generated-id"},
		}...)
	}
	if redistest.Version(t).AtLeast(7, 4) {
		cases = append(cases, []struct {
			name   string
			change [][]string
			want   string
			detail string
		}{
			{"hash field ttl removed", [][]string{{"HPERSIST", "hash", "FIELDS", "1", "a"}}, "ttl:hash", `hash field "a": the source field expires`},
			{"hash field ttl added", [][]string{{"HPEXPIRE", "hash", "3600000", "FIELDS", "1", "b"}}, "ttl:hash", `hash field "b": the source field has no TTL`},
			{"big hash field ttl removed", [][]string{{"HPERSIST", "bighash", "FIELDS", "1", "f4000"}}, "value:bighash", `hash field "f4000": the source field expires`},
		}...)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case starts from an equal target: a fresh copy.
			b := redistest.Start(t)
			bigData(t, b)
			for _, cmd := range tc.change {
				redistest.Do(t, b, cmd...)
			}
			// The source was written a while ago: its TTL has run down.
			rep := run(t, a, b, compare.Options{Reverse: true, TTLTolerance: time.Minute})
			if got := kinds(rep); !slices.Equal(got, []string{tc.want}) {
				t.Fatalf("diffs %v, want %s", rep.Diffs, tc.want)
			}
			if d := rep.Diffs[0].Detail; !strings.Contains(d, tc.detail) {
				t.Fatalf("detail %q, want it to say %q", d, tc.detail)
			}
		})
	}
}

// rebuiltStream builds bigstream again with one entry's value changed,
// and the same group and last id: only the entries differ.
func rebuiltStream(changed int) [][]string {
	cmds := [][]string{{"DEL", "bigstream"}}
	for i := range 5000 {
		v := strconv.Itoa(i)
		if i == changed {
			v = "changed"
		}
		cmds = append(cmds, []string{"XADD", "bigstream", strconv.Itoa(i) + "-1", "f", v})
	}
	return append(cmds, []string{"XGROUP", "CREATE", "bigstream", "g", "0"})
}

func TestMappedDatabasesAndFilters(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	ac, bc := redistest.Dial(t, a), redistest.Dial(t, b)
	pipe(t, ac, [][]string{{"SELECT", "1"}, {"MSET", "k1", "v", "skip:k", "v"}})
	pipe(t, bc, [][]string{{"SELECT", "3"}, {"MSET", "k1", "v", "skip:other", "v", "resync:heartbeat:x", "1"}})
	f, err := filter.New(filter.Config{DBs: []int{1}, MapDB: map[int]int{1: 3}, BlockKeyPrefix: []string{"skip:"}, ReservedPrefix: "resync:"})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, a, b, compare.Options{Reverse: true, Filter: f})
	if !rep.Equal() || rep.Keys != 1 {
		t.Fatalf("mapped db1→db3: %d keys, %v", rep.Keys, rep.Diffs)
	}
	pipe(t, bc, [][]string{{"SET", "k2", "only here"}})
	rep = run(t, a, b, compare.Options{Reverse: true, Filter: f})
	if got := kinds(rep); !slices.Equal(got, []string{"extra:k2"}) || rep.Diffs[0].DB != 3 {
		t.Fatalf("diffs %v, want extra k2 in db 3", rep.Diffs)
	}
}

func TestSample(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	for _, s := range []*redisproc.Server{a, b} {
		redistest.Do(t, s, "DEBUG", "POPULATE", "20000")
	}
	rep := run(t, a, b, compare.Options{SampleKeys: 1000})
	if !rep.Equal() || rep.Keys < 900 || rep.Keys > 1000 {
		t.Fatalf("sample of 1000: %d keys, %v", rep.Keys, rep.Diffs)
	}
	rep = run(t, a, b, compare.Options{Sample: 0.1})
	if !rep.Equal() || rep.Keys < 1500 || rep.Keys > 2500 {
		t.Fatalf("sample of 10%%: %d keys", rep.Keys)
	}
	// A sample spreads over the key space: with every tenth key
	// different, about a tenth of the sample differs.
	for i := 0; i < 20000; i += 10 {
		redistest.Do(t, b, "SET", fmt.Sprintf("key:%d", i), "changed")
	}
	rep = run(t, a, b, compare.Options{SampleKeys: 2000})
	if n := len(rep.Diffs); n < 100 || n > 300 {
		t.Fatalf("%d of a 2000-key sample differ, want about 200", n)
	}
}

func TestRate(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	for _, s := range []*redisproc.Server{a, b} {
		redistest.Do(t, s, "DEBUG", "POPULATE", "3000")
	}
	start := time.Now()
	rep := run(t, a, b, compare.Options{Rate: 2000})
	if d := time.Since(start); !rep.Equal() || rep.Keys != 3000 || d < time.Second {
		t.Fatalf("3000 keys at 2000 keys/s took %s (want over 1s): %d keys, %v", d, rep.Keys, rep.Diffs)
	}
}

func TestRecheck(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	redistest.Do(t, a, "MSET", "k1", "1", "k2", "2", "k3", "3")
	redistest.Do(t, b, "MSET", "k1", "1", "k2", "x", "gone", "1")
	c := compare.New(a.DialOptions(), b.DialOptions(), compare.Options{Reverse: true})
	var first []compare.Diff
	if err := c.Walk(context.Background(), func(d compare.Diff) { first = append(first, d) }); err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 {
		t.Fatalf("first pass: %v", first)
	}
	// The sync catches up on two of the three; the source drops k3.
	redistest.Do(t, b, "SET", "k2", "2")
	redistest.Do(t, b, "DEL", "gone")
	redistest.Do(t, a, "DEL", "k3")
	redistest.Do(t, b, "SET", "k3", "late")
	var again []compare.Diff
	if err := c.Recheck(context.Background(), first, func(d compare.Diff) { again = append(again, d) }); err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Key != "k3" || again[0].Kind != compare.Extra {
		t.Fatalf("recheck: %v, want k3 extra (the source deleted it)", again)
	}
}

// clusterData are commands that write keys of each type, cmd[1] the key.
func clusterData(n int) [][]string {
	var cmds [][]string
	for i := range n {
		k := "k:" + strconv.Itoa(i)
		switch i % 4 {
		case 0:
			cmds = append(cmds, []string{"SET", k, "v" + k})
		case 1:
			cmds = append(cmds, []string{"HMSET", k, "a", "1", "b", k})
		case 2:
			cmds = append(cmds, []string{"RPUSH", k, "x", "y", k})
		case 3:
			cmds = append(cmds, []string{"ZADD", k, "1.5", k})
		}
	}
	return cmds
}

// apply runs commands on a standalone server or, routed by the slot of
// their first key, on a cluster's masters.
func apply(t *testing.T, s *redisproc.Server, c *redisproc.Cluster, cmds [][]string) {
	t.Helper()
	if s != nil {
		pipe(t, redistest.Dial(t, s), cmds)
		return
	}
	conn := redistest.Dial(t, c.Masters[0])
	top, err := cluster.Load(conn)
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string][][]string{}
	for _, cmd := range cmds {
		addr := top.Masters[top.Owner(cluster.Slot([]byte(cmd[1])))].Addr
		byNode[addr] = append(byNode[addr], cmd)
	}
	for _, m := range c.Masters {
		if cmds := byNode[m.Addr]; len(cmds) > 0 {
			pipe(t, redistest.Dial(t, m), cmds)
		}
	}
}

// TestClusterSides compares standalone with cluster, cluster with
// standalone and clusters of different shard counts: every key is found
// on the node that serves its slot, on either side.
func TestClusterSides(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	data := clusterData(2000)
	single := redistest.Start(t)
	three := redistest.StartCluster(t, 3, 0)
	two := redistest.StartCluster(t, 2, 0)
	apply(t, single, nil, data)
	apply(t, nil, three, data)
	apply(t, nil, two, data)
	addr := func(s *redisproc.Server, c *redisproc.Cluster) dialer.Options {
		if s != nil {
			return s.DialOptions()
		}
		return c.Masters[len(c.Masters)-1].DialOptions() // any node will do
	}
	type end struct {
		name string
		s    *redisproc.Server
		c    *redisproc.Cluster
	}
	ends := []end{{"standalone", single, nil}, {"cluster(3)", nil, three}, {"cluster(2)", nil, two}}
	for _, a := range ends {
		for _, b := range ends {
			if a.name == b.name {
				continue
			}
			t.Run(a.name+"→"+b.name, func(t *testing.T) {
				rep, err := compare.Compare(context.Background(), addr(a.s, a.c), addr(b.s, b.c), compare.Options{Reverse: true})
				if err != nil || !rep.Equal() || rep.Keys != len(data) {
					t.Fatalf("%v: %d keys, %v", err, rep.Keys, rep.Diffs)
				}
			})
		}
	}

	// Differences on several shards of the target are all found.
	apply(t, nil, three, [][]string{{"DEL", "k:0"}, {"DEL", "k:5"}, {"RPUSH", "k:6", "more"}, {"SET", "extra:1", "1"}, {"SET", "extra:2", "1"}})
	rep, err := compare.Compare(context.Background(), single.DialOptions(), addr(nil, three), compare.Options{Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"extra:extra:1", "extra:extra:2", "missing:k:0", "missing:k:5", "value:k:6"}
	if got := kinds(rep); !slices.Equal(got, want) {
		t.Fatalf("diffs %v, want %v", rep.Diffs, want)
	}

	// A cluster has db 0 only: other source databases need a mapping.
	pipe(t, redistest.Dial(t, single), [][]string{{"SELECT", "2"}, {"SET", "k:0", "v"}})
	_, err = compare.Compare(context.Background(), single.DialOptions(), addr(nil, two), compare.Options{})
	if err == nil || !strings.Contains(err.Error(), "source db 2") || !strings.Contains(err.Error(), "--map-db 2:0") {
		t.Fatalf("db 2 into a cluster: %v", err)
	}
	f, err := filter.New(filter.Config{DBs: []int{2}, MapDB: map[int]int{2: 0}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = compare.Compare(context.Background(), single.DialOptions(), addr(nil, two), compare.Options{Filter: f})
	if err != nil || rep.Keys != 1 || len(rep.Diffs) != 1 || rep.Diffs[0].Detail != `the strings differ from byte 1: source "", target "k:0"` {
		t.Fatalf("db 2 mapped to 0: %v %d %v", err, rep.Keys, rep.Diffs)
	}
}
