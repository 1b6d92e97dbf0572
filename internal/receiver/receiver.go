// Package receiver speaks the replication protocol to a source as a
// replica would: the handshake, PSYNC, the snapshot (RDB) and then the
// command stream, tracking the replication offset byte for byte and
// acknowledging what the writers have applied.
package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/resp"
)

// Options configure a link to a source.
type Options struct {
	Source dialer.Options
	// AnnouncePort is sent with REPLCONF listening-port: a port on which
	// no Redis answers, so that a Sentinel sees resync as a replica it
	// can never promote. 0 sends none.
	AnnouncePort int
	// ReplID and Offset continue a stream: PSYNC asks for the bytes after
	// Offset. An empty ReplID asks for a full sync.
	ReplID string
	Offset int64
	// AckInterval is how often REPLCONF ACK reports the applied offset
	// (default 1s).
	AckInterval time.Duration
	// ReadTimeout bounds a wait for the source (default 60s, Redis's
	// repl-timeout): it sends a newline every second while it prepares a
	// snapshot, and pings every 10s once streaming.
	ReadTimeout time.Duration
	// BatchBytes caps one batch of commands (default 256 KiB).
	BatchBytes int
	Logger     *slog.Logger
}

// Link is one replication link. Connect opens it; when the source
// answered with a full sync, RDB must be read to its end before Stream.
type Link struct {
	o    Options
	conn *dialer.Conn
	r    *resp.Reader
	log  *slog.Logger

	full    bool
	replID  string
	start   int64 // the offset of the byte before the stream's first
	rdb     io.Reader
	rdbSize int64
	eofMark bool

	wmu     sync.Mutex // the ack ticker and GETACK answers share the writer
	applied atomic.Int64
	recv    atomic.Int64
}

// Error is a failure of the link, naming the source and the stage.
type Error struct {
	Addr  string
	Stage string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("replication from %s: %s: %v", e.Addr, e.Stage, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func (l *Link) fail(stage string, err error) error {
	return &Error{Addr: l.o.Source.Addr, Stage: stage, Err: err}
}

// Connect dials the source, runs the handshake and PSYNC.
func Connect(ctx context.Context, o Options) (*Link, error) {
	if o.AckInterval <= 0 {
		o.AckInterval = time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 256 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Source.DB = 0 // a replica never selects: the stream does
	c, err := dialer.Dial(ctx, o.Source)
	if err != nil {
		return nil, err
	}
	l := &Link{o: o, conn: c, r: c.Reader(), log: o.Logger.With("source", o.Source.Addr), rdbSize: -1}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetIOTimeout(o.ReadTimeout)
	if err := l.handshake(); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, l.fail("handshake", ctx.Err())
		}
		return nil, err
	}
	return l, nil
}

func (l *Link) handshake() error {
	c := l.conn
	if l.o.AnnouncePort > 0 {
		if _, err := c.Do("REPLCONF", "listening-port", strconv.Itoa(l.o.AnnouncePort)); err != nil && !isRedisError(err) {
			return l.fail("REPLCONF listening-port", err)
		}
	}
	// eof: the snapshot may come diskless, delimited by a mark; psync2:
	// +CONTINUE may name a new replication ID. Sources before 4.0 reject
	// the options they do not know: carry on without them.
	if _, err := c.Do("REPLCONF", "capa", "eof", "capa", "psync2"); err != nil {
		if !isRedisError(err) {
			return l.fail("REPLCONF capa", err)
		}
		l.log.Debug("source rejects REPLCONF capa", "err", err)
	}
	id, off := "?", "-1"
	if l.o.ReplID != "" {
		id, off = l.o.ReplID, strconv.FormatInt(l.o.Offset+1, 10)
	}
	w := c.Writer()
	w.WriteCommandStrings("PSYNC", id, off)
	if err := w.Flush(); err != nil {
		return l.fail("PSYNC", err)
	}
	line, err := l.line()
	if err != nil {
		return l.fail("PSYNC", err)
	}
	f := strings.Fields(string(line))
	switch {
	case len(f) == 3 && f[0] == "+FULLRESYNC":
		// 2.8 names its run ID here: it serves as the replication ID.
		start, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return l.fail("PSYNC", fmt.Errorf("bad offset in %q", line))
		}
		l.full, l.replID, l.start = true, f[1], start
		return l.openRDB()
	case len(f) >= 1 && len(f) <= 2 && f[0] == "+CONTINUE":
		l.replID, l.start = l.o.ReplID, l.o.Offset
		if len(f) == 2 {
			l.replID = f[1] // PSYNC2: the source's ID changed (a failover)
		}
		return nil
	case len(line) > 0 && line[0] == '-':
		return l.fail("PSYNC", &resp.RedisError{Msg: string(line[1:])})
	}
	return l.fail("PSYNC", fmt.Errorf("unexpected reply %q", line))
}

