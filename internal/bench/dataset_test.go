package bench

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
)

func TestDataSetKeys(t *testing.T) {
	d := NewDataSet(25)
	if d.Strings != 25 || d.Others != 2 || d.Keys() != 33 {
		t.Fatalf("data set %+v, %d keys", d, d.Keys())
	}
	for i, want := range map[int]string{0: "str:0", 24: "str:24", 25: "hash:0", 26: "hash:1", 27: "list:0", 29: "set:0", 31: "zset:0", 32: "zset:1"} {
		if got := string(d.AppendKey(nil, i)); got != want {
			t.Errorf("key %d = %q, want %q", i, got, want)
		}
	}
	if tiny := NewDataSet(5); tiny.Keys() != 5 {
		t.Errorf("5 strings and no aggregates: %d keys", tiny.Keys())
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The fill writes every key with its type and size, and the limits copy
// them all.
func TestFillAndLimits(t *testing.T) {
	ctx := testContext(t)
	src := redistest.Start(t)
	d := NewDataSet(500)
	if err := fillStandalone(ctx, benchDialOptions(src), d); err != nil {
		t.Fatal(err)
	}
	if got := redistest.Do(t, src, "DBSIZE"); got != strconv.Itoa(d.Keys()) {
		t.Fatalf("DBSIZE %s, want %d", got, d.Keys())
	}
	for _, c := range [][]string{
		{"STRLEN", "str:499", "64"}, {"HLEN", "hash:49", "10"}, {"LLEN", "list:0", "10"},
		{"SCARD", "set:7", "10"}, {"ZCARD", "zset:49", "10"}, {"EXISTS", "str:500", "0"},
	} {
		if got := redistest.Do(t, src, c[0], c[1]); got != c[2] {
			t.Errorf("%s %s = %s, want %s", c[0], c[1], got, c[2])
		}
	}

	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: Config{RedisCLI: cli}, opts: redistest.Options(t), dir: t.TempDir()}
	defer r.close()
	if _, err := r.limitA(ctx, src, d.Keys()); err != nil {
		t.Fatal(err)
	}
	file, size, err := r.restoreFile(ctx, src, d)
	if err != nil || size < int64(d.Strings*valueBytes) {
		t.Fatalf("RESTORE file: %d bytes, %v", size, err)
	}
	if _, cpu, err := r.limitB(ctx, file, d.Keys()); err != nil || cpu < 0 {
		t.Fatalf("limit B: %v, target CPU %v s", err, cpu)
	}
	// A file that restores fewer keys than wanted is an error.
	if _, _, err := r.limitB(ctx, file, d.Keys()+1); err == nil {
		t.Fatal("limit B took a short copy")
	}
}

func TestFillBig(t *testing.T) {
	ctx := testContext(t)
	src := redistest.Start(t)
	b := BigKeys{Elements: 2500, StringBytes: 1 << 20}
	if err := fillBig(ctx, benchDialOptions(src), b); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"HLEN", "big:hash", "2500"}, {"LLEN", "big:list", "2500"}, {"STRLEN", "big:string", "1048576"}, {"DBSIZE", "", "3"}} {
		args := []string{c[0]}
		if c[1] != "" {
			args = append(args, c[1])
		}
		if got := redistest.Do(t, src, args...); got != c[2] {
			t.Errorf("%v = %s, want %s", args, got, c[2])
		}
	}
}

func TestFillCluster(t *testing.T) {
	ctx := testContext(t)
	c := redistest.StartCluster(t, 3, 0)
	d := NewDataSet(300)
	if err := fillCluster(ctx, c.Masters, d); err != nil {
		t.Fatal(err)
	}
	n, err := dbsize(ctx, c.Masters)
	if err != nil || n != int64(d.Keys()) {
		t.Fatalf("the masters hold %d keys, want %d (%v)", n, d.Keys(), err)
	}
	for i := range d.Keys() {
		key := string(d.AppendKey(nil, i))
		if got := redistest.Do(t, nodes(c.Masters).owner(key), "EXISTS", key); got != "1" {
			t.Fatalf("%s is not on the master that serves its slot", key)
		}
	}
	// The catch-up marker goes to every master, each in its own slots
	// (here the source is its own target).
	if _, err := catchUp(ctx, c.Masters, c.Masters, "marker", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Masters {
		keys := redistest.Dial(t, m)
		v, err := keys.Do("KEYS", "marker:*")
		if err != nil || len(v.Elems) != 1 {
			t.Errorf("master %s holds markers %v (%v), want one", m.Addr, v, err)
		}
	}
}

// A pipeline stops at the first error reply and names it.
func TestPipelineError(t *testing.T) {
	ctx := testContext(t)
	s := redistest.Start(t)
	c, err := dialer.Dial(ctx, benchDialOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	redistest.Do(t, s, "SET", "str", "x")
	cmds := [][]string{{"SET", "a", "1"}, {"INCR", "str"}, {"SET", "b", "2"}}
	err = pipeline(ctx, c, len(cmds), func(w *resp.Writer, i int) { w.WriteCommandStrings(cmds[i]...) }, nil)
	if err == nil || !strings.Contains(err.Error(), "reply 2 of 3") || !strings.Contains(err.Error(), "not an integer") {
		t.Fatalf("error %v", err)
	}
}
