// Package writer applies commands to one target node through one
// pipelined connection: a bounded window of commands in flight (by count
// and by bytes), every reply read by its own goroutine and checked,
// including each reply inside an EXEC.
//
// A writer to a cluster node (Options.Cluster) does not fail on the
// replies that send a command elsewhere or ask to try later (MOVED, ASK,
// TRYAGAIN, CLUSTERDOWN, LOADING): it keeps the command, with its place in
// the overall order, for the router to send again, and holds its applied
// offset back until the router has done so (Redirects, Resume).
package writer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/keyname"
	"github.com/resync/resync/internal/resp"
)

// Options configure a writer.
type Options struct {
	Target dialer.Options
	// Window bounds the commands sent and not yet answered (default 1024).
	Window int
	// WindowBytes bounds their size (default 8 MiB); one command bigger
	// than this still goes, alone.
	WindowBytes int
	// Cluster: the target is a cluster node; see the package comment.
	Cluster bool
	// Keys says how errors show key names.
	Keys keyname.Style
	// MaxOps and MaxBytes bound the commands and argument bytes sent per
	// second (0: no bound).
	MaxOps, MaxBytes int
	// Advanced, when set, gets a token (never blocking) each time the
	// applied offset moves: a caller that measures lag at that moment
	// need not poll for it.
	Advanced chan<- struct{}
}

// Op is one command to apply.
type Op struct {
	Args [][]byte
	// Offset is the replication offset reached once this command is
	// confirmed (0: it reaches none, e.g. a full sync's RESTORE). Inside
	// MULTI/EXEC only the EXEC's counts: a transaction applies whole.
	Offset int64
	// Key names the key in errors (default: the second argument).
	Key []byte
	// SourceMayFail says an error reply is what the source answered too
	// (a script replicated verbatim that failed half way): it is counted,
	// not fatal.
	SourceMayFail bool
	// Seq orders the commands a router spreads over several writers; a
	// redirected command carries it back.
	Seq int64
}

// Redirect is a command (or a whole MULTI … EXEC block) a cluster node
// sent elsewhere or asked to try later.
type Redirect struct {
	Ops []Op // their arguments are the writer's own copies
	// Kind is "MOVED" or "ASK" (Addr says where), or "RETRY" (TRYAGAIN,
	// CLUSTERDOWN, LOADING: the same slot's owner, a moment later).
	Kind  string
	Addr  string
	Reply string
}

// Error is an error reply from the target, or a lost connection, with the
// command it answered.
type Error struct {
	Addr    string
	Command string
	Key     string
	Reply   string // the error reply; "" when the connection failed
	Err     error
	// Keys says how Error shows Key.
	Keys keyname.Style
}