// line reads a reply line, skipping the newlines a source sends to keep
// the link alive while it prepares a snapshot.
func (l *Link) line() ([]byte, error) {
	for {
		line, err := l.r.ReadLine()
		if err != nil {
			return nil, err
		}
		if len(line) > 0 {
			return line, nil
		}
	}
}

func isRedisError(err error) bool {
	var re *resp.RedisError
	return errors.As(err, &re)
}

// eofMarkLen is the size of the mark that ends a diskless snapshot.
const eofMarkLen = 40

func (l *Link) openRDB() error {
	line, err := l.line()
	if err != nil {
		return l.fail("snapshot header", err)
	}
	if len(line) < 2 || line[0] != '$' {
		return l.fail("snapshot header", fmt.Errorf("unexpected %q", line))
	}
	if rest, ok := bytes.CutPrefix(line[1:], []byte("EOF:")); ok {
		if len(rest) != eofMarkLen {
			return l.fail("snapshot header", fmt.Errorf("EOF mark of %d bytes", len(rest)))
		}
		l.rdb = &eofReader{r: l.r, mark: bytes.Clone(rest), buf: make([]byte, 64<<10)}
		l.eofMark = true
		return nil
	}
	n, err := strconv.ParseInt(string(line[1:]), 10, 64)
	if err != nil || n < 0 {
		return l.fail("snapshot header", fmt.Errorf("bad length in %q", line))
	}
	l.rdbSize = n
	l.rdb = &exactReader{r: io.LimitReader(l.r, n), left: n}
	return nil
}

// Full reports whether the source sends a snapshot (a full sync).
func (l *Link) Full() bool { return l.full }

// ReplID is the source's replication ID for this stream.
func (l *Link) ReplID() string { return l.replID }

// StartOffset is the replication offset just before the stream's first
// byte: the snapshot's offset after a full sync, the requested one after
// a partial resync.
func (l *Link) StartOffset() int64 { return l.start }

// RDB returns the snapshot of a full sync, to be read to its end; nil
// after a partial resync.
func (l *Link) RDB() io.Reader { return l.rdb }

// RDBSize is the snapshot's size, or -1 when the source sends it
// diskless (its size is not announced).
func (l *Link) RDBSize() int64 { return l.rdbSize }

// SetApplied records the offset up to which the writers have applied
// the stream; it is what REPLCONF ACK reports.
func (l *Link) SetApplied(offset int64) { l.applied.Store(offset) }

// Applied returns the offset last given to SetApplied.
func (l *Link) Applied() int64 { return l.applied.Load() }

// Received returns the offset of the last byte read from the stream.
func (l *Link) Received() int64 { return l.recv.Load() }

// Close ends the link.
func (l *Link) Close() error { return l.conn.Close() }

func (l *Link) ack(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	w := l.conn.Writer()
	w.WriteCommandStrings("REPLCONF", "ACK", strconv.FormatInt(offset, 10))
	return w.Flush()
}

// Command is one command of the stream.
type Command struct {
	Args [][]byte
	// Offset is the replication offset of the command's last byte.
	Offset int64
}

// Batch is consecutive commands of the stream. End is the offset of the
// batch's last byte, which may lie past its last command: the source's
// PINGs and REPLCONFs are not passed on, yet applying the batch reaches
// past them. The batch owns its memory.
type Batch struct {
	Commands []Command
	End      int64
	Bytes    int
	// At is when the batch was read from the source.
	At time.Time
}

