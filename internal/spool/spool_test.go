package spool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/resync/resync/internal/receiver"
)

func batch(i int) receiver.Batch {
	arg := bytes.Repeat([]byte{byte('a' + i%26)}, 100+i%50)
	return receiver.Batch{End: int64(i) * 1000, At: time.Unix(0, int64(i)), Bytes: 200,
		Commands: []receiver.Command{{Args: [][]byte{[]byte("SET"), []byte(fmt.Sprint("k", i)), arg}, Offset: int64(i)*1000 - 1}}}
}

func same(a, b receiver.Batch) bool {
	if a.End != b.End || !a.At.Equal(b.At) || len(a.Commands) != len(b.Commands) {
		return false
	}
	for i := range a.Commands {
		if a.Commands[i].Offset != b.Commands[i].Offset ||
			!slices.EqualFunc(a.Commands[i].Args, b.Commands[i].Args, bytes.Equal) {
			return false
		}
	}
	return true
}

// Batches come out in order whether they waited in memory or on disk,
// across many switches between the two and several segment files.
func TestOrderAcrossMemoryAndDisk(t *testing.T) {
	dir := t.TempDir()
	q, err := New(Options{MemBytes: 1000, Dir: dir, DiskBytes: 1 << 20, SegmentBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	next := 0
	for i := range 500 {
		if err := q.Put(ctx, batch(i)); err != nil {
			t.Fatal(err)
		}
		// Read in bursts, so the queue fills and drains by turns.
		if i%37 == 36 {
			for range 30 {
				b, err := q.Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !same(b, batch(next)) {
					t.Fatalf("batch %d: got End %d", next, b.End)
				}
				next++
			}
		}
	}
	st := q.Stats()
	if st.Spilled == 0 || st.DiskBytes == 0 {
		t.Fatalf("nothing went to disk: %+v", st)
	}
	for next < 500 {
		b, err := q.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !same(b, batch(next)) {
			t.Fatalf("batch %d: got End %d", next, b.End)
		}
		next++
	}
	if st := q.Stats(); st.Batches != 0 || st.DiskBytes != 0 || st.MemBytes != 0 {
		t.Fatalf("drained queue: %+v", st)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries in the spool dir", len(entries))
	}
	spoolDir := dir + "/" + entries[0].Name()
	if fi, err := os.Stat(spoolDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory mode %v, %v", fi.Mode(), err)
	}
	if files, _ := os.ReadDir(spoolDir); len(files) > 1 {
		t.Fatalf("read segments were not removed: %d files", len(files))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spoolDir); !os.IsNotExist(err) {
		t.Fatalf("the spool directory outlived Close: %v", err)
	}
}

// When memory and disk are full, Put waits (back-pressure, reported by
// Stats) until a Get makes room.
func TestBackPressure(t *testing.T) {
	q, err := New(Options{MemBytes: 400, Dir: t.TempDir(), DiskBytes: 600})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	put := 0
	for ; put < 100; put++ {
		done := make(chan error, 1)
		go func() { done <- q.Put(ctx, batch(put)) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if !q.Stats().Blocked {
			t.Fatal("Put waits but Stats does not say so")
		}
		// Room in memory is not enough while older batches wait on
		// disk (the order holds): Put goes on once the disk drains.
		for gets := 0; ; gets++ {
			if _, err := q.Get(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(50 * time.Millisecond):
				if gets > 10 {
					t.Fatal("Put still waits after 10 batches were read")
				}
				continue
			}
			break
		}
		break
	}
	if put == 100 || put < 3 {
		t.Fatalf("Put waited after %d batches", put)
	}
	if q.Stats().Blocked {
		t.Fatal("still blocked after a Get")
	}
	// A canceled Put returns.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for i := 0; ; i++ {
		if err := q.Put(cctx, batch(1000+i)); err != nil {
			break
		}
	}
}

// Without a directory, everything stays in memory and Put waits when it
// is full.
func TestMemoryOnly(t *testing.T) {
	q, err := New(Options{MemBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	n := 0
	for ; q.Put(ctx, batch(n)) == nil; n++ {
	}
	if n != 2 {
		t.Fatalf("%d batches of 200 bytes fit in 400", n)
	}
}

func TestDecodeRefusesCorruptRecords(t *testing.T) {
	rec := encode(batch(7))
	b, n, err := decode(bytes.NewReader(rec))
	if err != nil || n != len(rec) || !same(b, batch(7)) {
		t.Fatalf("round trip: %v %d", err, n)
	}
	for i := range rec {
		bad := bytes.Clone(rec)
		bad[i] ^= 0x40
		if _, _, err := decode(bytes.NewReader(bad)); err == nil {
			t.Fatalf("a flipped bit at byte %d went unnoticed", i)
		}
	}
	if _, _, err := decode(bytes.NewReader(rec[:len(rec)-1])); err == nil {
		t.Fatal("a truncated record decoded")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(batch(1)))
	f.Add(encode(receiver.Batch{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		decode(bytes.NewReader(data))
		decodeBody(data) // no checksum in the way
	})
}

// A snapshot is read back byte for byte while it is written, the writer
// waits when max bytes wait unread, and a writer's failure reaches the
// reader after what was written.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSnapshot(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160 kB through a 4 kB window
	go func() {
		for i := 0; i < len(data); i += 1000 {
			if _, err := s.Write(data[i:min(i+1000, len(data))]); err != nil {
				s.Finish(err)
				return
			}
			if w := s.Waiting(); w > 4096+1000 {
				s.Finish(fmt.Errorf("%d bytes waiting, past the bound", w))
				return
			}
		}
		s.Finish(nil)
	}()
	got, err := io.ReadAll(s.Reader(context.Background()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("%d entries left in the spool dir", len(entries))
	}

	s, err = NewSnapshot(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("abc"))
	boom := fmt.Errorf("link lost")
	s.Finish(boom)
	got, err = io.ReadAll(s.Reader(context.Background()))
	if string(got) != "abc" || err != boom {
		t.Fatalf("after a failed write: %q, %v", got, err)
	}
}

// A packed batch holds no pointer, comes back whole, and its commands'
// argument lists do not overlap: appending to one leaves the next alone.
func TestPackRoundTrip(t *testing.T) {
	var b receiver.Batch
	for i := range 1500 { // past one slab of argument lists
		c := batch(i).Commands[0]
		b.Commands = append(b.Commands, c)
		b.Bytes += 200
	}
	b.End, b.At = 99999, time.Unix(5, 6)
	p := Pack(b)
	got, err := Unpack(p)
	if err != nil || !same(got, b) || got.Bytes != len(p) {
		t.Fatalf("round trip: %v, same %v, Bytes %d of %d", err, same(got, b), got.Bytes, len(p))
	}
	_ = append(got.Commands[0].Args, []byte("EX"))
	if string(got.Commands[1].Args[0]) != "SET" {
		t.Fatalf("an append to one command's arguments overwrote the next's: %q", got.Commands[1].Args[0])
	}
	if _, err := Unpack(p[:len(p)-1]); err == nil {
		t.Fatal("a truncated packed batch unpacked")
	}
}

// A queue longer than packAbove keeps its batches packed: they come back
// whole and in order, and the fill shrinks to nothing as they go.
func TestLongQueueInMemory(t *testing.T) {
	q, err := New(Options{MemBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	n := 3 * packAbove / 200
	for i := range n {
		if err := q.Put(ctx, batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := q.Stats(); st.Batches != n || st.MemBytes < 2*packAbove {
		t.Fatalf("stats after %d puts: %+v", n, st)
	}
	for i := range n {
		b, err := q.Get(ctx)
		if err != nil || !same(b, batch(i)) {
			t.Fatalf("batch %d: %v, same %v", i, err, same(b, batch(i)))
		}
	}
	if st := q.Stats(); st.MemBytes != 0 || st.Batches != 0 {
		t.Fatalf("stats once read: %+v", st)
	}
}

// Several readers read a snapshot whole, each at its own pace, in a file
// and in memory; the writer waits for the slowest within the bound; a
// reader closed early no longer holds the writer back; in memory a
// reader that comes after bytes were dropped is refused.
func TestSnapshotReaders(t *testing.T) {
	for _, dir := range []string{t.TempDir(), ""} {
		s, err := NewSnapshot(dir, 4096)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
		readers := []io.ReadCloser{s.Reader(context.Background()), s.Reader(context.Background()), s.Reader(context.Background())}
		quitter := s.Reader(context.Background())
		writeErr := make(chan error, 1)
		go func() {
			for i := 0; i < len(data); i += 1000 {
				if _, err := s.Write(data[i:min(i+1000, len(data))]); err != nil {
					writeErr <- err
					return
				}
				if w := s.Waiting(); w > 4096+1000 {
					writeErr <- fmt.Errorf("%d bytes waiting, past the bound", w)
					return
				}
				if i == 0 {
					quitter.Read(make([]byte, 10))
					go func() {
						// The writer waits for it at the bound, until it
						// is closed.
						for s.Waiting() < 4000 {
							time.Sleep(time.Millisecond)
						}
						quitter.Close()
					}()
				}
			}
			s.Finish(nil)
			writeErr <- nil
		}()
		results := make(chan error, len(readers))
		for i, r := range readers {
			go func() {
				var got []byte
				buf := make([]byte, 100*(i+1)) // each its own pace
				for {
					n, err := r.Read(buf)
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						results <- err
						return
					}
				}
				if !bytes.Equal(got, data) {
					results <- fmt.Errorf("reader %d: %d bytes, not the snapshot", i, len(got))
					return
				}
				results <- nil
			}()
		}
		for range readers {
			if err := <-results; err != nil {
				t.Fatalf("dir %q: %v", dir, err)
			}
		}
		if err := <-writeErr; err != nil {
			t.Fatalf("dir %q: %v", dir, err)
		}
		late, err := s.NewReader(context.Background())
		if dir == "" {
			if _, rerr := io.ReadAll(late); err == nil || rerr == nil {
				t.Fatalf("in memory, a reader after bytes were dropped: %v, %v", err, rerr)
			}
		} else if got, rerr := io.ReadAll(late); err != nil || rerr != nil || !bytes.Equal(got, data) {
			t.Fatalf("in a file, a late reader: %v, %v, %d bytes", err, rerr, len(got))
		}
		s.Close()
	}
}
