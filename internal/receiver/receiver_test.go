package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
)

func connect(t *testing.T, s *redisproc.Server, o receiver.Options) *receiver.Link {
	t.Helper()
	o.Source = s.DialOptions()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := receiver.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readSnapshot decodes the whole snapshot and returns its keys' names.
func readSnapshot(t *testing.T, l *receiver.Link) []string {
	t.Helper()
	d, err := rdb.NewDecoder(l.RDB())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, fmt.Sprintf("%d:%s", rec.DB, rec.Key))
	}
	// Nothing may follow the RDB's checksum in the snapshot.
	if n, err := io.Copy(io.Discard, l.RDB()); n != 0 || err != nil {
		t.Fatalf("%d bytes after the RDB's end (%v)", n, err)
	}
	return keys
}

// stream runs Link.Stream and returns its batches and its end.
func stream(t *testing.T, l *receiver.Link) (<-chan receiver.Batch, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan receiver.Batch, 16)
	done := make(chan error, 1)
	go func() { done <- l.Stream(ctx, out) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { stop() })
	return out, stop
}

// collect reads batches, applying each at once, until the commands seen
// include want, in order, and End reaches the source's offset.
func collect(t *testing.T, s *redisproc.Server, l *receiver.Link, out <-chan receiver.Batch, want []string) []receiver.Command {
	t.Helper()
	var got []receiver.Command
	var names []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-out:
			last := l.Applied()
			for _, c := range b.Commands {
				if c.Offset <= last || c.Offset > b.End {
					t.Fatalf("command %q at offset %d, after %d, batch ends at %d", c.Args, c.Offset, last, b.End)
				}
				last = c.Offset
				got = append(got, c)
				names = append(names, string(bytes.Join(c.Args, []byte(" "))))
			}
			l.SetApplied(b.End)
		case <-deadline:
			t.Fatalf("stream carried %q, want %q", names, want)
		}
		if containsInOrder(names, want) && l.Applied() == masterOffset(t, s) {
			return got
		}
	}
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && strings.EqualFold(g, want[i]) {
			i++
		}
	}
	return i == len(want)
}

