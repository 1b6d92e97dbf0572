package writer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/resync/resync/internal/keyname"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/writer"
)

func open(t *testing.T, s *redisproc.Server, o writer.Options) *writer.Writer {
	t.Helper()
	o.Target = s.DialOptions()
	w, err := writer.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func op(offset int64, args ...string) writer.Op {
	o := writer.Op{Offset: offset}
	for _, a := range args {
		o.Args = append(o.Args, []byte(a))
	}
	return o
}

func sync(t *testing.T, w *writer.Writer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Sync(ctx)
}

// Many commands through a small window all arrive, in order, and the
// applied offset is the last one's.
func TestPipelineWindow(t *testing.T) {
	s := redistest.Start(t)
	w := open(t, s, writer.Options{Window: 16, WindowBytes: 4096})
	const n = 20000
	for i := 1; i <= n; i++ {
		if err := w.Write(op(int64(i), "RPUSH", "list", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("b", 100000) // bigger than the byte window: goes alone
	if err := w.Write(op(n+1, "SET", "big", big)); err != nil {
		t.Fatal(err)
	}
	if err := w.Mark(n + 5); err != nil {
		t.Fatal(err)
	}
	if err := sync(t, w); err != nil {
		t.Fatal(err)
	}
	if w.Applied() != n+5 || w.Confirmed() != n+1 {
		t.Fatalf("applied %d, confirmed %d", w.Applied(), w.Confirmed())
	}
	if got := redistest.Do(t, s, "LLEN", "list"); got != fmt.Sprint(n) {
		t.Fatalf("LLEN %s", got)
	}
	if got := redistest.Do(t, s, "LINDEX", "list", "-1"); got != fmt.Sprint(n) {
		t.Fatalf("last element %s: order lost", got)
	}
	if got := redistest.Do(t, s, "STRLEN", "big"); got != "100000" {
		t.Fatalf("STRLEN big %s", got)
	}
}

func wantRefusal(t *testing.T, err error, command, key, reply string) *writer.Error {
	t.Helper()
	var we *writer.Error
	if !errors.As(err, &we) || we.Command != command || we.Key != key || !strings.Contains(we.Reply, reply) {
		t.Fatalf("got %v, want %s %q refused with %s", err, command, key, reply)
	}
	return we
}

// An error reply fails the writer, names the command, key and reply, and
// nothing after it counts as applied.
func TestErrorReplyFails(t *testing.T) {
	s := redistest.Start(t)
	w := open(t, s, writer.Options{})
	w.Write(op(10, "SET", "s", "string"))
	w.Write(op(20, "LPUSH", "s", "x")) // WRONGTYPE
	w.Write(op(30, "SET", "after", "1"))
	err := sync(t, w)
	wantRefusal(t, err, "LPUSH", "s", "WRONGTYPE")
	if w.Applied() != 10 {
		t.Fatalf("applied %d, want 10: nothing after the failure counts", w.Applied())
	}
	if err := w.Write(op(40, "SET", "x", "1")); err == nil {
		t.Fatal("a failed writer accepted more")
	}
}

// Each reply inside an EXEC is checked; the transaction's offset is the
// EXEC's, reached only if every command in it succeeded.
func TestErrorInsideExec(t *testing.T) {
	s := redistest.Start(t)
	w := open(t, s, writer.Options{})
	for _, o := range []writer.Op{
		op(5, "SET", "s", "string"),
		op(6, "MULTI"), op(7, "INCR", "n"), op(8, "LPUSH", "s", "x"), op(9, "SET", "t", "1"), op(10, "EXEC"),
	} {
		w.Write(o)
	}
	err := sync(t, w)
	wantRefusal(t, err, "LPUSH (in EXEC)", "s", "WRONGTYPE")
	if w.Applied() != 5 {
		t.Fatalf("applied %d, want 5", w.Applied())
	}
}

// A command the target cannot queue is refused at once, before EXEC:
// the writer fails naming it.
func TestQueueRefused(t *testing.T) {
	s := redistest.Start(t)
	w := open(t, s, writer.Options{})
	for _, o := range []writer.Op{op(1, "MULTI"), op(2, "SET", "k"), op(3, "EXEC")} {
		w.Write(o)
	}
	wantRefusal(t, sync(t, w), "SET", "k", "wrong number of arguments")
	if w.Applied() != 0 {
		t.Fatalf("applied %d", w.Applied())
	}
}

// A full target (noeviction) refuses writes: the error says OOM and names
// the key.
func TestOutOfMemory(t *testing.T) {
	s := redistest.Start(t, "maxmemory 2mb", "maxmemory-policy noeviction")
	w := open(t, s, writer.Options{})
	val := strings.Repeat("v", 10000)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = w.Write(op(int64(i+1), "SET", fmt.Sprintf("key:%d", i), val))
	}
	if err == nil {
		err = sync(t, w)
	}
	var we *writer.Error
	if !errors.As(err, &we) || !strings.HasPrefix(we.Reply, "OOM") || !strings.HasPrefix(we.Key, "key:") {
		t.Fatalf("got %v, want an OOM refusal naming the key", err)
	}
	t.Log(err)
}

// A lost connection fails the writer with the command it was waiting on.
func TestConnectionLost(t *testing.T) {
	s := redistest.Start(t)
	w := open(t, s, writer.Options{})
	if err := w.Write(op(1, "SET", "a", "1")); err != nil {
		t.Fatal(err)
	}
	if err := sync(t, w); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	w.Write(op(2, "SET", "b", "2"))
	err := sync(t, w)
	var we *writer.Error
	if !errors.As(err, &we) || we.Reply != "" {
		t.Fatalf("got %v, want a connection failure", err)
	}
	if w.Applied() != 1 {
		t.Fatalf("applied %d", w.Applied())
	}
}

// With redaction, an error names no key: neither in its own words nor in
// the arguments Redis quotes back.
func TestErrorRedactsKeys(t *testing.T) {
	e := &writer.Error{Addr: "t:1", Command: "FOO", Key: "user:alice",
		Reply: "ERR unknown command 'FOO', with args beginning with: 'user:alice' ", Keys: keyname.Style{Redact: true}}
	if msg := e.Error(); strings.Contains(msg, "alice") || !strings.Contains(msg, "key#") {
		t.Fatalf("redacted: %s", msg)
	}
	e.Keys = keyname.Style{}
	if msg := e.Error(); !strings.Contains(msg, `"user:alice"`) {
		t.Fatalf("plain: %s", msg)
	}
}

// The throttles hold: commands per second, and bytes per second; the
// time spent waiting is reported. (Lower bounds only: a loaded machine
// may be slower still.)
func TestThrottle(t *testing.T) {
	s := redistest.Start(t)
	for _, c := range []struct {
		name string
		o    writer.Options
		n    int
		val  string
	}{
		{"ops", writer.Options{MaxOps: 4000}, 8000, "v"},
		// 8000 commands of about 1 KiB: 8 MiB at 4 MiB/s.
		{"bytes", writer.Options{MaxBytes: 4 << 20}, 8000, strings.Repeat("x", 1024-16*3-8)},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := open(t, s, c.o)
			start := time.Now()
			for i := 1; i <= c.n; i++ {
				if err := w.Write(op(int64(i), "SET", fmt.Sprint("k", i), c.val)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sync(t, w); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if took < 1800*time.Millisecond { // 2 s, less the first burst (0.1 s)
				t.Fatalf("%d commands in %s: the throttle let them through faster than 1.8 s", c.n, took)
			}
			if w.Throttled() < time.Second {
				t.Fatalf("throttled %s of %s", w.Throttled(), took)
			}
			t.Logf("%d commands in %s, %s of it waiting", c.n, took.Round(time.Millisecond), w.Throttled().Round(time.Millisecond))
		})
	}
}

// BenchmarkWrite: pipelined SETs through one writer into a real server,
// until confirmed; allocs/op is the writer's cost per command.
func BenchmarkWrite(b *testing.B) {
	s := redistest.Start(b)
	w, err := writer.Open(context.Background(), writer.Options{Target: s.DialOptions()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	args := [][]byte{[]byte("set"), []byte("key:000000"), bytes.Repeat([]byte("v"), 64)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		strconv.AppendInt(args[1][:4], int64(i%1000000), 10) // in place: no allocation of the benchmark's own
		if err := w.Write(writer.Op{Args: args, Offset: int64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
}
