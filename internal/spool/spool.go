// Package spool queues the source's command stream between the receiver
// and the writers, so that a slow, paused or stopped target never makes
// resync stop reading the source (whose replica output buffer would then
// overflow and drop the link): batches wait in memory up to a bound, then
// in files on local disk up to another; only when both are full does Put
// wait (back-pressure, which the status reports).
//
// The files hold nothing a restart needs (the target's checkpoint and the
// source's backlog do): they are removed when the queue is closed.
package spool

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/resync/resync/internal/receiver"
)

// Options configure a queue.
type Options struct {
	// MemBytes bounds the batches held in memory (default 64 MiB).
	MemBytes int64
	// Dir is where the spool files go, in a directory of their own
	// created with mode 0700; "" keeps everything in memory.
	Dir string
	// DiskBytes bounds the spool files (default 1 GiB).
	DiskBytes int64
	// SegmentBytes is the size past which a new file begins (default
	// 64 MiB); a file is removed once read.
	SegmentBytes int64
}

// Queue is a FIFO of batches. Put is called from one goroutine, Get from
// another; the others from any.
type Queue struct {
	o   Options
	dir string

	mu       sync.Mutex
	cond     *sync.Cond
	mem      []memBatch
	memBytes int64
	closed   bool
	err      error // a spool file failed: sticky
	waiting  bool  // Put waits for room

	// On disk: segments in order; the writer appends to the last, the
	// reader reads the first.
	segs      []*segment
	diskBytes int64 // written and not yet read
	seq       int
	written   int64 // batches ever spooled to disk, for the status
}

type segment struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	r     *bufio.Reader
	rf    *os.File // the read side's own descriptor
	size  int64    // bytes written
	read  int64    // bytes read
	count int      // batches written and not yet read
	full  bool     // no more writes: the next goes to a new segment
}

// memBatch is a batch waiting in memory: as it came while the queue is
// short (the writers keep up: no copy in the way), packed once it is
// long, so that a long queue of small commands costs the garbage
// collector nothing to scan and its size is what it really takes.
type memBatch struct {
	b      receiver.Batch
	packed []byte
}

// packAbove is the queue's memory fill past which batches wait packed.
const packAbove = 1 << 20

// New returns an empty queue; with Options.Dir it creates its spool
// directory there.
func New(o Options) (*Queue, error) {
	if o.MemBytes <= 0 {
		o.MemBytes = 64 << 20
	}
	if o.DiskBytes <= 0 {
		o.DiskBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	q := &Queue{o: o}
	q.cond = sync.NewCond(&q.mu)
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		dir, err := os.MkdirTemp(o.Dir, "spool-")
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("spool: %w", err)
		}
		q.dir = dir
	}
	return q, nil
}

// Put appends b, waiting while the memory and the disk are both full or
// until ctx ends.
func (q *Queue) Put(ctx context.Context, b receiver.Batch) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	size := int64(b.Bytes)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.err != nil:
			return q.err
		case q.closed:
			return errClosed
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// In memory while nothing waits on disk (the order holds), and it
		// fits (one batch always fits an empty memory).
		if len(q.segs) == 0 && (q.memBytes+size <= q.o.MemBytes || len(q.mem) == 0) {
			m := memBatch{b: b}
			if q.memBytes >= packAbove {
				m = memBatch{packed: Pack(b)}
				size = int64(len(m.packed))
			}
			q.mem = append(q.mem, m)
			q.memBytes += size
			q.waiting = false
			q.cond.Broadcast()
			return nil
		}
		if q.dir != "" && q.diskBytes < q.o.DiskBytes {
			if err := q.spill(b); err != nil {
				q.err = err
				return err
			}
			q.waiting = false
			q.cond.Broadcast()
			return nil
		}
		q.waiting = true
		q.cond.Wait()
	}
}

