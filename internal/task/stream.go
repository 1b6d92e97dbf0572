package task

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/resync/resync/internal/fanout"
	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/spool"
)

// errNeedPSYNC ends a session whose target came back behind what the
// spool still holds: a new PSYNC from the target's checkpoint follows.
// keepFor is how long the batches a target confirmed are kept to be
// sent again should it come back without them.
const keepFor = 3 * time.Second

var errNeedPSYNC = errors.New("the target's checkpoint is older than the spool: resuming from the source's backlog")

// incremental applies the command stream until ctx ends or the source
// fails. The source is read all along into a queue (memory, then the
// spool directory), so a slow or stopped target does not stop the
// source's link; when the target connection is lost, it is retried
// here, and the batches not yet confirmed are sent again from where the
// target's checkpoint says it is.
func (t *Task) incremental(ctx context.Context, link fanout.Link, w *sink, rd *reading) error {
	parent := ctx
	ctx, q := rd.ctx, rd.q
	got := make(chan receiver.Batch)
	gotten := make(chan struct{})
	go func() {
		defer close(gotten)
		for {
			b, err := q.Get(ctx)
			if err != nil {
				return
			}
			select {
			case got <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	end := func(err error) error {
		serr := rd.stop()
		<-gotten
		// The link's end (which cancels ctx) is the reason, unless the
		// task itself is stopping.
		if err == nil || errors.Is(err, context.Canceled) && parent.Err() == nil && serr != nil {
			err = serr
		}
		return err
	}

	// held: the batches applied and not yet safe to forget, oldest
	// first; from is the offset they follow. A batch is safe once
	// confirmed, covered by the checkpoint before the last (a failover
	// may lose the last: replicas lag) and older than keepFor (a target
	// restarting from an AOF fsynced every second loses up to a second
	// of what it confirmed). Past BufferBytes of them the oldest go
	// anyway: the source's backlog is the fallback.
	var held []heldBatch
	heldBytes := 0
	from := link.StartOffset()
	confirm := func() {
		safe := min((*w).Applied(), t.tx.prevSaved)
		if t.wrap() {
			// A batch in a transaction carries its checkpoint; one
			// without waits for the watermark after it.
			safe = min((*w).Applied(), t.tx.savedOffset)
		}
		old := time.Now().Add(-keepFor)
		for len(held) > 0 && (held[0].End <= safe && held[0].At.Before(old) || heldBytes > t.cfg.BufferBytes) {
			from = held[0].End
			heldBytes -= len(held[0].packed)
			held[0] = heldBatch{}
			held = held[1:]
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			if werr := (*w).Err(); werr != nil {
				return end(werr)
			}
			return end(nil)
		case <-tick.C:
			// A watermark written here goes out now: confirm counts
			// on it.
			if err = t.publishApplied(rd.current(), *w); err == nil {
				err = (*w).Flush()
			}
			confirm()
		case <-t.advanced:
			// The target confirmed more: a heartbeat's lag is
			// measured now, not at the next tick.
			if err = t.publishApplied(rd.current(), *w); err == nil {
				err = (*w).Flush()
			}
		case <-progress.C:
			st := t.Status()
			t.log.Info("progress", "received", st.Received, "applied", st.Applied, "commands", st.Commands,
				"queued_bytes", st.SpoolMemBytes+st.SpoolDiskBytes)
		case b := <-got:
			if err = t.apply(b, *w); err == nil {
				if err = t.publishApplied(rd.current(), *w); err == nil {
					err = (*w).Flush()
				}
			}
			h := heldBatch{packed: spool.Pack(b), End: b.End, At: b.At}
			held = append(held, h)
			heldBytes += len(h.packed)
			confirm()
		}
		if err == nil {
			continue
		}
		if !retryable(err) || ctx.Err() != nil {
			return end(err)
		}
		// The target connection is lost; the source's is not.
		for {
			if err := t.reconnectTarget(ctx, rd.current(), w, err); err != nil {
				return end(err)
			}
			if a := t.applied.Load(); a < from {
				return end(errNeedPSYNC)
			}
			t.log.Info("target back: sending again what it had not confirmed", "from", t.applied.Load(), "batches", len(held))
			if err = t.replay(held, *w); err == nil {
				break
			}
			if !retryable(err) {
				return end(err)
			}
		}
		t.setState(StateSynchronizing)
	}
}

// reconnectTarget retries the target, within the retry window, until a
// new connection reads the target's checkpoint; the source's link stays
// up meanwhile (the queue absorbs the stream).
func (t *Task) reconnectTarget(ctx context.Context, link fanout.Link, w *sink, cause error) error {
	received := t.received.Load()
	closed := false
	for {
		healthy := t.healthySince()
		t.mu.Lock()
		t.healthy = time.Time{}
		t.mu.Unlock()
		if err := t.retryAfter(ctx, healthy, cause, "target connection lost; retrying (the source is still read)"); err != nil {
			return err
		}
		if !closed {
			(*w).Close()
			closed = true
		}
		if err := t.locateTarget(ctx); err != nil {
			cause = err
			continue
		}
		nw, err := t.openTarget(ctx)
		if err != nil {
			cause = err
			continue // the closed sink stands in: Close and Err are safe on it
		}
		*w, closed = nw, false
		t.newSink()
		if r, ok := sinkRouter(nw); ok {
			r.Group(t.exact())
		}
		scratch, err := t.resume(ctx, nw)
		if err != nil {
			cause = err
			continue
		}
		t.received.Store(received)
		t.mu.Lock()
		t.healthy = time.Now()
		t.mu.Unlock()
		if scratch || t.currentReplID() != link.ReplID() {
			return errNeedPSYNC
		}
		return nil
	}
}

// heldBatch is a batch applied and kept, packed, to be sent again should
// the target lose it.
type heldBatch struct {
	packed []byte // spool.Pack
	End    int64
	At     time.Time
}

// replay applies again the held batches past the target's checkpoint.
func (t *Task) replay(held []heldBatch, w sink) error {
	after := t.applied.Load()
	for _, h := range held {
		if h.End <= after {
			continue
		}
		b, err := spool.Unpack(h.packed)
		if err != nil {
			return fmt.Errorf("a batch kept to send again: %w", err)
		}
		rest := b
		rest.Commands = nil
		for _, c := range b.Commands {
			if c.Offset > after {
				rest.Commands = append(rest.Commands, c)
			}
		}
		if err := t.apply(rest, w); err != nil {
			return err
		}
	}
	return w.Flush()
}

// reading is the source's stream being read into the queue, from its own
// goroutines, until stop. When the source's link is lost, the reading
// reconnects with PSYNC from what it has *received* (the queue keeps
// what is not applied yet, as a replica keeps its own data), within the
// retry window.
type reading struct {
	q         *spool.Queue
	ctx       context.Context // ends when the link does, or stop
	cancel    context.CancelFunc
	streamErr chan error
	pumped    chan struct{}
	err       error
	stopped   bool

	mu   sync.Mutex
	link fanout.Link // the current link
}

func (rd *reading) current() fanout.Link {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.link
}

// errFullResync ends a session whose source, asked to continue after a
// lost link, wants a full resync: the next session takes that link
// (Task.pending) rather than asking again.
var errFullResync = errors.New("the source asks for a full resync")

// readStream starts reading the link's stream into a new queue (memory,
// then the spool directory); the status shows the queue meanwhile.
func (t *Task) readStream(ctx context.Context, link fanout.Link) (*reading, error) {
	q, err := spool.New(spool.Options{MemBytes: int64(t.cfg.BufferBytes), Dir: t.cfg.SpoolDir, DiskBytes: t.cfg.SpoolMax})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.queue = q
	t.mu.Unlock()
	rd := &reading{q: q, streamErr: make(chan error, 1), pumped: make(chan struct{}), link: link}
	rd.ctx, rd.cancel = context.WithCancel(ctx)
	in := make(chan receiver.Batch, 4)
	go func() {
		defer rd.cancel()
		for {
			began := time.Now()
			err := link.Stream(rd.ctx, in)
			if rd.ctx.Err() != nil || !retryable(err) {
				rd.streamErr <- err
				return
			}
			next, err := t.relink(rd.ctx, began, link, err)
			if err != nil {
				rd.streamErr <- err
				return
			}
			link.Close()
			rd.mu.Lock()
			rd.link, link = next, next
			rd.mu.Unlock()
		}
	}()
	go func() {
		defer close(rd.pumped)
		for {
			select {
			case b := <-in:
				t.received.Store(b.End)
				if q.Put(rd.ctx, b) != nil {
					return
				}
			case <-rd.ctx.Done():
				return
			}
		}
	}()
	return rd, nil
}

// relink reconnects a lost source link with PSYNC from the received
// offset, following the source's master if it moved. A source that
// wants a full resync ends the session (errFullResync), handing it the
// link.
func (t *Task) relink(ctx context.Context, began time.Time, old fanout.Link, cause error) (fanout.Link, error) {
	for {
		if err := t.retryAfter(ctx, began, cause, "source link lost; retrying (what was received stays queued)"); err != nil {
			return nil, err
		}
		began = time.Time{} // one healthy mark per lost link
		if err := t.locateSource(ctx); err != nil {
			cause = err
			continue
		}
		// What the lost link sent may still wait for the queue.
		from := max(t.received.Load(), old.Received())
		next, err := t.connect(ctx, receiver.Options{Source: t.sourceOpts(), AnnouncePort: t.cfg.AnnouncePort, Logger: t.log,
			ReplID: old.ReplID(), Offset: from, ReadTimeout: t.linkTimeout()})
		if err != nil {
			cause = err
			continue
		}
		if next.Full() {
			t.mu.Lock()
			t.pending = next
			t.mu.Unlock()
			return nil, errFullResync
		}
		// Never past what this link will carry (during a full sync the
		// applied offset is of the history before).
		next.SetApplied(min(t.applied.Load(), from))
		t.mu.Lock()
		t.replID = next.ReplID() // PSYNC2 may name a new one
		t.mu.Unlock()
		t.log.Info("partial resync", "replid", next.ReplID(), "offset", from)
		t.setState(StateSynchronizing)
		return next, nil
	}
}

// stop ends the reading and returns why the link ended (nil when it was
// stopped first).
func (rd *reading) stop() error {
	if !rd.stopped {
		rd.stopped = true
		rd.cancel()
		rd.err = <-rd.streamErr
		<-rd.pumped
	}
	return rd.err
}

// closeReading stops the reading and drops its queue.
func (t *Task) closeReading(rd *reading) {
	rd.stop()
	rd.link.Close()
	t.mu.Lock()
	if t.queue == rd.q {
		t.queue = nil
	}
	t.mu.Unlock()
	rd.q.Close()
}
