// Package fanout shares one replication link to a source among several
// consumers, one per target of a task: the source sends its snapshot and
// its stream once, each consumer reads the snapshot at its own pace (from
// a file in the spool directory, or from memory at the slowest one's)
// and gets every batch of the stream, and the source is acknowledged the
// slowest consumer's applied offset.
//
// A consumer the shared link cannot serve gets a link of its own: one
// that asks for a point the shared link has passed, or that came after
// the stream began, or that fell behind by more than its bound (its
// target is down and its queue is full). A slow consumer thus never
// holds back the others for longer than its bound.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/spool"
)

// Link is a replication link as a consumer sees it: a share of a hub's
// link, or a *receiver.Link of its own. After a full sync (Full), RDB
// holds the snapshot; Stream sends the command stream.
type Link interface {
	Full() bool
	ReplID() string
	StartOffset() int64
	RDB() io.Reader
	RDBSize() int64
	SetApplied(offset int64)
	Stream(ctx context.Context, out chan<- receiver.Batch) error
	// Received is the end of the last batch Stream sent: where a link
	// that replaces this one continues.
	Received() int64
	Close() error
}

// Options configure a hub.
type Options struct {
	// Consumers is how many consumers read each source address (one per
	// target): the first to connect waits for the others, up to Gather
	// (default 3s), so that they share one link from the start.
	Consumers int
	Gather    time.Duration
	// SpoolDir is where a shared snapshot waits for the consumers that
	// read it more slowly ("": in memory, MemBytes of it, the fastest
	// waiting for the slowest); SpoolMax bounds the file (default 1 GiB).
	SpoolDir string
	SpoolMax int64
	MemBytes int64
	// BehindBytes is how much of the stream may wait for a consumer that
	// does not take it (default 16 MiB): past it the consumer is cut off
	// and gets a link of its own when it asks again.
	BehindBytes int64
	Logger      *slog.Logger
}

// ErrBehind cuts off a consumer that fell BehindBytes behind the shared
// link: it asks again, and gets a link of its own.
var ErrBehind = errors.New("fell behind the shared replication link")

// Hub shares links to sources among consumers.
type Hub struct {
	o   Options
	ctx context.Context // the hub's links end with it
	log *slog.Logger

	mu     sync.Mutex
	shares map[string]*share // by source address
	// expect is how many consumers to wait for at an address, after a
	// shared link there ended: those it served.
	expect map[string]int
}