// Get removes and returns the oldest batch, waiting while there is none
// or until ctx ends.
func (q *Queue) Get(ctx context.Context) (receiver.Batch, error) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.err != nil:
			return receiver.Batch{}, q.err
		case ctx.Err() != nil:
			return receiver.Batch{}, ctx.Err()
		case len(q.mem) > 0:
			m := q.mem[0]
			q.mem[0] = memBatch{}
			q.mem = q.mem[1:]
			b, err := m.b, error(nil)
			if m.packed != nil {
				q.memBytes -= int64(len(m.packed))
				if b, err = Unpack(m.packed); err != nil {
					q.err = fmt.Errorf("spool: a batch packed in memory: %w", err)
					return b, q.err
				}
			} else {
				q.memBytes -= int64(b.Bytes)
			}
			q.cond.Broadcast()
			return b, nil
		case len(q.segs) > 0:
			b, err := q.unspill()
			if err != nil {
				q.err = err
				return b, err
			}
			q.cond.Broadcast()
			return b, nil
		case q.closed:
			return receiver.Batch{}, errClosed
		}
		q.cond.Wait()
	}
}

var errClosed = errors.New("spool: closed")

// Stats is what the status shows of a queue.
type Stats struct {
	MemBytes, DiskBytes int64
	Batches             int
	// Blocked says Put waits: the queue is full and resync has stopped
	// reading the source (back-pressure).
	Blocked bool
	// Spilled counts the batches ever written to disk.
	Spilled int64
}

// Stats reports the queue's fill.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.mem)
	for _, s := range q.segs {
		n += s.count
	}
	return Stats{MemBytes: q.memBytes, DiskBytes: q.diskBytes, Batches: n, Blocked: q.waiting, Spilled: q.written}
}

// Close drops what is queued and removes the spool files.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.mem = nil
	for _, s := range q.segs {
		s.f.Close()
		s.closeReader()
	}
	q.segs = nil
	q.cond.Broadcast()
	if q.dir != "" {
		return os.RemoveAll(q.dir)
	}
	return nil
}

// spill writes b to the last segment (a new one when there is none or it
// is full). Called with mu held.
func (q *Queue) spill(b receiver.Batch) error {
	var s *segment
	if n := len(q.segs); n > 0 && !q.segs[n-1].full {
		s = q.segs[n-1]
	} else {
		q.seq++
		path := filepath.Join(q.dir, fmt.Sprintf("%08d.spool", q.seq))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s = &segment{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}
		q.segs = append(q.segs, s)
	}
	rec := encode(b)
	if _, err := s.w.Write(rec); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	// The reader may come right after: what is written must be in the
	// file, not only in the buffer.
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool %s: %w", s.path, err)
	}
	s.size += int64(len(rec))
	s.count++
	q.diskBytes += int64(len(rec))
	q.written++
	if s.size >= q.o.SegmentBytes {
		s.full = true
	}
	return nil
}

// unspill reads the oldest batch on disk; a segment read to its end and
// full is removed. Called with mu held.
func (q *Queue) unspill() (receiver.Batch, error) {
	s := q.segs[0]
	if s.r == nil {
		r, err := os.Open(s.path)
		if err != nil {
			return receiver.Batch{}, fmt.Errorf("spool: %w", err)
		}
		// The read side has its own descriptor: the write side's file
		// offset stays at the end.
		s.r, s.rf = bufio.NewReaderSize(r, 1<<20), r
	}
	b, n, err := decode(s.r)
	if err != nil {
		return b, fmt.Errorf("spool %s at byte %d: %w", s.path, s.read, err)
	}
	s.read += int64(n)
	s.count--
	q.diskBytes -= int64(n)
	if s.count == 0 {
		// Read to the end: a new segment takes the next write, and this
		// one goes.
		q.segs = q.segs[1:]
		s.f.Close()
		s.closeReader()
		os.Remove(s.path)
	}
	return b, nil
}

func (s *segment) closeReader() {
	if s.rf != nil {
		s.rf.Close()
	}
}

