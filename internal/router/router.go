// Package router writes to a cluster target: one pipelined writer per
// master, each command sent to the master that serves the slot of its
// keys.
//
// A command whose keys fall in several slots is split when the split
// keeps its meaning, and otherwise follows the cross-slot policy:
//
//	command                        into a cluster target
//	MSET k v k v …                 one MSET per slot
//	DEL k k …, UNLINK k k …        one DEL (UNLINK) per slot
//	MULTI … EXEC, one slot         the transaction, to that slot's master
//	MULTI … EXEC, several slots    command by command with SplitTransactions, else the policy
//	FLUSHALL, FLUSHDB              to every master
//	FUNCTION LOAD                  to every master, as FUNCTION LOAD REPLACE
//	FUNCTION DELETE/FLUSH/RESTORE  to every master
//	SCRIPT LOAD, SCRIPT FLUSH      to every master
//	SELECT 0                       not sent (a cluster has db 0 only)
//	SELECT n, SWAPDB, MOVE         an error: a cluster has db 0 only
//	any other multi-key command    the policy: RENAME, RENAMENX, COPY, SMOVE, LMOVE,
//	  across slots                 RPOPLPUSH, MSETNX, PFMERGE, BITOP, the *STORE commands,
//	                               SORT … STORE, GEOSEARCHSTORE, EVAL/EVALSHA/FCALL, …
//	EVAL/EVALSHA/FCALL without     the policy: where it writes is not known
//	  keys, an unknown command
//
// The policy (CrossSlot) is "fail": the command is refused with its name
// and keys, and the task fails; or "skip": it is dropped, logged and
// counted.
//
// A master that answers MOVED or ASK (slots migrating), TRYAGAIN,
// CLUSTERDOWN or LOADING does not fail the task: the router waits until
// every writer is idle, reads the slot map again, and sends the commands
// that came back again in their original order (ASK's with ASKING to the
// node named), so the order of the commands on each key is kept. The
// applied offset does not pass a command until it is confirmed where it
// landed.
//
// With Options.Checkpoint the delivery is exact: a cluster runs a
// transaction within one slot only, so the router holds each command in
// its slot's group until Commit, which sends every group as one
// MULTI … EXEC on its slot's master, with that slot's checkpoint (a key
// with the slot's hash tag) written inside. After a restart, SetDone
// gives the slots' checkpoints back and Source says which source command
// each write belongs to: a slot skips what its checkpoint covers.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/command"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/keyname"
	"github.com/resync/resync/internal/writer"
)

// Cross-slot policies.
const (
	CrossSlotFail = "fail"
	CrossSlotSkip = "skip"
)

// Options configure a router.
type Options struct {
	// Target is any node of the cluster; the others are found.
	Target dialer.Options
	// Window and WindowBytes bound each writer.
	Window, WindowBytes int
	// CrossSlot is the policy for commands that cannot be split
	// (CrossSlotFail by default).
	CrossSlot string
	// SplitTransactions applies a transaction whose keys span slots
	// command by command instead of following the policy.
	SplitTransactions bool
	// RedirectTimeout bounds how long commands may keep coming back
	// (a migration that never ends, a cluster down) before the router
	// fails (default 1 minute).
	RedirectTimeout time.Duration
	Logger          *slog.Logger
	// Seeds are more nodes to read the slot map from when Target is
	// down (a failover).
	Seeds []string
	// Checkpoint, when set, makes the delivery exact (package comment).
	Checkpoint *SlotCheckpoints
	// Keys says how errors and logs show key names.
	Keys keyname.Style
	// MaxOps and MaxBytes bound each master's commands and bytes per
	// second (writer.Options).
	MaxOps, MaxBytes int
	// Advanced gets a token when any master's applied offset moves
	// (writer.Options).
	Advanced chan<- struct{}
}

// SlotCheckpoints describes the per-slot checkpoints of exact delivery.
type SlotCheckpoints struct {
	// Key returns the checkpoint key of a slot: a key in that slot.
	Key func(slot int) []byte
	// Value returns the checkpoint value for a source offset.
	Value func(offset int64) []byte
}

// CrossSlotError is a command the router cannot apply to the cluster as
// it is.
type CrossSlotError struct {
	Command string
	Keys    []string
	Reason  string
	// Style says how Error shows Keys.
	Style keyname.Style
}