// Stream reads the command stream and sends it to out in batches, until
// ctx ends or the link fails. A batch is sent when it reaches the batch
// size or when nothing more is buffered from the source; out's capacity
// times the batch size bounds the memory the stream holds. It answers
// REPLCONF GETACK and sends REPLCONF ACK with the applied offset every
// AckInterval. After a full sync, the snapshot must have been read.
func (l *Link) Stream(ctx context.Context, out chan<- Batch) error {
	if l.rdb != nil {
		if r, ok := l.rdb.(interface{ finished() bool }); ok && !r.finished() {
			return l.fail("stream", errors.New("the snapshot was not read to its end"))
		}
	}
	if l.applied.Load() < l.start {
		l.applied.Store(l.start)
	}
	l.conn.SetIOTimeout(l.o.ReadTimeout)
	stop := context.AfterFunc(ctx, func() { l.conn.Close() })
	defer stop()

	// A diskless snapshot's source starts the stream on the first ACK.
	if err := l.ack(l.applied.Load()); err != nil {
		return l.streamErr(ctx, err)
	}
	ackCtx, cancelAck := context.WithCancel(ctx)
	defer cancelAck()
	ackErr := make(chan error, 1)
	start := l.recv.Load()
	go func() {
		// Until the stream's first byte, ACK often: a source that ends a
		// diskless snapshot enables the stream on an ACK that comes
		// after it reaped its fork, and the first may come before
		// (seen: the first write after a full sync a second late).
		interval := min(firstAckInterval, l.o.AckInterval)
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-ackCtx.Done():
				ackErr <- nil
				return
			case <-t.C:
				if err := l.ack(l.applied.Load()); err != nil {
					ackErr <- err
					return
				}
				if interval < l.o.AckInterval && l.recv.Load() > start {
					interval = l.o.AckInterval
				}
				t.Reset(interval)
			}
		}
	}()
	err := l.read(ctx, out)
	cancelAck()
	if aerr := <-ackErr; err == nil {
		err = aerr
	}
	return l.streamErr(ctx, err)
}

// firstAckInterval is how often the stream is ACKed before its first
// byte arrives.
const firstAckInterval = 50 * time.Millisecond

func (l *Link) streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return l.fail("stream", err)
}

func (l *Link) read(ctx context.Context, out chan<- Batch) error {
	base := l.r.Offset() - l.start // stream offset = reader offset - base
	var b Batch
	var arena []byte
	// The commands' argument lists come from slabs too: one allocation
	// per few hundred commands, not one each, spares the garbage
	// collector millions of small objects under a heavy load.
	var slab [][]byte
	flush := func() error {
		if len(b.Commands) == 0 && b.End <= l.Received() {
			return nil
		}
		l.recv.Store(b.End)
		b.At = time.Now()
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b, arena, slab = Batch{}, nil, nil
		return nil
	}
	for {
		args, err := l.r.ReadCommand()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		end := l.r.Offset() - base
		b.End = end
		switch {
		case len(args) == 0:
		case isCommand(args, "PING"):
		case isCommand(args, "REPLCONF"):
			if len(args) >= 2 && strings.EqualFold(string(args[1]), "GETACK") {
				if err := l.ack(l.applied.Load()); err != nil {
					return err
				}
			}
		default:
			if arena == nil {
				arena = make([]byte, 0, l.o.BatchBytes)
			}
			if cap(slab)-len(slab) < len(args) {
				slab = make([][]byte, 0, max(len(args), 512))
			}
			first := len(slab)
			slab = slab[:first+len(args)]
			cmd := Command{Offset: end, Args: slab[first:len(slab):len(slab)]}
			for i, a := range args {
				if cap(arena)-len(arena) < len(a) {
					arena = make([]byte, 0, max(len(a), l.o.BatchBytes))
				}
				n := len(arena)
				arena = append(arena, a...)
				cmd.Args[i] = arena[n:len(arena):len(arena)]
				b.Bytes += len(a)
			}
			b.Commands = append(b.Commands, cmd)
		}
		if b.Bytes >= l.o.BatchBytes || l.r.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func isCommand(args [][]byte, name string) bool {
	return strings.EqualFold(string(args[0]), name)
}

// exactReader reads a snapshot of announced length.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (e *exactReader) finished() bool { return e.left == 0 }

// eofReader reads a diskless snapshot: it ends with a 40-byte mark that
// the source announced in its header. The source sends nothing after the
// mark until it gets an ACK, so the mark is always at the end of what
// has been read; the last 40 bytes are held back until more arrive.
type eofReader struct {
	r       io.Reader
	mark    []byte
	buf     []byte
	held    int    // buf[:held] is data not yet returned (its tail may be the mark)
	pending []byte // data ready to return
	done    bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	for len(e.pending) == 0 {
		if e.done {
			return 0, io.EOF
		}
		n, err := e.r.Read(e.buf[e.held:])
		e.held += n
		if e.held >= eofMarkLen && bytes.Equal(e.buf[e.held-eofMarkLen:e.held], e.mark) {
			e.pending, e.done = e.buf[:e.held-eofMarkLen], true
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if e.held > eofMarkLen {
			e.pending = e.buf[:e.held-eofMarkLen]
		}
	}
	n := copy(p, e.pending)
	e.pending = e.pending[n:]
	if len(e.pending) == 0 && !e.done {
		// Keep the last 40 bytes, the mark's candidates, at the front.
		e.held = copy(e.buf, e.buf[e.held-eofMarkLen:e.held])
	}
	return n, nil
}

func (e *eofReader) finished() bool { return e.done && len(e.pending) == 0 }