func masterOffset(t *testing.T, s *redisproc.Server) int64 {
	t.Helper()
	n, err := strconv.ParseInt(redisproc.InfoField(redistest.Do(t, s, "INFO", "replication"), "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ackedOffset is the offset the source last heard from its replica.
func ackedOffset(t *testing.T, s *redisproc.Server) int64 {
	t.Helper()
	// slave0:ip=127.0.0.1,port=0,state=online,offset=123,lag=0
	line := redisproc.InfoField(redistest.Do(t, s, "INFO", "replication"), "slave0")
	for _, f := range strings.Split(line, ",") {
		if v, ok := strings.CutPrefix(f, "offset="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func testFullSync(t *testing.T, diskless bool) {
	cfg := "repl-diskless-sync no"
	if diskless {
		if !redistest.Version(t).AtLeast(2, 8) {
			t.Skip()
		}
		cfg = "repl-diskless-sync yes"
	}
	s := redistest.Start(t, cfg)
	redistest.Do(t, s, "SET", "before", "1")
	redistest.Do(t, s, "SELECT", "3")
	l := connect(t, s, receiver.Options{AnnouncePort: 1, AckInterval: 100 * time.Millisecond})
	if !l.Full() || l.ReplID() == "" {
		t.Fatalf("full %v, replid %q", l.Full(), l.ReplID())
	}
	if diskless != (l.RDBSize() < 0) {
		t.Fatalf("diskless %v, snapshot size %d", diskless, l.RDBSize())
	}
	if keys := readSnapshot(t, l); strings.Join(keys, ",") != "0:before" {
		t.Fatalf("snapshot holds %q", keys)
	}
	out, stop := stream(t, l)

	c := redistest.Dial(t, s)
	for _, cmd := range [][]string{
		{"SET", "after", strings.Repeat("x", 100)},
		{"DEL", "before"},
		{"SELECT", "3"},
		{"MULTI"}, {"INCR", "n"}, {"RPUSH", "l", "a", "b"}, {"EXEC"},
		{"PUBLISH", "ch", "hello"},
	} {
		if _, err := c.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	// Where SELECT goes differs by version (7.2 puts it inside MULTI).
	want := []string{"SET after " + strings.Repeat("x", 100), "DEL before", "MULTI", "INCR n", "RPUSH l a b", "EXEC", "PUBLISH ch hello"}
	if !redistest.Version(t).AtLeast(3, 2) {
		want = slicesWithout(want, "PUBLISH ch hello") // 2.8 does not replicate PUBLISH
	}
	got := collect(t, s, l, out, want)
	for _, c := range got {
		if isPing := strings.EqualFold(string(c.Args[0]), "PING"); isPing {
			t.Fatalf("PING passed on: %q", c.Args)
		}
	}
	// The source hears the applied offset.
	waitFor(t, "the source to hear the applied offset", func() bool { return ackedOffset(t, s) == l.Applied() })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream ended with %v, want context.Canceled", err)
	}
}

func slicesWithout(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func TestFullSyncDisk(t *testing.T)     { testFullSync(t, false) }
func TestFullSyncDiskless(t *testing.T) { testFullSync(t, true) }

// WAIT asks replicas for their offset with REPLCONF GETACK; the answer is
// the applied offset, so WAIT counts resync only once a write is applied.
func TestGetAckAnswersApplied(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "has WAIT")
	s := redistest.Start(t)
	// ACKs every 100ms report the applied offset too: WAIT must still
	// not count resync before the write is applied.
	l := connect(t, s, receiver.Options{AckInterval: 100 * time.Millisecond})
	readSnapshot(t, l)
	out, _ := stream(t, l)
	// WAIT waits for the offset of its own client's last write.
	c := redistest.Dial(t, s)
	wait := func(ms string) int64 {
		v, err := c.Do("WAIT", "1", ms)
		if err != nil {
			t.Fatal(err)
		}
		return v.Int
	}
	if _, err := c.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	var b receiver.Batch
	for !slices.ContainsFunc(b.Commands, func(c receiver.Command) bool { return string(c.Args[0]) == "SET" }) {
		b = <-out
	}
	// Not applied yet: WAIT must time out with no replica counted.
	if n := wait("300"); n != 0 {
		t.Fatalf("WAIT counted %d replicas before the write was applied", n)
	}
	l.SetApplied(b.End)
	if n := wait("5000"); n != 1 {
		t.Fatalf("WAIT counted %d replicas after the write was applied", n)
	}
}

// After a disconnect, PSYNC from the applied offset continues the stream:
// what was written meanwhile arrives, nothing twice.
func TestPartialResync(t *testing.T) {
	redistest.RequireVersion(t, 4, 0, "keeps a backlog for a replica that reconnects with PSYNC2")
	s := redistest.Start(t)
	l := connect(t, s, receiver.Options{})
	readSnapshot(t, l)
	out, stop := stream(t, l)
	redistest.Do(t, s, "SET", "a", "1")
	collect(t, s, l, out, []string{"SET a 1"})
	stop()
	applied, id := l.Applied(), l.ReplID()

	redistest.Do(t, s, "SET", "b", "2")
	redistest.Do(t, s, "SET", "c", "3")
	l2 := connect(t, s, receiver.Options{ReplID: id, Offset: applied})
	if l2.Full() || l2.StartOffset() != applied || l2.RDB() != nil {
		t.Fatalf("full %v, start %d (applied %d)", l2.Full(), l2.StartOffset(), applied)
	}
	out2, _ := stream(t, l2)
	got := collect(t, s, l2, out2, []string{"SET b 2", "SET c 3"})
	for _, c := range got {
		if string(c.Args[1]) == "a" {
			t.Fatalf("SET a came again at offset %d", c.Offset)
		}
	}
}

// A replication ID the source does not know gets a full sync.
func TestUnknownReplIDGetsFullSync(t *testing.T) {
	s := redistest.Start(t)
	l := connect(t, s, receiver.Options{ReplID: strings.Repeat("0", 40), Offset: 100})
	if !l.Full() {
		t.Fatal("a continuation with an unknown ID was accepted")
	}
	readSnapshot(t, l)
}

// The snapshot is bytes exactly as SAVE would write them.
func TestSnapshotIsTheRDB(t *testing.T) {
	s := redistest.Start(t, "repl-diskless-sync yes")
	redistest.Do(t, s, "SET", "k", strings.Repeat("v", 100000))
	l := connect(t, s, receiver.Options{})
	got, err := io.ReadAll(l.RDB())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the snapshot's child to end", func() bool {
		return redisproc.InfoField(redistest.Do(t, s, "INFO", "persistence"), "rdb_bgsave_in_progress") == "0"
	})
	redistest.Do(t, s, "SAVE")
	want, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	// The AUX fields differ (ctime, repl-id); the keys do not.
	if a, b := rawKeys(t, got), rawKeys(t, want); a != b {
		t.Fatalf("the snapshot holds %.200q, SAVE wrote %.200q", a, b)
	}
}

// scriptedSource plays a source whose replies no installed server gives:
// 2.8's rejection of REPLCONF capa, keep-alive newlines before the reply
// and the snapshot, and a diskless snapshot with its EOF mark.
func scriptedSource(t *testing.T, snapshot []byte, stream string, acks chan<- string) string {
	t.Helper()
	return redistest.ScriptedPeer(t, func(c net.Conn) {
		r, w := resp.NewReader(c), bufio.NewWriter(c)
		mark := strings.Repeat("m", 40)
		for {
			args, err := r.ReadCommand()
			if err != nil {
				return
			}
			cmd := strings.ToUpper(string(bytes.Join(args, []byte(" "))))
			switch {
			case cmd == "PING":
				w.WriteString("+PONG\r\n")
			case strings.HasPrefix(cmd, "REPLCONF LISTENING-PORT"):
				w.WriteString("+OK\r\n")
			case strings.HasPrefix(cmd, "REPLCONF CAPA"):
				w.WriteString("-ERR Unrecognized REPLCONF option: capa\r\n")
			case strings.HasPrefix(cmd, "PSYNC"):
				w.WriteString("\n\n+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 100\r\n\n\n")
				w.WriteString("$EOF:" + mark + "\r\n")
				w.Write(snapshot)
				w.WriteString(mark)
			case strings.HasPrefix(cmd, "REPLCONF ACK"):
				acks <- cmd
				if stream != "" {
					w.WriteString(stream)
					stream = ""
				}
			default:
				w.WriteString("-ERR unexpected\r\n")
			}
			w.Flush()
		}
	})
}

func TestScriptedOldSourceDiskless(t *testing.T) {
	data, _ := os.ReadFile(filepath.Join(redistest.RDBFixtures(t), "generated", "release-2.8.24.rdb"))
	ping := "*1\r\n$4\r\nPING\r\n"
	set := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
	getack := "*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n"
	acks := make(chan string, 16)
	addr := scriptedSource(t, data, ping+set+getack, acks)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := receiver.Connect(ctx, receiver.Options{Source: dialer.Options{Addr: addr}, AnnouncePort: 1, AckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.ReplID() != "0123456789abcdef0123456789abcdef01234567" || l.StartOffset() != 100 || l.RDBSize() != -1 {
		t.Fatalf("replid %q start %d size %d", l.ReplID(), l.StartOffset(), l.RDBSize())
	}
	got, err := io.ReadAll(l.RDB())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("snapshot of %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	out, _ := stream(t, l)
	if a := <-acks; a != "REPLCONF ACK 100" {
		t.Fatalf("first ACK %q", a)
	}
	var cmds []receiver.Command
	var end int64
	for end < int64(100+len(ping+set+getack)) {
		b := <-out
		cmds = append(cmds, b.Commands...)
		end = b.End
		l.SetApplied(b.End)
	}
	if len(cmds) != 1 || string(cmds[0].Args[0]) != "SET" || cmds[0].Offset != int64(100+len(ping+set)) {
		t.Fatalf("commands %+v", cmds)
	}
	// GETACK is answered at once with what was applied when it came.
	if a := <-acks; !strings.HasPrefix(a, "REPLCONF ACK ") {
		t.Fatalf("GETACK answered %q", a)
	}
}

// rawKeys lists an RDB's keys with their raw values.
func rawKeys(t *testing.T, data []byte) string {
	t.Helper()
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		rec, err := d.Next()
		if err == io.EOF {
			return strings.Join(out, ",")
		}
		if err != nil {
			t.Fatal(err)
		}
		key := string(rec.Key)
		raw, err := d.Raw()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s=%x", rec.DB, key, raw))
	}
}
