package router_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/writer"
)

func open(t *testing.T, c *redisproc.Cluster, o router.Options) *router.Router {
	t.Helper()
	o.Target = c.Masters[0].DialOptions()
	r, err := router.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func op(offset int64, args ...string) writer.Op {
	o := writer.Op{Offset: offset}
	for _, a := range args {
		o.Args = append(o.Args, []byte(a))
	}
	return o
}

func write(t *testing.T, r *router.Router, ops ...writer.Op) {
	t.Helper()
	for _, o := range ops {
		if err := r.Write(o); err != nil {
			t.Fatal(err)
		}
	}
}

func syncAll(t *testing.T, r *router.Router) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// get reads a key from the master that serves it.
func get(t *testing.T, c *redisproc.Cluster, args ...string) string {
	t.Helper()
	top, err := cluster.Load(redistest.Dial(t, c.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	addr := top.Masters[top.Owner(cluster.Slot([]byte(args[1])))].Addr
	for _, m := range c.Masters {
		if m.Addr == addr {
			v, err := redistest.Dial(t, m).Do(args...)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Elems) > 0 {
				var s []string
				for _, e := range v.Elems {
					s = append(s, e.Text())
				}
				return strings.Join(s, ",")
			}
			return v.Text()
		}
	}
	t.Fatalf("no master %s", addr)
	return ""
}

func TestRoutingAndSplitting(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	c := redistest.StartCluster(t, 3, 0)
	r := open(t, c, router.Options{})
	for i := range 300 {
		write(t, r, op(int64(i+1), "SET", "k:"+strconv.Itoa(i), strconv.Itoa(i)))
	}
	write(t, r,
		op(301, "SELECT", "0"),
		op(302, "MSET", "a", "1", "b", "2", "c", "3", "{a}x", "4"),
		op(303, "DEL", "k:1", "k:2", "k:3", "k:4"),
		op(304, "MULTI"), op(0, "SET", "{t}1", "x"), op(0, "INCR", "{t}2"), op(305, "EXEC"))
	if err := r.Mark(310); err != nil {
		t.Fatal(err)
	}
	syncAll(t, r)
	if a := r.Applied(); a != 310 {
		t.Fatalf("applied %d, want 310", a)
	}
	for key, want := range map[string]string{"k:0": "0", "k:299": "299", "a": "1", "b": "2", "c": "3", "{a}x": "4", "k:1": "", "k:4": "", "{t}1": "x", "{t}2": "1"} {
		if got := get(t, c, "GET", key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// RENAME across slots: fails by default, naming the command and keys.
	err := r.Write(op(320, "RENAME", "a", "b"))
	var cs *router.CrossSlotError
	if !errors.As(err, &cs) || cs.Command != "RENAME" || !strings.Contains(err.Error(), `["a" "b"]`) {
		t.Fatalf("cross-slot RENAME: %v", err)
	}
	if err := r.Write(op(321, "SELECT", "1")); err == nil || !strings.Contains(err.Error(), "db 0 only") {
		t.Fatalf("SELECT 1: %v", err)
	}
	// A transaction across slots: the policy, or command by command.
	if err := write2(r, op(0, "MULTI"), op(0, "SET", "a", "9"), op(0, "SET", "b", "9"), op(330, "EXEC")); !errors.As(err, &cs) || !strings.Contains(cs.Command, "MULTI SET SET EXEC") {
		t.Fatalf("cross-slot MULTI: %v", err)
	}
}

func write2(r *router.Router, ops ...writer.Op) error {
	for _, o := range ops {
		if err := r.Write(o); err != nil {
			return err
		}
	}
	return nil
}

func TestSkipAndSplitTransactions(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	c := redistest.StartCluster(t, 3, 0)
	r := open(t, c, router.Options{CrossSlot: router.CrossSlotSkip, SplitTransactions: true})
	write(t, r,
		op(1, "SET", "a", "1"),
		op(2, "RENAME", "a", "b"), // skipped
		op(3, "EVAL", "return 1", "0"),
		op(0, "MULTI"), op(0, "SET", "a", "2"), op(0, "SET", "b", "2"), op(4, "EXEC"))
	if err := r.Mark(5); err != nil {
		t.Fatal(err)
	}
	syncAll(t, r)
	if r.Skipped() != 2 || r.Applied() != 5 {
		t.Fatalf("skipped %d, applied %d", r.Skipped(), r.Applied())
	}
	if a, b := get(t, c, "GET", "a"), get(t, c, "GET", "b"); a != "2" || b != "2" {
		t.Fatalf("a=%q b=%q after a split transaction", a, b)
	}
}

func TestBroadcasts(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "introduced FUNCTION")
	c := redistest.StartCluster(t, 3, 0)
	r := open(t, c, router.Options{})
	lib := "#!lua name=lib\nredis.register_function('f', function() return 1 end)"
	write(t, r, op(1, "SET", "a", "1"), op(2, "SET", "b", "1"),
		op(3, "FUNCTION", "LOAD", lib),
		op(4, "FUNCTION", "LOAD", lib), // made idempotent: REPLACE
		op(5, "FLUSHALL"))
	syncAll(t, r)
	for _, m := range c.Masters {
		conn := redistest.Dial(t, m)
		v, err := conn.Do("FUNCTION", "LIST")
		if err != nil || len(v.Elems) != 1 {
			t.Fatalf("%s: FUNCTION LIST %v %v", m.Addr, v, err)
		}
		if n, _ := conn.Do("DBSIZE"); n.Int != 0 {
			t.Fatalf("%s: %d keys after FLUSHALL", m.Addr, n.Int)
		}
	}
}

// TestSlotsMoveUnderLoad moves a few hundred slots, the busy ones among
// them, while commands flow: they are sent again where the slot went (ASK
// during the move, MOVED after), in order, none lost, no error.
func TestSlotsMoveUnderLoad(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	c := redistest.StartCluster(t, 3, 0)
	r := open(t, c, router.Options{Window: 64})
	top, err := cluster.Load(redistest.Dial(t, c.Masters[0]))
	if err != nil {
		t.Fatal(err)
	}
	busy := cluster.Slot([]byte("t"))
	owner := top.Owner(busy)
	var from, to *redisproc.Server
	for i, m := range c.Masters {
		if m.Addr == top.Masters[owner].Addr {
			from, to = m, c.Masters[(i+1)%3]
		}
	}
	// The busy slot and 200 others of the same master.
	slots := []int{busy}
	for s := top.Masters[owner].Slots[0][0]; len(slots) < 201; s++ {
		if s != busy {
			slots = append(slots, s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var migErr error
	migrated := make(chan struct{})
	go func() {
		defer close(migrated)
		time.Sleep(50 * time.Millisecond)
		for _, s := range slots {
			if migErr = c.MoveSlot(ctx, s, from, to); migErr != nil {
				return
			}
		}
	}()
	n := 0
	deadline := time.Now().Add(120 * time.Second)
	start := time.Now()
	for moving := true; moving || n < 20000; n++ {
		write(t, r, op(int64(n+1), "RPUSH", "{t}list", strconv.Itoa(n)), op(0, "SET", "{t}"+strconv.Itoa(n%500), strconv.Itoa(n)))
		if n%100 == 99 {
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-migrated:
				moving = false
			default:
			}
			time.Sleep(time.Millisecond) // a steady load, not a flood
		}
		if time.Now().After(deadline) {
			t.Fatal("the slots did not move in time")
		}
	}
	<-migrated
	if err := r.Mark(int64(n)); err != nil { // as a task marks each batch's end
		t.Fatal(err)
	}
	syncAll(t, r)
	if migErr != nil {
		t.Fatal(migErr)
	}
	if a := r.Applied(); a != int64(n) {
		t.Fatalf("applied %d, want %d", a, n)
	}
	// Every command landed, in order, on the slot's new master.
	conn := redistest.Dial(t, to)
	v, err := conn.Do("LRANGE", "{t}list", "0", "-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Elems) != n {
		t.Fatalf("%d elements, want %d", len(v.Elems), n)
	}
	for i, e := range v.Elems {
		if e.Text() != strconv.Itoa(i) {
			t.Fatalf("element %d is %s: out of order", i, e.Text())
		}
	}
	t.Logf("%d commands while %d slots moved, in %s; %d sent again", 2*n, len(slots), time.Since(start), r.Resent())
	if r.Resent() == 0 {
		t.Fatal("no command came back: the test moved no busy slot")
	}
}