func (e *Error) Error() string {
	what := e.Command
	if e.Key != "" {
		what += " " + e.Keys.QuoteString(e.Key)
	}
	if e.Reply != "" {
		reply := e.Reply
		if i := strings.Index(reply, "args beginning with"); i >= 0 && e.Keys.Redact {
			// Redis quotes the command's first arguments there.
			reply = reply[:i] + "args (redacted)"
		}
		return fmt.Sprintf("target %s refused %s: %s", e.Addr, what, reply)
	}
	return fmt.Sprintf("target %s: %s: %v", e.Addr, what, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// pending is a command sent and not yet answered.
type pending struct {
	name    string
	key     []byte // in a keys chunk: read-only
	size    int
	offset  int64
	mark    bool      // no command: only an offset to reach
	lenient bool      // an error reply is counted, not fatal
	queued  []pending // for an EXEC: the commands it runs
	op      *Op       // Cluster: the command itself, to send again
	inTx    bool      // queued inside MULTI: the EXEC's reply decides
	multi   *Op       // Cluster, for an EXEC: its MULTI
}

// Writer applies commands to one target. Write, Mark, Flush and Sync are
// called from one goroutine; Applied, Confirmed and Err from any.
type Writer struct {
	o    Options
	conn *dialer.Conn
	w    *resp.Writer
	addr string

	inflight chan pending
	mu       sync.Mutex
	cond     *sync.Cond
	bytes    int   // size of the commands in flight
	waiting  int   // entries pushed and not yet processed
	err      error // the first failure: sticky
	tx       []pending
	inTx     bool
	multi    *Op // Cluster: the open transaction's MULTI

	// Cluster: commands to send again; while any is held (or until
	// Resume), the applied offset stays, and seen records how far it
	// would have gone. txRedirect is a redirect reply to a command
	// queued in the current MULTI: its EXEC will abort.
	redirects  []Redirect
	frozen     bool
	seen       int64
	txRedirect *Redirect

	limit *throttle // nil without bounds

	// names maps a command name as sent to its upper case, and keys is
	// the chunk the pending commands' keys are copied into: a command
	// costs no allocation of its own for either (the key is kept for an
	// error's message; a chunk goes when its last command is answered).
	names map[string]string
	keys  []byte

	applied   atomic.Int64
	confirmed atomic.Int64 // commands confirmed
	tolerated atomic.Int64 // error replies the source answered too
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// Open dials the target and starts reading replies.
func Open(ctx context.Context, o Options) (*Writer, error) {
	if o.Window <= 0 {
		o.Window = 1024
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = 8 << 20
	}
	c, err := dialer.Dial(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	w := &Writer{o: o, conn: c, w: c.Writer(), addr: o.Target.Addr, limit: newThrottle(o.MaxOps, o.MaxBytes),
		inflight: make(chan pending, o.Window), closing: make(chan struct{}), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.readReplies()
	return w, nil
}

// Write sends one command, or queues it in the connection's buffer; it
// waits while the window is full. It returns the writer's failure, if
// any: nothing after a failed command counts as applied.
func (w *Writer) Write(op Op) error {
	p := pending{name: w.name(op.Args[0]), offset: op.Offset, lenient: op.SourceMayFail}
	switch {
	case op.Key != nil:
		p.key = w.keep(op.Key)
	case len(op.Args) > 1:
		p.key = w.keep(op.Args[1])
	}
	for _, a := range op.Args {
		p.size += len(a) + 16
	}
	if w.o.Cluster {
		c := op.Clone()
		p.op = &c
	}
	switch p.name {
	case "MULTI":
		w.inTx, w.tx = true, w.tx[:0]
		p.offset = 0
		w.multi = p.op
	case "EXEC":
		p.queued = append([]pending(nil), w.tx...)
		p.multi = w.multi
		w.inTx = false
	case "DISCARD":
		w.inTx, w.tx, w.multi = false, w.tx[:0], nil
		p.offset = 0
	default:
		if w.inTx {
			p.offset, p.inTx = 0, true
			w.tx = append(w.tx, pending{name: p.name, key: p.key, op: p.op, lenient: p.lenient})
		}
	}
	if w.limit != nil {
		if err := w.pace(p.size); err != nil {
			return err
		}
	}
	if err := w.reserve(p.size); err != nil {
		return err
	}
	w.w.WriteArrayHeader(len(op.Args))
	for _, a := range op.Args {
		w.w.WriteBulk(a)
	}
	return w.push(p)
}

// Clone returns op with its arguments (and key) copied into memory of its
// own, one allocation for the arguments: for holding a command past the
// moment its caller reuses its buffers.
func (op Op) Clone() Op {
	n := 0
	for _, a := range op.Args {
		n += len(a)
	}
	buf := make([]byte, 0, n)
	args := make([][]byte, len(op.Args))
	for i, a := range op.Args {
		buf = append(buf, a...)
		args[i] = buf[len(buf)-len(a):]
	}
	op.Args = args
	if op.Key != nil {
		op.Key = append([]byte(nil), op.Key...)
	}
	return op
}

// advanced tells Options.Advanced that the applied offset moved.
func (w *Writer) advanced() {
	select {
	case w.o.Advanced <- struct{}{}:
	default: // a token is waiting already (or no one listens)
	}
}

// name returns a command name in upper case, allocating only for a name
// not seen before.
func (w *Writer) name(b []byte) string {
	if n, ok := w.names[string(b)]; ok {
		return n
	}
	n := strings.ToUpper(string(b))
	if w.names == nil {
		w.names = map[string]string{}
	}
	if len(w.names) < 1024 { // a bound, against a stream of odd names
		w.names[string(b)] = n
	}
	return n
}

// keysChunk is the size of the chunks keys are copied into.
const keysChunk = 64 << 10

// keep copies a key into the current chunk (a new one when it is full).
func (w *Writer) keep(key []byte) []byte {
	if len(w.keys)+len(key) > cap(w.keys) {
		w.keys = make([]byte, 0, max(keysChunk, len(key)))
	}
	start := len(w.keys)
	w.keys = append(w.keys, key...)
	return w.keys[start:len(w.keys):len(w.keys)]
}

// Mark records that offset is reached once every command before it is
// confirmed (the source's PINGs, or commands deliberately not applied).
func (w *Writer) Mark(offset int64) error {
	return w.push(pending{mark: true, offset: offset})
}

// push hands a sent command to the reply reader, flushing first when the
// count window is full (its replies cannot come otherwise).
func (w *Writer) push(p pending) error {
	w.mu.Lock()
	w.waiting++
	w.mu.Unlock()
	select {
	case w.inflight <- p:
		return w.Err()
	default:
	}
	if err := w.flush(); err != nil {
		return err
	}
	select {
	case w.inflight <- p:
		return w.Err()
	case <-w.done:
		return w.Err()
	}
}

// reserve waits until size more bytes fit in the window.
func (w *Writer) reserve(size int) error {
	w.mu.Lock()
	if w.bytes > 0 && w.bytes+size > w.o.WindowBytes && w.err == nil {
		w.mu.Unlock()
		if err := w.flush(); err != nil {
			return err
		}
		w.mu.Lock()
		for w.bytes > 0 && w.bytes+size > w.o.WindowBytes && w.err == nil {
			w.cond.Wait()
		}
	}
	w.bytes += size
	err := w.err
	w.mu.Unlock()
	return err
}

func (w *Writer) flush() error {
	if err := w.w.Flush(); err != nil {
		w.setErr(&Error{Addr: w.addr, Command: "write", Err: err})
	}
	return w.Err()
}

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.flush() }

// Sync flushes and waits until every command sent is confirmed.
func (w *Writer) Sync(ctx context.Context) error {
	if err := w.flush(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.waiting > 0 && w.err == nil && ctx.Err() == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

// Applied is the offset of the last confirmed command (or mark) that
// carried one.
func (w *Writer) Applied() int64 { return w.applied.Load() }

// Confirmed counts the commands the target has confirmed.
func (w *Writer) Confirmed() int64 { return w.confirmed.Load() }

// Tolerated counts the error replies let through (Op.SourceMayFail).
func (w *Writer) Tolerated() int64 { return w.tolerated.Load() }

// Err returns the writer's failure, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) setErr(err error) {
	if e, ok := err.(*Error); ok {
		e.Keys = w.o.Keys
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

// Close ends the connection; commands not confirmed are not applied. A
// second Close does nothing.
func (w *Writer) Close() error {
	var err error
	w.closeOnce.Do(func() {
		close(w.closing)
		err = w.conn.Close()
		<-w.done
	})
	return err
}

var errClosed = errors.New("writer closed")

func (w *Writer) readReplies() {
	defer close(w.done)
	r := w.conn.Reader()
	for {
		var p pending
		select {
		case p = <-w.inflight:
		case <-w.closing:
			w.setErr(&Error{Addr: w.addr, Command: "write", Err: errClosed})
			return
		}
		if !p.mark {
			v, err := r.ReadValue()
			if err != nil {
				w.setErr(&Error{Addr: w.addr, Command: p.name, Key: string(p.key), Err: err})
				return
			}
			if w.o.Cluster && w.redirected(p, v) {
				w.release(p, 0)
				continue
			}
			n, bad := check(p, v)
			if bad != nil {
				if !p.lenient || bad.Reply == "" {
					bad.Addr = w.addr
					w.setErr(bad)
					return
				}
				n++
			}
			w.tolerated.Add(int64(n))
			w.confirmed.Add(1)
		}
		w.release(p, p.offset)
	}
}

// release ends a command's time in flight; offset, when not 0, is what
// its confirmation reaches.
func (w *Writer) release(p pending, offset int64) {
	w.mu.Lock()
	if offset > 0 {
		if w.frozen || len(w.redirects) > 0 {
			w.seen = max(w.seen, offset)
		} else if offset > w.applied.Load() {
			w.applied.Store(offset)
			w.advanced()
		}
	}
	w.bytes -= p.size
	w.waiting--
	w.cond.Broadcast()
	w.mu.Unlock()
}

// redirected keeps a command a cluster node sent elsewhere, or asked to
// try later, and reports whether it did. Inside MULTI the queued
// command's redirect is remembered and the whole block is kept when its
// EXEC aborts.
func (w *Writer) redirected(p pending, v resp.Value) bool {
	if p.name == "EXEC" {
		r := w.txRedirect
		w.txRedirect = nil
		if r == nil || !v.Nil() && v.Err() == nil {
			return false // ran (its replies are checked) or failed
		}
		if p.multi != nil {
			r.Ops = append(r.Ops, *p.multi)
		}
		for _, q := range p.queued {
			if q.op != nil {
				r.Ops = append(r.Ops, *q.op)
			}
		}
		r.Ops = append(r.Ops, *p.op)
		if r.Kind == "ASK" {
			// ASKING covers one command, not a block: the block waits
			// for the migration to end.
			r.Kind, r.Addr = "RETRY", ""
		}
		w.hold(*r)
		return true
	}
	kind, addr, ok := redirect(v)
	if !ok || p.op == nil {
		return false
	}
	if p.inTx {
		if w.txRedirect == nil {
			w.txRedirect = &Redirect{Kind: kind, Addr: addr, Reply: string(v.Str)}
		}
		return true
	}
	w.hold(Redirect{Ops: []Op{*p.op}, Kind: kind, Addr: addr, Reply: string(v.Str)})
	return true
}

func (w *Writer) hold(r Redirect) {
	w.mu.Lock()
	w.redirects = append(w.redirects, r)
	w.mu.Unlock()
}

// redirect reads a reply that sends a command elsewhere or asks to try
// later.
func redirect(v resp.Value) (kind, addr string, ok bool) {
	if v.Err() == nil {
		return "", "", false
	}
	f := strings.Fields(string(v.Str))
	switch {
	case len(f) == 3 && (f[0] == "MOVED" || f[0] == "ASK"):
		return f[0], f[2], true
	case len(f) > 0 && (f[0] == "TRYAGAIN" || f[0] == "CLUSTERDOWN" || f[0] == "LOADING"):
		return "RETRY", "", true
	}
	return "", "", false
}

// Redirects returns, and forgets, the commands held for sending again.
// The applied offset stays where it was until Resume.
func (w *Writer) Redirects() []Redirect {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.redirects
	w.redirects = nil
	if len(r) > 0 {
		w.frozen = true
	}
	return r
}

// HasRedirects reports whether commands are held for sending again.
func (w *Writer) HasRedirects() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.redirects) > 0
}

// Resume lets the applied offset go on, once the router confirmed
// elsewhere what Redirects returned.
func (w *Writer) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.redirects) > 0 {
		return
	}
	w.frozen = false
	if w.seen > w.applied.Load() {
		w.applied.Store(w.seen)
		w.advanced()
	}
}

// check reads a reply for its command: an error reply, or an error inside
// an EXEC, fails the writer; errors inside an EXEC that the source
// answered too are counted (tolerated).
func check(p pending, v resp.Value) (tolerated int, _ *Error) {
	if re := v.Err(); re != nil {
		e := &Error{Command: p.name, Key: string(p.key), Reply: string(v.Str), Err: re}
		if p.name == "EXEC" && bytes.HasPrefix(v.Str, []byte("EXECABORT")) && len(p.queued) > 0 {
			e.Command = "EXEC (MULTI of " + names(p.queued) + ")"
		}
		return 0, e
	}
	if p.name == "EXEC" {
		if v.Nil() {
			return 0, &Error{Command: "EXEC", Reply: "the transaction was aborted (null reply)"}
		}
		for i, r := range v.Elems {
			if re := r.Err(); re != nil {
				q := pending{name: "?"}
				if i < len(p.queued) {
					q = p.queued[i]
				}
				if q.lenient {
					tolerated++
					continue
				}
				return 0, &Error{Command: q.name + " (in EXEC)", Key: string(q.key), Reply: string(r.Str), Err: re}
			}
		}
	}
	return tolerated, nil
}

func names(ps []pending) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.name)
	}
	return strings.Join(s, " ")
}