func (e *CrossSlotError) Error() string {
	return fmt.Sprintf("%s with keys %s: %s; --cross-slot skip drops such commands (logged and counted)", e.Command, e.Style.List(e.Keys), e.Reason)
}

// Router applies commands to a cluster target. Like a writer, it is used
// from one goroutine, but Applied, Err, Skipped and Tolerated may be read
// from any.
type Router struct {
	o   Options
	log *slog.Logger
	top *cluster.Topology
	// mu guards writers and order against the readers of Applied, Err
	// and Tolerated; the router's own goroutine, the only one to change
	// them, reads them without it.
	mu      sync.RWMutex
	writers map[string]*writer.Writer // by address
	order   []string                  // writers' addresses, in opening order
	seq     int64

	tx        []writer.Op // the open MULTI's commands
	inTx      bool
	keys      []int
	skipped   int64
	skipWarns int
	resent    int64

	// Exact delivery: the commands held per slot until Commit, the slots
	// in the order they were first written, the source offset of the
	// command being written, and the slots' checkpoints from a restart.
	grouping  bool // Group(true): the stream, not a full sync
	groups    map[int][]writer.Op
	slotOrder []int
	src       int64
	done      map[int]int64
	dropped   int64 // commands a slot's checkpoint already covered
}

// Open reads the slot map and opens a writer to every master.
func Open(ctx context.Context, o Options) (*Router, error) {
	if o.CrossSlot == "" {
		o.CrossSlot = CrossSlotFail
	}
	if o.CrossSlot != CrossSlotFail && o.CrossSlot != CrossSlotSkip {
		return nil, fmt.Errorf("cross-slot policy %q: fail or skip", o.CrossSlot)
	}
	if o.RedirectTimeout <= 0 {
		o.RedirectTimeout = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{o: o, log: o.Logger, writers: map[string]*writer.Writer{}, groups: map[int][]writer.Op{}}
	if err := r.refresh(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// refresh reads the slot map (from the seed node, else any writer's) and
// opens writers to masters it does not know yet.
func (r *Router) refresh(ctx context.Context) error {
	seeds := append(append([]string{r.o.Target.Addr}, r.o.Seeds...), r.order...)
	top, err := cluster.LoadFrom(ctx, r.o.Target, seeds, func(top *cluster.Topology) error {
		if n := top.Uncovered(); n > 0 {
			return fmt.Errorf("%d of %d slots are served by no master", n, cluster.Slots)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("target cluster: no node gave a whole slot map: %w", err)
	}
	r.top = top
	for i := range top.Masters {
		if _, err := r.writer(ctx, top.Masters[i].Addr); err != nil {
			return err
		}
	}
	return nil
}

// writer returns the writer to addr, opening it when needed.
func (r *Router) writer(ctx context.Context, addr string) (*writer.Writer, error) {
	if w := r.writers[addr]; w != nil {
		return w, nil
	}
	o := r.o.Target
	o.Addr, o.DB = addr, 0
	w, err := writer.Open(ctx, writer.Options{Target: o, Window: r.o.Window, WindowBytes: r.o.WindowBytes, Cluster: true, Keys: r.o.Keys,
		MaxOps: r.o.MaxOps, MaxBytes: r.o.MaxBytes, Advanced: r.o.Advanced})
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if a := r.Applied(); a > 0 {
		// Nothing was sent here before: it is as far as the others.
		if err := w.Mark(a); err != nil {
			w.Close()
			return nil, err
		}
	}
	r.mu.Lock()
	r.writers[addr] = w
	r.order = append(r.order, addr)
	r.mu.Unlock()
	return w, nil
}

// send writes one single-slot command (or a broadcast's copy) to addr.
func (r *Router) send(addr string, op writer.Op) error {
	w := r.writers[addr]
	if w == nil {
		return fmt.Errorf("target: no writer for %s", addr)
	}
	r.seq++
	op.Seq = r.seq
	return w.Write(op)
}

// owner is the address of the master serving slot.
func (r *Router) owner(slot int) string {
	return r.top.Masters[r.top.Owner(slot)].Addr
}

// Write applies one command.
func (r *Router) Write(op writer.Op) error {
	if err := r.Err(); err != nil {
		return err
	}
	var buf [command.MaxName]byte
	name, _ := command.AppendLower(buf[:0], op.Args[0]) // no allocation per command
	switch {
	case string(name) == "multi":
		r.inTx, r.tx = true, r.tx[:0]
		return nil
	case string(name) == "exec" && r.inTx:
		r.inTx = false
		return r.transaction(op)
	case r.inTx:
		r.tx = append(r.tx, op.Clone())
		return nil
	}
	return r.route(name, op)
}

// route sends a command outside a transaction; name is its name in
// lower case.
func (r *Router) route(name []byte, op writer.Op) error {
	switch string(name) {
	case "select":
		if len(op.Args) == 2 && string(op.Args[1]) == "0" {
			return nil // a cluster's only db
		}
		return fmt.Errorf("%s: a cluster target has db 0 only (map the source's databases to 0 with --map-db)", args(op))
	case "swapdb", "move":
		return fmt.Errorf("%s: a cluster target has db 0 only", args(op))
	case "flushall", "flushdb":
		return r.broadcast(op)
	case "function", "script":
		if len(op.Args) < 2 {
			break
		}
		sub := strings.ToUpper(string(op.Args[1]))
		fn := string(name) == "function"
		switch {
		case fn && sub == "LOAD":
			return r.broadcast(functionReplace(op))
		case fn && (sub == "DELETE" || sub == "FLUSH" || sub == "RESTORE"),
			!fn && (sub == "LOAD" || sub == "FLUSH"):
			return r.broadcast(op)
		}
	}
	r.keys, _ = command.Keys(op.Args, r.keys[:0])
	known := len(r.keys) > 0
	if !known {
		return r.crossSlot(op, "its keys are not known (none declared, or an unknown command)")
	}
	slot := cluster.Slot(op.Args[r.keys[0]])
	same := true
	for _, k := range r.keys[1:] {
		if cluster.Slot(op.Args[k]) != slot {
			same = false
			break
		}
	}
	if same {
		return r.emit(slot, op)
	}
	switch string(name) {
	case "mset":
		return r.split(op, 2)
	case "del", "unlink":
		return r.split(op, 1)
	}
	return r.crossSlot(op, "its keys are in different slots of the target cluster")
}

// split sends a command whose arguments after the name are groups of
// per (a key, then its values) as one command per slot, in the order
// each slot first appears; the last carries the offset.
func (r *Router) split(op writer.Op, per int) error {
	if (len(op.Args)-1)%per != 0 {
		return fmt.Errorf("%s: malformed", args(op))
	}
	type part struct {
		slot int
		args [][]byte
	}
	var parts []*part
	bySlot := map[int]*part{}
	for i := 1; i < len(op.Args); i += per {
		s := cluster.Slot(op.Args[i])
		p := bySlot[s]
		if p == nil {
			p = &part{slot: s, args: [][]byte{op.Args[0]}}
			bySlot[s] = p
			parts = append(parts, p)
		}
		p.args = append(p.args, op.Args[i:i+per]...)
	}
	for i, p := range parts {
		piece := writer.Op{Args: p.args, SourceMayFail: op.SourceMayFail}
		if i == len(parts)-1 {
			piece.Offset = op.Offset
		}
		if err := r.emit(p.slot, piece); err != nil {
			return err
		}
	}
	return nil
}

// broadcast sends a command to every master; the last copy carries the
// offset (the batch's mark covers the others).
func (r *Router) broadcast(op writer.Op) error {
	for i, m := range r.top.Masters {
		c := op
		if i < len(r.top.Masters)-1 {
			c.Offset = 0
		}
		if err := r.send(m.Addr, c); err != nil {
			return err
		}
	}
	return nil
}

// functionReplace makes FUNCTION LOAD idempotent: every source master
// of a cluster carries its own copy of a library.
func functionReplace(op writer.Op) writer.Op {
	if len(op.Args) > 2 && strings.EqualFold(string(op.Args[2]), "REPLACE") {
		return op
	}
	a := append([][]byte{op.Args[0], op.Args[1], []byte("REPLACE")}, op.Args[2:]...)
	op.Args = a
	return op
}

// transaction applies a MULTI … EXEC block: whole to one master when its
// keys share a slot, else by the options.
func (r *Router) transaction(exec writer.Op) error {
	slot, ok := -1, true
	var keys []string
	var body []writer.Op // without SELECT 0, which a cluster needs not
	for _, op := range r.tx {
		name := strings.ToUpper(string(op.Args[0]))
		if name == "SELECT" && len(op.Args) == 2 && string(op.Args[1]) == "0" {
			continue
		}
		body = append(body, op)
		r.keys, _ = command.Keys(op.Args, r.keys[:0])
		if len(r.keys) == 0 {
			ok = false
		}
		for _, k := range r.keys {
			keys = append(keys, string(op.Args[k]))
			s := cluster.Slot(op.Args[k])
			if slot >= 0 && s != slot {
				ok = false
			}
			slot = s
		}
	}
	switch {
	case len(body) == 0:
		return r.markOnly(exec.Offset)
	case ok && r.o.Checkpoint != nil:
		// The slot's group is a transaction already.
		for _, op := range body {
			if err := r.emit(slot, op); err != nil {
				return err
			}
		}
		return nil
	case ok:
		addr := r.owner(slot)
		if err := r.send(addr, writer.Op{Args: [][]byte{[]byte("MULTI")}}); err != nil {
			return err
		}
		for _, op := range body {
			op.Offset = 0
			if err := r.send(addr, op); err != nil {
				return err
			}
		}
		return r.send(addr, exec)
	case r.o.SplitTransactions:
		for i, op := range body {
			if i == len(body)-1 {
				op.Offset = exec.Offset
			}
			var buf [command.MaxName]byte
			name, _ := command.AppendLower(buf[:0], op.Args[0])
			if err := r.route(name, op); err != nil {
				return err
			}
		}
		return nil
	}
	var names []string
	for _, op := range body {
		names = append(names, strings.ToUpper(string(op.Args[0])))
	}
	e := &CrossSlotError{Command: "MULTI " + strings.Join(names, " ") + " EXEC", Keys: keys,
		Reason: "a transaction whose keys span slots of the target cluster (--split-transactions applies it command by command)"}
	return r.policy(e, exec.Offset)
}

func (r *Router) crossSlot(op writer.Op, reason string) error {
	e := &CrossSlotError{Command: strings.ToUpper(string(op.Args[0])), Reason: reason}
	r.keys, _ = command.Keys(op.Args, r.keys[:0])
	for _, k := range r.keys {
		e.Keys = append(e.Keys, string(op.Args[k]))
	}
	return r.policy(e, op.Offset)
}

// policy fails with e, or skips the command: logged (the first few) and
// counted; its offset is reached once what came before is confirmed.
func (r *Router) policy(e *CrossSlotError, offset int64) error {
	e.Style = r.o.Keys
	if r.o.CrossSlot == CrossSlotFail {
		return e
	}
	r.skipped++
	if r.skipWarns < 20 {
		r.skipWarns++
		r.log.Warn("skipped a command the target cluster cannot take as it is (--cross-slot skip)", "command", e.Command, "keys", e.Style.List(e.Keys), "reason", e.Reason)
	}
	return r.markOnly(offset)
}

func (r *Router) markOnly(offset int64) error {
	if offset == 0 || r.grouping {
		return nil // exact: Commit reaches the offset
	}
	return r.Mark(offset)
}

// emit sends a command whose keys are all in slot, or, for exact
// delivery, holds it in the slot's group (unless the slot's checkpoint
// covers it).
func (r *Router) emit(slot int, op writer.Op) error {
	if r.o.Checkpoint == nil || !r.grouping {
		return r.send(r.owner(slot), op)
	}
	if d, ok := r.done[slot]; ok && r.src > 0 && r.src <= d {
		r.dropped++
		return nil
	}
	g, ok := r.groups[slot]
	if !ok {
		r.slotOrder = append(r.slotOrder, slot)
	}
	op.Offset = 0
	r.groups[slot] = append(g, op.Clone())
	return nil
}

// Group turns the slots' groups on (the stream) or off (a full sync,
// whose keys are written as they come: it has a checkpoint of its own).
func (r *Router) Group(on bool) { r.grouping = on }

// Discard drops what the router holds and has not sent: an open
// transaction's commands and the slots' groups (a new PSYNC sends them
// again).
func (r *Router) Discard() {
	r.inTx, r.tx = false, r.tx[:0]
	clear(r.groups)
	r.slotOrder = r.slotOrder[:0]
}

// Source says which source command (by its offset) the commands written
// next belong to, for the slots' checkpoints to skip what they cover.
func (r *Router) Source(offset int64) { r.src = offset }

// SetDone gives the slots' checkpoints read after a restart: a command
// of a slot at or below its checkpoint is not applied again. nil forgets
// them (a new full sync).
func (r *Router) SetDone(done map[int]int64) { r.done = done }

// Covered counts the commands skipped because their slot's checkpoint
// covered them.
func (r *Router) Covered() int64 { return r.dropped }

// Commit sends each slot's group as one transaction on the slot's
// master with the slot's checkpoint of offset inside, and marks offset
// on every master: once confirmed, everything before offset is applied
// exactly once.
func (r *Router) Commit(offset int64) error {
	if err := r.Err(); err != nil {
		return err
	}
	for _, slot := range r.slotOrder {
		addr := r.owner(slot)
		ops := r.groups[slot]
		if err := r.send(addr, writer.Op{Args: [][]byte{[]byte("MULTI")}}); err != nil {
			return err
		}
		for _, op := range ops {
			if err := r.send(addr, op); err != nil {
				return err
			}
		}
		set := writer.Op{Args: [][]byte{[]byte("SET"), r.o.Checkpoint.Key(slot), r.o.Checkpoint.Value(offset)}}
		if err := r.send(addr, set); err != nil {
			return err
		}
		if err := r.send(addr, writer.Op{Args: [][]byte{[]byte("EXEC")}, Offset: offset}); err != nil {
			return err
		}
		delete(r.groups, slot)
	}
	r.slotOrder = r.slotOrder[:0]
	return r.mark(offset)
}

// Direct sends a single-key command at once, outside the slots' groups
// (a checkpoint of what is confirmed already).
func (r *Router) Direct(op writer.Op) error {
	return r.send(r.owner(cluster.Slot(op.Args[1])), op)
}

// Resent counts the commands (or blocks) sent again after MOVED, ASK or
// a retry reply.
func (r *Router) Resent() int64 { return r.resent }

// Skipped counts the commands skipped by the cross-slot policy.
func (r *Router) Skipped() int64 { return r.skipped }

// Mark records that offset is reached once every command before it is
// confirmed, on every master. With exact delivery, commands held in
// slot groups are committed first.
func (r *Router) Mark(offset int64) error {
	if len(r.slotOrder) > 0 {
		return r.Commit(offset)
	}
	return r.mark(offset)
}

func (r *Router) mark(offset int64) error {
	for _, addr := range r.order {
		if err := r.writers[addr].Mark(offset); err != nil {
			return err
		}
	}
	return nil
}

// Flush sends what is buffered, and first sends again what came back.
func (r *Router) Flush() error {
	for _, addr := range r.order {
		if r.writers[addr].HasRedirects() {
			ctx, cancel := context.WithTimeout(context.Background(), r.o.RedirectTimeout)
			err := r.resolve(ctx)
			cancel()
			if err != nil {
				return err
			}
			break
		}
	}
	for _, addr := range r.order {
		if err := r.writers[addr].Flush(); err != nil {
			return err
		}
	}
	return nil
}

// Sync waits until every command sent is confirmed where it landed.
func (r *Router) Sync(ctx context.Context) error {
	for {
		for _, addr := range r.order {
			if err := r.writers[addr].Sync(ctx); err != nil {
				return err
			}
		}
		again := false
		for _, addr := range r.order {
			again = again || r.writers[addr].HasRedirects()
		}
		if !again {
			return nil
		}
		if err := r.resolve(ctx); err != nil {
			return err
		}
	}
}

// resolve sends again, in their original order, the commands the
// masters sent back, until none comes back; every writer is idle while
// it does, so no later command on a key overtakes an earlier one.
func (r *Router) resolve(ctx context.Context) error {
	deadline := time.Now().Add(r.o.RedirectTimeout)
	backoff := 10 * time.Millisecond
	var last string
	for {
		for _, addr := range r.order {
			if err := r.writers[addr].Sync(ctx); err != nil {
				return err
			}
		}
		var all []writer.Redirect
		for _, addr := range r.order {
			all = append(all, r.writers[addr].Redirects()...)
		}
		if len(all) == 0 {
			for _, addr := range r.order {
				r.writers[addr].Resume()
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target cluster: commands kept coming back for %s (last: %s)", r.o.RedirectTimeout, last)
		}
		slices.SortFunc(all, func(a, b writer.Redirect) int { return cmp.Compare(a.Ops[0].Seq, b.Ops[0].Seq) })
		moved, wait := false, false
		for _, rd := range all {
			moved = moved || rd.Kind == "MOVED"
			wait = wait || rd.Kind == "RETRY"
			last = rd.Reply
		}
		r.resent += int64(len(all))
		r.log.Info("target cluster: sending again what came back", "commands", len(all), "last_reply", last)
		if wait {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff = min(2*backoff, time.Second)
		}
		if moved || wait {
			if err := r.refresh(ctx); err != nil {
				return err
			}
		}
		for _, rd := range all {
			if err := r.resend(ctx, rd); err != nil {
				return err
			}
		}
		for _, addr := range r.order {
			if err := r.writers[addr].Flush(); err != nil {
				return err
			}
		}
	}
}

// resend sends a returned command (or block) again: to the node an ASK
// names, after ASKING; else to its slot's master by the current map.
func (r *Router) resend(ctx context.Context, rd writer.Redirect) error {
	if rd.Kind == "ASK" {
		w, err := r.writer(ctx, rd.Addr)
		if err != nil {
			return err
		}
		for _, op := range rd.Ops {
			if err := w.Write(writer.Op{Args: [][]byte{[]byte("ASKING")}, Seq: op.Seq}); err != nil {
				return err
			}
			if err := w.Write(op); err != nil {
				return err
			}
		}
		return nil
	}
	// A block's (or a command's) keys share one slot.
	slot := -1
	for _, op := range rd.Ops {
		r.keys, _ = command.Keys(op.Args, r.keys[:0])
		if len(r.keys) > 0 {
			slot = cluster.Slot(op.Args[r.keys[0]])
			break
		}
	}
	if slot < 0 {
		return fmt.Errorf("target cluster: %s came back (%s) and names no key to route it by", args(rd.Ops[0]), rd.Reply)
	}
	w := r.writers[r.owner(slot)]
	for _, op := range rd.Ops {
		if err := w.Write(op); err != nil {
			return err
		}
	}
	return nil
}

// Applied is the offset every master has confirmed.
func (r *Router) Applied() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := int64(-1)
	for _, addr := range r.order {
		if x := r.writers[addr].Applied(); a < 0 || x < a {
			a = x
		}
	}
	return max(a, 0)
}

// Throttled is how long the masters' writers have waited on their
// throttles, in all.
func (r *Router) Throttled() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var d time.Duration
	for _, addr := range r.order {
		d += r.writers[addr].Throttled()
	}
	return d
}

// Err returns the first writer's failure, if any.
func (r *Router) Err() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, addr := range r.order {
		if err := r.writers[addr].Err(); err != nil {
			return err
		}
	}
	return nil
}

// Tolerated counts the error replies let through on every master.
func (r *Router) Tolerated() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var n int64
	for _, addr := range r.order {
		n += r.writers[addr].Tolerated()
	}
	return n
}

// Close ends every writer.
func (r *Router) Close() error {
	var errs []error
	for _, addr := range r.order {
		errs = append(errs, r.writers[addr].Close())
	}
	return errors.Join(errs...)
}

// args renders a command for an error, shortened.
func args(op writer.Op) string {
	var s []string
	for i, a := range op.Args {
		if i == 4 {
			s = append(s, "…")
			break
		}
		s = append(s, fmt.Sprintf("%.40q", a))
	}
	return strings.Join(s, " ")
}

// Broadcast reports whether the router sends a command to every master
// (FLUSHALL, FLUSHDB, FUNCTION LOAD/DELETE/FLUSH/RESTORE, SCRIPT
// LOAD/FLUSH) rather than to one slot's.
func Broadcast(args [][]byte) bool {
	name := strings.ToUpper(string(args[0]))
	switch name {
	case "FLUSHALL", "FLUSHDB":
		return true
	case "FUNCTION", "SCRIPT":
		if len(args) < 2 {
			return false
		}
		sub := strings.ToUpper(string(args[1]))
		if name == "FUNCTION" {
			return sub == "LOAD" || sub == "DELETE" || sub == "FLUSH" || sub == "RESTORE"
		}
		return sub == "LOAD" || sub == "FLUSH"
	}
	return false
}
