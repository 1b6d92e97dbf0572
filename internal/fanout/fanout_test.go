package fanout

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// choose takes the replication history most requests continue, from its
// earliest offset; a full sync when none continues.
func TestChoose(t *testing.T) {
	req := func(id string, off int64) *request { return &request{o: receiver.Options{ReplID: id, Offset: off}} }
	for _, c := range []struct {
		reqs []*request
		id   string
		off  int64
	}{
		{[]*request{req("", 0), req("", 0)}, "", 0},
		{[]*request{req("a", 10), req("a", 7), req("", 0)}, "a", 7},
		{[]*request{req("b", 5), req("a", 10), req("a", 12)}, "a", 10},
		{[]*request{req("", 0), req("b", 3)}, "b", 3},
	} {
		if o := choose(c.reqs); o.ReplID != c.id || o.Offset != c.off {
			t.Errorf("%+v: chose %q %d, want %q %d", c.reqs, o.ReplID, o.Offset, c.id, c.off)
		}
	}
}

// consumer reads a link: the snapshot whole, then the stream's commands.
type consumer struct {
	link Link
	rdb  []byte
	cmds chan receiver.Command
	err  chan error
}

func consume(t *testing.T, ctx context.Context, l Link) *consumer {
	t.Helper()
	c := &consumer{link: l, cmds: make(chan receiver.Command, 1<<16), err: make(chan error, 1)}
	if l.Full() {
		var err error
		if c.rdb, err = io.ReadAll(l.RDB()); err != nil {
			t.Fatal(err)
		}
	}
	in := make(chan receiver.Batch, 4)
	go func() { c.err <- l.Stream(ctx, in) }()
	go func() {
		for b := range in {
			for _, cmd := range b.Commands {
				c.cmds <- cmd
			}
		}
	}()
	return c
}

