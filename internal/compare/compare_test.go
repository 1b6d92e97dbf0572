package compare_test

import (
	"context"
	"slices"
	"testing"

	"github.com/resync/resync/internal/compare"
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
	rep, err := compare.Compare(context.Background(), redistest.Dial(t, a), redistest.Dial(t, b), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
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
	var kinds []string
	for _, d := range rep.Diffs {
		kinds = append(kinds, d.Kind+":"+d.Key)
	}
	slices.Sort(kinds)
	want := []string{"extra:only-target", "missing:s", "ttl:ttl", "type:set", "value:l"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("diffs %q, want %q", kinds, want)
	}
}
