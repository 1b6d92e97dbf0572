package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Snapshot takes a full sync's snapshot as fast as the source sends it,
// while loaders read it at their targets' pace: the source's link is
// drained (the commands it buffers meanwhile do not pile up in its
// replica output buffer) and its stream can be read into the queue as
// soon as the snapshot has arrived. Several readers may read it, each
// from the start at its own pace (one per target of a task). Write waits
// while more than max bytes are written and not yet read by every reader.
//
// With a directory the snapshot goes to a file, which keeps it whole
// until Close: a reader may begin at any time. Without one it waits in
// memory, which keeps only what some reader has not read yet: a reader
// may begin only while nothing was dropped (NewReader says).
type Snapshot struct {
	f    *os.File // nil: in memory
	path string
	max  int64

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	readers map[*snapshotReader]struct{}
	// In memory: buf holds the bytes from base to written.
	buf    []byte
	base   int64
	done   bool  // Finish was called
	err    error // the writer's failure, given to the readers
	closed bool
}

// NewSnapshot creates a snapshot: in a file, in a directory of its own
// (mode 0700) under dir, or in memory when dir is ""; max bounds what
// waits unread (default 1 GiB).
func NewSnapshot(dir string, max int64) (*Snapshot, error) {
	if max <= 0 {
		max = 1 << 30
	}
	s := &Snapshot{max: max, readers: map[*snapshotReader]struct{}{}}
	s.cond = sync.NewCond(&s.mu)
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sub, err := os.MkdirTemp(dir, "snapshot-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	path := sub + "/snapshot.rdb"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(sub)
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.f, s.path = f, path
	return s, nil
}

var errSnapshotClosed = errors.New("spool: snapshot closed")

// slowest is the least any reader has read (written when there is no
// reader). Called with mu held.
func (s *Snapshot) slowest() int64 {
	low := s.written
	for r := range s.readers {
		low = min(low, r.at)
	}
	return low
}

// Write appends p, waiting while max bytes wait unread by some reader
// (or, before the first reader, while max bytes were written).
func (s *Snapshot) Write(p []byte) (int, error) {
	s.mu.Lock()
	for !s.closed && s.written-s.waitFloor() >= s.max {
		s.cond.Wait()
	}
	closed, at := s.closed, s.written
	s.mu.Unlock()
	if closed {
		return 0, errSnapshotClosed
	}
	n, err := len(p), error(nil)
	if s.f != nil {
		n, err = s.f.WriteAt(p, at)
	}
	s.mu.Lock()
	if s.f == nil {
		s.buf = append(s.buf, p...)
	}
	s.written += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("spool %s: %w", s.path, err)
	}
	return n, nil
}

// waitFloor is where unread bytes begin for Write's bound: the slowest
// reader, or the start while none has come. Called with mu held.
func (s *Snapshot) waitFloor() int64 {
	if len(s.readers) == 0 {
		return s.base
	}
	return s.slowest()
}

// Finish says the snapshot is whole (err nil) or will never be (the
// readers get err once they have read what was written).
func (s *Snapshot) Finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Reader reads the snapshot from its start, waiting for what is not
// written yet, until Finish; ctx ends a wait. Close the reader when done
// with it (before its end, too): until then the writer waits for it.
func (s *Snapshot) Reader(ctx context.Context) io.ReadCloser {
	r, _ := s.NewReader(ctx)
	return r
}

// NewReader is Reader, with an error (and a reader that returns it) when
// the snapshot cannot be read from its start: closed, or in memory with
// its start dropped. A reader taken without error reads it whole.
func (s *Snapshot) NewReader(ctx context.Context) (io.ReadCloser, error) {
	r := &snapshotReader{s: s, ctx: ctx}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		r.err = errSnapshotClosed
	case s.f == nil && s.base > 0:
		r.err = errors.New("spool: the snapshot's start was dropped from memory")
	default:
		s.readers[r] = struct{}{}
	}
	return r, r.err
}

type snapshotReader struct {
	s   *Snapshot
	ctx context.Context
	at  int64
	err error // the reader cannot read (it began too late, or was closed)
}

func (r *snapshotReader) Read(p []byte) (int, error) {
	s := r.s
	stop := context.AfterFunc(r.ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for r.err == nil && r.at == s.written && !s.done && !s.closed && r.ctx.Err() == nil {
		s.cond.Wait()
	}
	at, avail, done, err, closed := r.at, s.written-r.at, s.done, s.err, s.closed
	switch {
	case r.err != nil:
		s.mu.Unlock()
		return 0, r.err
	case closed:
		s.mu.Unlock()
		return 0, errSnapshotClosed
	case avail == 0 && r.ctx.Err() != nil:
		s.mu.Unlock()
		return 0, r.ctx.Err()
	case avail == 0 && done && err != nil:
		s.mu.Unlock()
		return 0, err
	case avail == 0 && done:
		s.mu.Unlock()
		return 0, io.EOF
	}
	want := min(int64(len(p)), avail)
	if s.f == nil {
		// In memory: copy under the lock, then drop what every reader
		// has read (in steps, not on every read).
		n := copy(p[:want], s.buf[at-s.base:])
		r.at += int64(n)
		s.trim()
		s.cond.Broadcast()
		s.mu.Unlock()
		return n, nil
	}
	s.mu.Unlock()
	n, rerr := s.f.ReadAt(p[:want], at)
	s.mu.Lock()
	r.at += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return n, fmt.Errorf("spool %s: %w", s.path, rerr)
	}
	return n, nil
}

// trim drops from memory what every reader has read, once it is a
// quarter of the bound (copying the rest down is then cheap enough).
// Called with mu held.
func (s *Snapshot) trim() {
	if s.f != nil || len(s.readers) == 0 {
		return
	}
	low := s.slowest()
	if drop := low - s.base; drop > 0 && drop >= s.max/4 {
		s.buf = append(s.buf[:0], s.buf[drop:]...)
		s.base = low
	}
}

// Close ends the reader: the writer no longer waits for it.
func (r *snapshotReader) Close() error {
	s := r.s
	s.mu.Lock()
	delete(s.readers, r)
	if r.err == nil {
		r.err = errSnapshotClosed
	}
	s.trim()
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// Waiting reports the bytes written and not yet read by every reader.
func (s *Snapshot) Waiting() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written - s.waitFloor()
}

// Close removes the file (or drops the memory); a Write or Read waiting
// returns.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	s.closed = true
	s.buf = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	s.f.Close()
	return os.RemoveAll(s.path[:len(s.path)-len("/snapshot.rdb")])
}