// next returns the consumer's next command naming a key of the test's.
func (c *consumer) next(t *testing.T) receiver.Command {
	t.Helper()
	for {
		select {
		case cmd := <-c.cmds:
			if len(cmd.Args) > 1 && strings.HasPrefix(string(cmd.Args[1]), "k") {
				return cmd
			}
		case err := <-c.err:
			t.Fatalf("stream: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("no command within 5 s")
		}
	}
}

// Two consumers share one link: one replica on the source, the same
// snapshot and the same commands at the same offsets for both, the ACK
// at the slower one's applied offset; a third that asks for a full sync
// once the stream has begun gets a link of its own.
func TestSharedLink(t *testing.T) {
	for _, dir := range []string{t.TempDir(), ""} {
		src := redistest.Start(t)
		for i := range 100 {
			redistest.Do(t, src, "SET", "k"+strconv.Itoa(i), "v")
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		hub := New(ctx, Options{Consumers: 2, SpoolDir: dir})
		o := receiver.Options{Source: src.DialOptions(), AckInterval: 100 * time.Millisecond}
		links := make(chan Link, 2)
		for range 2 {
			go func() {
				l, err := hub.Connect(ctx, o)
				if err != nil {
					t.Error(err)
				}
				links <- l
			}()
		}
		a, b := consume(t, ctx, <-links), consume(t, ctx, <-links)
		if !Shared(a.link) || !Shared(b.link) || !a.link.Full() || !bytes.Equal(a.rdb, b.rdb) || len(a.rdb) == 0 {
			t.Fatalf("shared %v %v, full %v, snapshots of %d and %d bytes", Shared(a.link), Shared(b.link), a.link.Full(), len(a.rdb), len(b.rdb))
		}
		for i := range 50 {
			redistest.Do(t, src, "SET", "k"+strconv.Itoa(i), "w")
		}
		var last int64
		for range 50 {
			ca, cb := a.next(t), b.next(t)
			if ca.Offset != cb.Offset || !bytes.Equal(bytes.Join(ca.Args, nil), bytes.Join(cb.Args, nil)) {
				t.Fatalf("the consumers got %q at %d and %q at %d", ca.Args, ca.Offset, cb.Args, cb.Offset)
			}
			last = ca.Offset
		}
		if n := redisproc.InfoField(redistest.Do(t, src, "INFO", "replication"), "connected_slaves"); n != "1" {
			t.Fatalf("%s replicas: want one shared link", n)
		}
		a.link.SetApplied(last)
		b.link.SetApplied(last - 10)
		time.Sleep(300 * time.Millisecond)
		if acked := redistest.ReplicaOffset(t, src); acked != last-10 {
			t.Fatalf("acknowledged %d: want the slower consumer's %d", acked, last-10)
		}
		late, err := hub.Connect(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if Shared(late) {
			t.Fatal("a full sync asked for after the stream began was served by the shared link")
		}
		late.Close()
		// The slower one leaves: the ACK moves to the other's.
		b.link.Close()
		a.link.SetApplied(last)
		time.Sleep(300 * time.Millisecond)
		if acked := redistest.ReplicaOffset(t, src); acked != last {
			t.Fatalf("acknowledged %d after the slower consumer left: want %d", acked, last)
		}
		a.link.Close()
		cancel()
	}
}

// A consumer that asks alone is served once the gathering window ends.
func TestGatherTimesOut(t *testing.T) {
	src := redistest.Start(t)
	hub := New(context.Background(), Options{Consumers: 3, Gather: 200 * time.Millisecond})
	began := time.Now()
	l, err := hub.Connect(context.Background(), receiver.Options{Source: src.DialOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if waited := time.Since(began); !Shared(l) || waited < 200*time.Millisecond {
		t.Fatalf("shared %v after %s", Shared(l), waited)
	}
}

// A consumer that asks while the shared link is being opened (the source
// prepares its snapshot) is answered once it is open, with the same
// snapshot; asking past the expected count does not close the gathering
// twice.
func TestAskWhileConnecting(t *testing.T) {
	src := redistest.Start(t, "repl-diskless-sync yes", "repl-diskless-sync-delay 1")
	redistest.Do(t, src, "SET", "k", "v")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := New(ctx, Options{Consumers: 1})
	o := receiver.Options{Source: src.DialOptions()}
	first := make(chan Link, 1)
	go func() {
		l, err := hub.Connect(ctx, o)
		if err != nil {
			t.Error(err)
		}
		first <- l
	}()
	time.Sleep(300 * time.Millisecond) // the source waits a second before its snapshot
	second, err := hub.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	a, b := consume(t, ctx, <-first), consume(t, ctx, second)
	if !Shared(a.link) || !Shared(b.link) || !b.link.Full() || !bytes.Equal(a.rdb, b.rdb) {
		t.Fatalf("shared %v %v, full %v, snapshots of %d and %d bytes", Shared(a.link), Shared(b.link), b.link.Full(), len(a.rdb), len(b.rdb))
	}
	if full := redisproc.InfoField(redistest.Do(t, src, "INFO", "stats"), "sync_full"); full != "1" {
		t.Fatalf("%s full syncs: want one", full)
	}
}

// A consumer that continues joins a link that began with a full sync as
// a continue: no snapshot, its stream from where it asked.
func TestContinueJoinsFullLink(t *testing.T) {
	src := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := New(ctx, Options{Consumers: 1})
	o := receiver.Options{Source: src.DialOptions()}
	l, err := hub.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	a := consume(t, ctx, l)
	redistest.Do(t, src, "SET", "k1", "v")
	at := a.next(t).Offset
	o.ReplID, o.Offset = l.ReplID(), at
	l2, err := hub.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !Shared(l2) || l2.Full() || l2.StartOffset() != at || l2.RDB() != nil {
		t.Fatalf("shared %v, full %v, start %d (asked %d)", Shared(l2), l2.Full(), l2.StartOffset(), at)
	}
	b := consume(t, ctx, l2)
	redistest.Do(t, src, "SET", "k2", "v")
	if ca, cb := a.next(t), b.next(t); string(cb.Args[1]) != "k2" || ca.Offset != cb.Offset {
		t.Fatalf("the joined consumer got %q at %d, the first %q at %d", cb.Args, cb.Offset, ca.Args, ca.Offset)
	}
}