// New returns a hub whose links end with ctx.
func New(ctx context.Context, o Options) *Hub {
	if o.Gather <= 0 {
		o.Gather = 3 * time.Second
	}
	if o.MemBytes <= 0 {
		o.MemBytes = 64 << 20
	}
	if o.BehindBytes <= 0 {
		o.BehindBytes = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{o: o, ctx: ctx, log: o.Logger, shares: map[string]*share{}, expect: map[string]int{}}
}

// share is one shared link: first gathering its consumers' requests,
// then open and serving them.
type share struct {
	h    *Hub
	addr string

	// While gathering (guarded by the hub's mu): the requests so far,
	// and enough, closed when every expected consumer has asked. Once
	// connecting, gather has taken them: those that come meanwhile wait
	// in late, answered once the link is open.
	gathering  bool
	connecting bool
	reqs       []*request
	late       []*request
	expect     int
	enough     chan struct{}
	enoughDone bool

	link   *receiver.Link
	snap   *spool.Snapshot // a full sync's snapshot; nil otherwise
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // the pump has returned

	mu       sync.Mutex
	subs     map[*sub]struct{}
	received int64 // the end of the last batch handed out
	begun    bool  // the stream has begun: a new consumer would miss some
	dead     bool
	// readers counts the snapshot's readers not yet closed: the
	// snapshot outlives the link while one reads it.
	readers int
}

type request struct {
	o         receiver.Options
	reply     chan reply
	abandoned bool // the consumer stopped waiting (hub's mu)
}

type reply struct {
	sub    *sub
	err    error
	direct bool // not served by the shared link: connect alone
}

// Connect returns a link for one consumer: a share of the hub's link to
// o.Source when it can serve o's request, else a link of its own.
func (h *Hub) Connect(ctx context.Context, o receiver.Options) (Link, error) {
	addr := o.Source.Addr
	h.mu.Lock()
	s := h.shares[addr]
	if s != nil && !s.gathering {
		sb := s.join(o)
		h.mu.Unlock()
		if sb != nil {
			return sb, nil
		}
		return h.direct(ctx, o, "the shared link has passed the point it asks for")
	}
	if s == nil {
		expect := h.o.Consumers
		if n, ok := h.expect[addr]; ok {
			expect = n // once: those a lost link served
			delete(h.expect, addr)
		}
		s = &share{h: h, addr: addr, gathering: true, expect: max(expect, 1), enough: make(chan struct{})}
		h.shares[addr] = s
		go s.gather()
	}
	req := &request{o: o, reply: make(chan reply, 1)}
	if s.connecting {
		s.late = append(s.late, req)
	} else {
		s.reqs = append(s.reqs, req)
		if len(s.reqs) >= s.expect && !s.enoughDone {
			s.enoughDone = true
			close(s.enough)
		}
	}
	h.mu.Unlock()
	select {
	case r := <-req.reply:
		if r.direct {
			return h.direct(ctx, o, "it asks for another point than the others")
		}
		if r.err != nil {
			return nil, r.err
		}
		return r.sub, nil
	case <-ctx.Done():
		h.mu.Lock()
		req.abandoned = true
		h.mu.Unlock()
		select { // a reply sent before it was abandoned
		case r := <-req.reply:
			if r.sub != nil {
				r.sub.Close()
			}
		default:
		}
		return nil, ctx.Err()
	}
}

// direct connects a consumer alone.
func (h *Hub) direct(ctx context.Context, o receiver.Options, why string) (Link, error) {
	h.log.Info("a replication link of its own", "source", o.Source.Addr, "reason", why)
	l, err := receiver.Connect(ctx, o)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// gather waits for the consumers' requests, then opens the link with the
// PSYNC that serves most of them and answers each.
func (s *share) gather() {
	h := s.h
	timer := time.NewTimer(h.o.Gather)
	defer timer.Stop()
	select {
	case <-s.enough:
	case <-timer.C:
	case <-h.ctx.Done():
	}
	h.mu.Lock()
	reqs := waiting(s.reqs)
	s.reqs, s.connecting = nil, true
	if len(reqs) == 0 || h.ctx.Err() != nil {
		delete(h.shares, s.addr)
		for _, r := range reqs {
			r.reply <- reply{err: fmt.Errorf("source %s: %w", s.addr, context.Cause(h.ctx))}
		}
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()

	o := choose(reqs)
	o.Logger = h.log
	link, err := receiver.Connect(h.ctx, o)
	if err == nil && link.Full() {
		if s.snap, err = spool.NewSnapshot(h.o.SpoolDir, h.snapshotMax()); err != nil {
			link.Close()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	late := waiting(s.late)
	s.late = nil
	if err != nil {
		delete(h.shares, s.addr)
		for _, r := range append(reqs, late...) {
			r.reply <- reply{err: err}
		}
		return
	}
	s.gathering, s.connecting = false, false
	s.link = link
	s.ctx, s.cancel = context.WithCancel(h.ctx)
	s.done = make(chan struct{})
	s.subs = map[*sub]struct{}{}
	s.received = link.StartOffset()
	served := 0
	for _, r := range reqs {
		var sb *sub
		if !r.abandoned && serves(link, o, r.o) {
			sb = s.attach(r.o, link.Full())
		}
		if sb != nil {
			served++
			r.reply <- reply{sub: sb}
		} else {
			r.reply <- reply{direct: true}
		}
	}
	for _, r := range late { // as if they asked now
		if sb := s.join(r.o); sb != nil {
			served++
			r.reply <- reply{sub: sb}
		} else {
			r.reply <- reply{direct: true}
		}
	}
	h.log.Info("shared replication link", "source", s.addr, "full", link.Full(), "replid", link.ReplID(),
		"offset", link.StartOffset(), "consumers", served, "of", len(reqs))
	if served == 0 {
		s.closeLocked()
		return
	}
	go s.pump()
}

// waiting are the requests whose consumers still wait.
func waiting(reqs []*request) []*request {
	var out []*request
	for _, r := range reqs {
		if !r.abandoned {
			out = append(out, r)
		}
	}
	return out
}

// snapshotMax bounds what waits of a shared snapshot.
func (h *Hub) snapshotMax() int64 {
	if h.o.SpoolDir == "" {
		return h.o.MemBytes
	}
	return h.o.SpoolMax
}

// choose picks the PSYNC for the requests: the point of the replication
// history most of them continue (its earliest offset), or a full sync
// when none continues.
func choose(reqs []*request) receiver.Options {
	o := reqs[0].o
	o.ReplID, o.Offset = "", 0
	count := map[string]int{}
	low := map[string]int64{}
	for _, r := range reqs {
		id := r.o.ReplID
		if id == "" {
			continue
		}
		if n, ok := low[id]; !ok || r.o.Offset < n {
			low[id] = r.o.Offset
		}
		count[id]++
		if o.ReplID == "" || count[id] > count[o.ReplID] {
			o.ReplID = id
		}
	}
	if o.ReplID != "" {
		o.Offset = low[o.ReplID]
	}
	return o
}

// serves reports whether a link opened with the PSYNC asked serves a
// request: after a full sync, those that asked for one or for the very
// point the source refused (one further on may be in its backlog: it
// asks alone); after a continue, those of its history, from their own
// offsets.
func serves(link *receiver.Link, asked, o receiver.Options) bool {
	if link.Full() {
		return o.ReplID == "" || o.ReplID == asked.ReplID && o.Offset == asked.Offset
	}
	return o.ReplID == asked.ReplID && o.Offset >= link.StartOffset()
}

// join serves a consumer that asks once the link is open: for a full
// sync while the snapshot can be read from its start and the stream has
// not begun; for a continue from the point reached or later. The hub's
// mu is held.
func (s *share) join(o receiver.Options) *sub {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return nil
	}
	switch {
	case s.link.Full() && o.ReplID == "" && !s.begun:
		return s.attachLocked(o, true) // nil if the snapshot's start is gone
	case o.ReplID == s.link.ReplID() && o.Offset >= s.received:
		// A continue, on a link that began with a full sync or not.
		return s.attachLocked(o, false)
	}
	return nil
}

func (s *share) attach(o receiver.Options, full bool) *sub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attachLocked(o, full)
}

// attachLocked adds a consumer: with the snapshot from its start (full),
// or continuing after o.Offset. s.mu is held.
func (s *share) attachLocked(o receiver.Options, full bool) *sub {
	sb := &sub{s: s, full: full, from: o.Offset, wake: make(chan struct{}, 1)}
	if full {
		sb.from = s.link.StartOffset()
		// Closed, not canceled: a reader outlives its share's stream
		// (TakeRDB).
		r, err := s.snap.NewReader(context.Background())
		if err != nil {
			return nil
		}
		sb.rdb = &rdbReader{ReadCloser: r, s: s}
		s.readers++
	}
	sb.applied.Store(sb.from)
	sb.sent.Store(sb.from)
	s.subs[sb] = struct{}{}
	return sb
}

// pump receives the snapshot into the spool, then hands out the stream.
func (s *share) pump() {
	defer close(s.done)
	if s.snap != nil {
		_, err := io.Copy(s.snap, s.link.RDB())
		s.snap.Finish(err)
		if err != nil {
			s.die(fmt.Errorf("snapshot: %w", err))
			return
		}
	}
	in := make(chan receiver.Batch, 4)
	streamErr := make(chan error, 1)
	go func() { streamErr <- s.link.Stream(s.ctx, in) }()
	for {
		select {
		case b := <-in:
			s.handOut(b)
		case err := <-streamErr:
			s.die(err)
			return
		}
	}
}

// handOut gives a batch to every consumer, past the point each asked
// for; one that has more than BehindBytes waiting is cut off.
func (s *share) handOut(b receiver.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.begun && s.snap != nil && s.readers == 0 {
		s.snap.Close() // no one reads it, and no one can come for it now
	}
	s.received, s.begun = b.End, true
	for sb := range s.subs {
		if b.End <= sb.from {
			continue
		}
		mine := b
		if len(b.Commands) > 0 && b.Commands[0].Offset <= sb.from {
			mine.Commands = nil
			for _, c := range b.Commands {
				if c.Offset > sb.from {
					mine.Commands = append(mine.Commands, c)
				}
			}
		}
		if !sb.push(mine, s.h.o.BehindBytes) {
			delete(s.subs, sb)
			s.h.log.Warn("a consumer fell behind the shared replication link: it gets a link of its own",
				"source", s.addr, "waiting_bytes", s.h.o.BehindBytes)
		}
	}
	s.ackLocked()
}

// ackLocked acknowledges the slowest consumer's applied offset to the
// source. s.mu is held.
func (s *share) ackLocked() {
	low := int64(-1)
	for sb := range s.subs {
		if a := sb.applied.Load(); low < 0 || a < low {
			low = a
		}
	}
	if low >= 0 {
		s.link.SetApplied(low)
	}
}

// die ends the shared link: every consumer gets err and asks again.
func (s *share) die(err error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	n := len(s.subs)
	s.mu.Unlock()
	if n > 0 {
		h.expect[s.addr] = n
	}
	if err == nil {
		err = errors.New("the shared link ended")
	}
	s.cutAll(err)
	s.closeLocked()
}

func (s *share) cutAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	for sb := range s.subs {
		sb.cut(err)
		delete(s.subs, sb)
	}
}

// closeLocked closes the link and forgets the share; the hub's mu is
// held.
func (s *share) closeLocked() {
	s.mu.Lock()
	s.dead = true
	s.mu.Unlock()
	if s.h.shares[s.addr] == s {
		delete(s.h.shares, s.addr)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.link.Close()
	s.mu.Lock()
	unread := s.readers == 0
	s.mu.Unlock()
	if s.snap != nil && unread {
		s.snap.Close()
	}
}

// rdbReader reads a share's snapshot; the last one closed after the
// share closes the snapshot.
type rdbReader struct {
	io.ReadCloser
	s    *share
	once sync.Once
}

func (r *rdbReader) Close() error {
	r.once.Do(func() {
		r.ReadCloser.Close()
		s := r.s
		s.mu.Lock()
		s.readers--
		// The last reader, once no one can come for it.
		last := s.readers == 0 && (s.dead || s.begun)
		s.mu.Unlock()
		if last {
			s.snap.Close()
		}
	})
	return nil
}

// leave takes a consumer off the share; the last one out closes it.
func (s *share) leave(sb *sub) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	delete(s.subs, sb)
	left, dead := len(s.subs), s.dead
	if left > 0 {
		s.ackLocked()
	}
	s.mu.Unlock()
	if left == 0 && !dead {
		s.closeLocked()
	}
}

// sub is one consumer's share of a link.
type sub struct {
	s     *share
	full  bool  // it began with the snapshot
	from  int64 // the commands at or before it are the consumer's already
	rdb   *rdbReader
	taken bool // by TakeRDB: Close leaves it open

	sent atomic.Int64 // the end of the last batch Stream sent

	applied atomic.Int64

	mu      sync.Mutex
	batches []receiver.Batch
	bytes   int64
	err     error
	wake    chan struct{}
	closed  bool
}

// push queues a batch; false (and the consumer cut off) past bound.
func (sb *sub) push(b receiver.Batch, bound int64) bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.err != nil {
		return false
	}
	if sb.bytes+int64(b.Bytes) > bound && len(sb.batches) > 0 {
		sb.err = fmt.Errorf("replication from %s: %w by more than %d bytes", sb.s.addr, ErrBehind, bound)
		sb.signal()
		return false
	}
	sb.batches = append(sb.batches, b)
	sb.bytes += int64(b.Bytes)
	sb.signal()
	return true
}

func (sb *sub) cut(err error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.err == nil {
		sb.err = err
	}
	sb.signal()
}

func (sb *sub) signal() {
	select {
	case sb.wake <- struct{}{}:
	default:
	}
}

// Full reports whether the consumer begins with the snapshot.
func (sb *sub) Full() bool { return sb.full }

// Received is the end of the last batch Stream sent.
func (sb *sub) Received() int64 { return sb.sent.Load() }

// ReplID is the source's replication ID.
func (sb *sub) ReplID() string { return sb.s.link.ReplID() }

// StartOffset is the offset the consumer's stream follows.
func (sb *sub) StartOffset() int64 { return sb.from }

// RDB reads the shared snapshot from its start.
func (sb *sub) RDB() io.Reader {
	if sb.rdb == nil {
		return nil
	}
	return sb.rdb
}

// RDBSize is the snapshot's announced size (-1 for a diskless one).
func (sb *sub) RDBSize() int64 { return sb.s.link.RDBSize() }

// SetApplied records what the consumer's target has applied: the source
// is acknowledged the slowest consumer's.
func (sb *sub) SetApplied(offset int64) {
	sb.applied.Store(offset)
	sb.s.mu.Lock()
	if _, ok := sb.s.subs[sb]; ok {
		sb.s.ackLocked()
	}
	sb.s.mu.Unlock()
}

// Stream sends the consumer's batches to out until ctx ends, the shared
// link fails or the consumer is cut off.
func (sb *sub) Stream(ctx context.Context, out chan<- receiver.Batch) error {
	for {
		sb.mu.Lock()
		if len(sb.batches) > 0 {
			b := sb.batches[0]
			sb.batches[0] = receiver.Batch{}
			sb.batches = sb.batches[1:]
			sb.bytes -= int64(b.Bytes)
			sb.mu.Unlock()
			select {
			case out <- b:
				sb.sent.Store(b.End)
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err, closed := sb.err, sb.closed
		sb.mu.Unlock()
		switch {
		case err != nil:
			return err
		case closed:
			return fmt.Errorf("replication from %s: %w", sb.s.addr, io.ErrClosedPipe)
		}
		select {
		case <-sb.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close takes the consumer off the shared link.
func (sb *sub) Close() error {
	sb.mu.Lock()
	if sb.closed {
		sb.mu.Unlock()
		return nil
	}
	sb.closed = true
	sb.batches = nil
	sb.signal()
	taken := sb.taken
	sb.mu.Unlock()
	if sb.rdb != nil && !taken {
		sb.rdb.Close()
	}
	sb.s.leave(sb)
	return nil
}

// Shared reports whether l is a share of a hub's link: its snapshot is
// spooled by the hub already, and its stream may be read while the
// snapshot is.
func Shared(l Link) bool {
	_, ok := l.(*sub)
	return ok
}

// TakeRDB hands a shared link's snapshot reader to the caller, who
// closes it: it outlives the link (a consumer's stream may move to a
// link of its own while its target still loads the snapshot). Nil for
// a link of its own.
func TakeRDB(l Link) io.ReadCloser {
	sb, ok := l.(*sub)
	if !ok || sb.rdb == nil {
		return nil
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.taken = true
	return sb.rdb
}
