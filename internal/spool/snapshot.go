package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Snapshot is a file that takes a full sync's snapshot as fast as the
// source sends it, while the loader reads it at the target's pace: the
// source's link is drained (the commands it buffers meanwhile do not
// pile up in its replica output buffer) and its stream can be read into
// the queue as soon as the snapshot has arrived. Write waits while more
// than max bytes are written and not yet read.
type Snapshot struct {
	f    *os.File
	path string
	max  int64

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	read    int64
	done    bool  // Finish was called
	err     error // the writer's failure, given to the reader
	closed  bool
}

// NewSnapshot creates the snapshot's file in a directory of its own
// (mode 0700) under dir; max bounds what waits in it (default 1 GiB).
func NewSnapshot(dir string, max int64) (*Snapshot, error) {
	if max <= 0 {
		max = 1 << 30
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
	s := &Snapshot{f: f, path: path, max: max}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

var errSnapshotClosed = errors.New("spool: snapshot closed")

// Write appends p, waiting while max bytes wait unread.
func (s *Snapshot) Write(p []byte) (int, error) {
	s.mu.Lock()
	for s.written-s.read >= s.max && !s.closed {
		s.cond.Wait()
	}
	closed, at := s.closed, s.written
	s.mu.Unlock()
	if closed {
		return 0, errSnapshotClosed
	}
	n, err := s.f.WriteAt(p, at)
	s.mu.Lock()
	s.written += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("spool %s: %w", s.path, err)
	}
	return n, nil
}

// Finish says the snapshot is whole (err nil) or will never be (the
// reader gets err once it has read what was written).
func (s *Snapshot) Finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Reader reads the snapshot from its start, waiting for what is not
// written yet, until Finish; ctx ends a wait.
func (s *Snapshot) Reader(ctx context.Context) io.Reader {
	return &snapshotReader{s: s, ctx: ctx}
}

type snapshotReader struct {
	s   *Snapshot
	ctx context.Context
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
	for s.read == s.written && !s.done && !s.closed && r.ctx.Err() == nil {
		s.cond.Wait()
	}
	at, avail, done, err, closed := s.read, s.written-s.read, s.done, s.err, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return 0, errSnapshotClosed
	case avail == 0 && r.ctx.Err() != nil:
		return 0, r.ctx.Err()
	case avail == 0 && done && err != nil:
		return 0, err
	case avail == 0 && done:
		return 0, io.EOF
	}
	n, rerr := s.f.ReadAt(p[:min(int64(len(p)), avail)], at)
	s.mu.Lock()
	s.read += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return n, fmt.Errorf("spool %s: %w", s.path, rerr)
	}
	return n, nil
}

// Waiting reports the bytes written and not yet read.
func (s *Snapshot) Waiting() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written - s.read
}

// Close removes the file; a Write or Read waiting returns.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.f.Close()
	return os.RemoveAll(s.path[:len(s.path)-len("/snapshot.rdb")])
}