// A record: length (4 bytes), CRC-32 of the body (4 bytes), body. The
// body: End, At (Unix ns), the command count, and per command its offset,
// argument count and arguments (each a length and its bytes), all
// varints.
func encode(b receiver.Batch) []byte {
	rec := appendBody(make([]byte, 8, 8+packedSize(b)), b)
	body := rec[8:]
	binary.LittleEndian.PutUint32(rec, uint32(len(body)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.ChecksumIEEE(body))
	return rec
}

// packedSize is about the size of a batch's body: enough that appending
// it seldom grows the buffer.
func packedSize(b receiver.Batch) int {
	n := b.Bytes + 32
	for _, c := range b.Commands {
		n += 6 + 3*len(c.Args)
	}
	return n
}

func appendBody(body []byte, b receiver.Batch) []byte {
	body = binary.AppendVarint(body, b.End)
	body = binary.AppendVarint(body, b.At.UnixNano())
	body = binary.AppendUvarint(body, uint64(len(b.Commands)))
	for _, c := range b.Commands {
		body = binary.AppendVarint(body, c.Offset)
		body = binary.AppendUvarint(body, uint64(len(c.Args)))
		for _, a := range c.Args {
			body = binary.AppendUvarint(body, uint64(len(a)))
			body = append(body, a...)
		}
	}
	return body
}

// Pack encodes a batch into one buffer that holds no pointers: a batch
// kept a while (to send again should the target lose it) costs the
// garbage collector nothing to scan, where its commands' argument lists
// would cost one object each. Unpack restores it.
func Pack(b receiver.Batch) []byte {
	return appendBody(make([]byte, 0, packedSize(b)), b)
}

// Unpack decodes what Pack encoded; the batch's arguments share p, and
// its Bytes is len(p).
func Unpack(p []byte) (receiver.Batch, error) {
	b, err := decodeBody(p)
	b.Bytes = len(p)
	return b, err
}

// maxRecord bounds one record's body: a corrupt length must not make
// decode allocate without limit.
const maxRecord = 1 << 30

// decode reads one record; n is its size on disk.
func decode(r io.Reader) (b receiver.Batch, n int, err error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return b, 0, fmt.Errorf("record header: %w", err)
	}
	size := binary.LittleEndian.Uint32(head[:])
	if size > maxRecord {
		return b, 0, fmt.Errorf("record of %d bytes: corrupt", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return b, 0, fmt.Errorf("record body: %w", err)
	}
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(head[4:]) {
		return b, 0, errors.New("record checksum mismatch: corrupt")
	}
	b, err = decodeBody(body)
	b.Bytes = int(size)
	return b, 8 + int(size), err
}

func decodeBody(body []byte) (receiver.Batch, error) {
	var b receiver.Batch
	p := body
	bad := errors.New("record body: corrupt")
	varint := func() (int64, bool) {
		v, k := binary.Varint(p)
		if k <= 0 {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	uvarint := func(limit uint64) (uint64, bool) {
		v, k := binary.Uvarint(p)
		if k <= 0 || v > limit {
			return 0, false
		}
		p = p[k:]
		return v, true
	}
	end, ok1 := varint()
	at, ok2 := varint()
	// Each command and argument takes at least a byte: counts past
	// what is left are corrupt.
	n, ok3 := uvarint(uint64(len(p)))
	if !ok1 || !ok2 || !ok3 {
		return b, bad
	}
	b.End, b.At = end, time.Unix(0, at)
	b.Commands = make([]receiver.Command, 0, n)
	var slab [][]byte // the argument lists, few allocations for many
	for range n {
		off, ok := varint()
		if !ok {
			return b, bad
		}
		nargs, ok := uvarint(uint64(len(p)))
		if !ok || nargs == 0 {
			return b, bad
		}
		if uint64(cap(slab)-len(slab)) < nargs {
			slab = make([][]byte, 0, max(nargs, 512))
		}
		first := len(slab)
		slab = slab[:first+int(nargs)]
		args := slab[first:len(slab):len(slab)]
		for i := range args {
			l, ok := uvarint(uint64(len(p)))
			if !ok || l > uint64(len(p)) { // the length's own bytes are gone now
				return b, bad
			}
			args[i] = p[:l:l]
			p = p[l:]
		}
		b.Commands = append(b.Commands, receiver.Command{Args: args, Offset: off})
	}
	if len(p) != 0 {
		return b, bad
	}
	return b, nil
}
