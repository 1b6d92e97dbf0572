// Package task runs one sync task: a minimal precheck, the full sync (the
// source's snapshot written to the target as RESTOREs), then the
// incremental sync (the source's command stream applied in order) until
// it is stopped or fails.
package task

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/fanout"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/keyname"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/spool"
	"github.com/resync/resync/internal/transform"
	"github.com/resync/resync/internal/writer"
)

// ReservedPrefix is where resync keeps its own keys (heartbeats,
// checkpoints): they never travel from a source to a target.
const ReservedPrefix = "resync:"

// Config is one task's settings.
type Config struct {
	Name   string
	Source dialer.Options
	Target dialer.Options
	// ExtraTargets are more targets, written like Target: the source is
	// read once and each target gets its own writers, checkpoints,
	// retries, share of the buffers and lag (Status.Targets).
	ExtraTargets []dialer.Options
	// BufferBytes bounds the commands received and not yet written
	// (default 64 MiB).
	BufferBytes int
	// Window and WindowBytes bound each writer's commands in flight.
	Window      int
	WindowBytes int
	// AnnouncePort is the port the source lists resync's replica link
	// with: one where no Redis answers (resync sync gives its status
	// server's), so a Sentinel never takes resync for a replica to
	// promote. 0 announces none.
	AnnouncePort int
	// HeartbeatInterval is how often the heartbeat key is written to the
	// source (default 1s).
	HeartbeatInterval time.Duration
	// SourceMode is SourcePSYNC (the default) or SourceScan, for a source
	// that refuses PSYNC; EnableNotifications lets scan mode turn the
	// source's keyspace notifications on, and ScanRate bounds its copy's
	// keys per second (0: no bound).
	SourceMode          string
	EnableNotifications bool
	ScanRate            int
	Logger              *slog.Logger

	// Filter selects and maps databases and filters keys and commands;
	// the task fills in its reserved prefix and the source's database
	// count.
	Filter filter.Config
	// OnConflict is ConflictIntercept (default) or ConflictOverwrite.
	OnConflict string
	// Rewrite is RewriteAuto (default) or RewriteAlways.
	Rewrite string
	// Past BigKeyBytes of payload or BigKeyElements elements, a key is
	// written in chunks (defaults DefaultBigKeyBytes, DefaultBigKeyElements;
	// a negative BigKeyElements means no element bound).
	BigKeyBytes    int
	BigKeyElements int
	// DropUnsupported drops what the target cannot hold (hash field TTLs
	// before 7.4, streams before 5.0, module values), counted and logged,
	// instead of failing.
	DropUnsupported bool
	// CrossSlot and SplitTransactions: what a cluster target does with a
	// command whose keys span its slots (router.Options).
	CrossSlot         string
	SplitTransactions bool
	// RetryFor bounds how long a lost source or target connection is
	// retried (default DefaultRetryFor).
	RetryFor time.Duration
	// Delivery is DeliveryExactlyOnce (default) or DeliveryAtLeastOnce.
	Delivery string
	// Reset forgets the task's checkpoints on the target before it
	// starts: a new full sync, under the conflict rule.
	Reset bool
	// SpoolDir is where the stream waits on disk once BufferBytes of it
	// wait in memory ("": memory only); SpoolMax bounds the files
	// (default 1 GiB). When both are full, resync stops reading the
	// source (back-pressure).
	SpoolDir string
	SpoolMax int64
	// Where to look for the source's master after a failover: other
	// addresses of the same replication group (the source's credentials
	// apply), or Sentinels that monitor it as SourceMaster.
	SourceCandidates []string
	SourceSentinels  []string
	SourceMaster     string
	// TargetSentinels monitor a standalone target as TargetMaster: after
	// its failover the task writes to the master they name.
	TargetSentinels []string
	TargetMaster    string
	// SourceSentinelAuth and TargetSentinelAuth say how to log in to
	// each side's Sentinels: user, password and TLS (the addresses come
	// from the lists above). The zero value is plain TCP, no password.
	SourceSentinelAuth, TargetSentinelAuth dialer.Options
	// TargetMaxOps and TargetMaxBytes bound the commands and bytes sent
	// to each target node per second (0: no bound).
	TargetMaxOps, TargetMaxBytes int
	// RedactKeys keeps key names out of the task's logs, errors and
	// status: a key is shown by a short hash of its name instead.
	RedactKeys bool

	// connect opens a replication link: receiver.Connect, or for one of
	// several targets the hub that shares one link among them.
	connect func(context.Context, receiver.Options) (fanout.Link, error)
}

// Conflict rules: what a new task does with a target that holds keys.
const (
	// ConflictIntercept refuses to start a new task when a selected
	// target database holds keys outside the reserved prefix.
	ConflictIntercept = "intercept"
	// ConflictOverwrite replaces keys of the same name and leaves the
	// others alone.
	ConflictOverwrite = "overwrite"
)

// States of a task (DESIGN.md).
const (
	StatePrecheck      = "precheck"
	StateFullSync      = "full_sync"
	StateSynchronizing = "synchronizing"
	StateRetrying      = "retrying"
	StateFailed        = "failed"
	StateStopped       = "stopped"
)

// Task is a running sync.
type Task struct {
	cfg Config
	log *slog.Logger
	// source is how to reach the source's current master (cfg.Source
	// until a failover moves it); guarded by mu.
	source dialer.Options
	// target is how to reach the target's master (cfg.Target until a
	// Sentinel names another); guarded by mu.
	target dialer.Options

	mu        sync.Mutex
	state     string
	lastError string
	errors    []ErrorEvent // the last maxErrors errors, oldest first
	errorsAll int64        // every error noted, for a monotone count
	replID    string
	retries   int64
	healthy   time.Time // when the current session began streaming; zero when not

	received  atomic.Int64
	applied   atomic.Int64
	counts    LoadCounts   // the full sync's
	filtered  atomic.Int64 // stream commands left out by the selection and filters
	partial   atomic.Int64 // stream commands skipped under --on-partial-filter skip
	rdbBytes  atomic.Int64
	rdbRead   atomic.Int64 // snapshot bytes the loader has read (applied or in flight)
	rdbTotal  atomic.Int64
	published atomic.Int64 // PUBLISH not replayed
	commands  atomic.Int64
	bytesOut  atomic.Int64 // argument bytes sent to the target
	byName    map[string]int64

	// counted holds apply's per-command counts of the current batch,
	// merged into byName once per batch; its keys are allocated once per
	// distinct name, not per command.
	counted map[string]*int64

	filter *filter.Filter
	stream *filter.Stream

	sourceVersion redisproc.Version
	targetVersion redisproc.Version
	// targetCluster: the target is a cluster (one writer per master).
	targetCluster bool
	// sourceDBsWithKeys are the source databases holding keys at the
	// precheck (nil when unknown, as for a file).
	sourceDBsWithKeys []int

	// A cluster source runs one child task per master (shards); a child
	// knows its master's slots and the hash tag of its heartbeat key (a
	// slot it owns), and leaves the checks to its parent.
	shards []*Task
	child  bool
	// A task of several targets runs one child task per target (guarded
	// by mu).
	targets    []*Task
	shardSlots [][2]int
	hbTag      string
	lastBeatMs int64 // the last heartbeat seen in the stream: the source's time then
	// beatMissed is when a heartbeat last could not be written (Unix
	// ms): past it, the next one in the stream may come much later.
	beatMissed atomic.Int64

	// Heartbeats seen in the stream and not yet applied, oldest first,
	// and the lag the last applied one measured (-1: unknown).
	beats []beat
	lagMs atomic.Int64

	// The apply loop's view of the target connection and checkpoints,
	// and the source database at the offsets not yet checkpointed.
	tx        txn
	dbs       []dbChange
	baseDB    int
	streaming bool // the session reached the stream: applied is a stream offset
	// loading: a full sync began writing the target and has not ended;
	// the next one empties it first (under the conflict rule).
	loading bool
	// lastOffset is the offset of the last command applied.
	lastOffset int64
	lock       *taskLock
	window     *retryWindow // the retries of lost connections, source or target

	// out is the sink in use, for the status (its throttle's waits).
	out atomic.Pointer[sinkRef]
	// advanced gets a token when the sink's applied offset moves: the
	// stream measures the lag then, not at its next poll.
	advanced chan struct{}
	// queue holds the stream between the receiver and the writers while
	// a session streams (nil otherwise).
	queue *spool.Queue
	// targetSeeds are the target cluster's masters when the task began:
	// where to read the slot map when the seed node is down.
	targetSeeds []string
	// clusterSeeds are the source cluster's nodes when the task began:
	// where a shard asks for its master after a failover.
	clusterSeeds []string
	// pending is a link that answered +FULLRESYNC to a reconnection:
	// the next session runs its full sync. Guarded by mu.
	pending fanout.Link
}

// connect opens a replication link to the source.
func (t *Task) connect(ctx context.Context, o receiver.Options) (fanout.Link, error) {
	if t.cfg.connect != nil {
		return t.cfg.connect(ctx, o)
	}
	l, err := receiver.Connect(ctx, o)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return l, nil
}

// linkTimeout bounds a wait on the source's link: --io-timeout when
// given (the source pings every 10 s by default), else the receiver's.
func (t *Task) linkTimeout() time.Duration {
	return max(t.cfg.Source.IOTimeout, 0)
}

// beat is a heartbeat write seen in the stream: its offset, and the time
// it holds (resync's own clock, when it was written).
type beat struct {
	offset int64
	sentMs int64
}

// New returns a task, not yet running.
func New(cfg Config) *Task {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.OnConflict == "" {
		cfg.OnConflict = ConflictIntercept
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.Delivery == "" {
		cfg.Delivery = DeliveryExactlyOnce
	}
	if cfg.Rewrite == "" {
		cfg.Rewrite = RewriteAuto
	}
	if cfg.SourceMode == "" {
		cfg.SourceMode = SourcePSYNC
	}
	if cfg.BigKeyBytes <= 0 {
		cfg.BigKeyBytes = DefaultBigKeyBytes
	}
	switch {
	case cfg.BigKeyElements == 0:
		cfg.BigKeyElements = DefaultBigKeyElements
	case cfg.BigKeyElements < 0:
		cfg.BigKeyElements = 0
	}
	cfg.Filter.ReservedPrefix = ReservedPrefix
	cfg.Filter.Keys = keyname.Style{Redact: cfg.RedactKeys}
	t := &Task{cfg: cfg, source: cfg.Source, target: cfg.Target, log: cfg.Logger.With("task", cfg.Name), state: StatePrecheck, byName: map[string]int64{},
		advanced: make(chan struct{}, 1)}
	t.rdbTotal.Store(-1)
	t.lagMs.Store(-1)
	return t
}

// keys says how messages show key names (--redact-keys).
func (t *Task) keys() keyname.Style { return keyname.Style{Redact: t.cfg.RedactKeys} }

// Status is a snapshot of the task's progress.
type Status struct {
	Name        string
	State       string
	Mode        string // Config.SourceMode
	LastError   string
	ReplID      string
	Received    int64
	Applied     int64
	KeysWritten int64
	// What the full sync left out or wrote as commands (LoadCounts).
	KeysFiltered, KeysEmpty, KeysRewritten, BigKeys, Dropped int64
	// Stream commands left out by the filters, and skipped as only
	// partly filterable (--on-partial-filter skip).
	CommandsFiltered, PartialSkipped int64
	RDBBytes                         int64
	RDBBytesTotal                    int64 // -1 when unknown (diskless)
	// RDBBytesApplied is how much of the snapshot the loader has read
	// and written (behind RDBBytes when the target is slower).
	RDBBytesApplied int64
	PublishSkipped  int64
	Commands        int64
	LagMs           int64 // -1 while unknown
	SourceAddr      string
	TargetAddr      string
	BytesWritten    int64
	// CommandsByName counts the stream's commands applied, by name.
	CommandsByName map[string]int64
	// Retries counts the reconnections after a lost connection.
	Retries int64
	// The stream waiting between the source and the target: in memory,
	// in the spool files, and whether the queue is full (resync has
	// stopped reading the source).
	SpoolMemBytes, SpoolDiskBytes int64
	BackPressure                  bool
	// TargetMaxOps and TargetMaxBytes are the throttles per target node
	// (0: none), and ThrottledMs how long the current target connection
	// has waited on them.
	TargetMaxOps, TargetMaxBytes int
	ThrottledMs                  int64
	// Errors are the task's last errors (failures and retried
	// connection losses), oldest first.
	Errors []ErrorEvent
	// ErrorsTotal counts every error the task met (Errors keeps only
	// the last few): a counter for metrics.
	ErrorsTotal int64
	// Shards are a cluster source's masters, one status each; the
	// fields above then sum them (the lag is the worst).
	Shards []Status
	// Targets are the targets of a task of several, one status each;
	// the fields above are then the slowest target's view of the source
	// (offsets, full sync, shards), the worst state and lag, and the sums
	// of what was written.
	Targets []Status
}

// ErrorEvent is one error the task met, and when.
type ErrorEvent struct {
	Time time.Time
	Text string
}

// maxErrors bounds Status.Errors.
const maxErrors = 20

// noteError records err as the last error; t.mu is held.
func (t *Task) noteError(err error) {
	t.lastError = err.Error()
	t.errors = append(t.errors, ErrorEvent{Time: time.Now(), Text: t.lastError})
	t.errorsAll++
	if len(t.errors) > maxErrors {
		t.errors = slices.Delete(t.errors, 0, len(t.errors)-maxErrors)
	}
}

// Status reports where the task stands.
func (t *Task) Status() Status {
	st := t.ownStatus()
	t.mu.Lock()
	shards, targets := t.shards, t.targets
	t.mu.Unlock()
	if len(targets) > 0 {
		aggregateTargets(&st, statuses(targets))
		return st
	}
	if len(shards) > 0 {
		aggregate(&st, statuses(shards))
	}
	return st
}

// statuses are the child tasks' statuses.
func statuses(children []*Task) []Status {
	var out []Status
	for _, c := range children {
		out = append(out, c.Status())
	}
	return out
}

func (t *Task) ownStatus() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := Status{Name: t.cfg.Name, State: t.state, Mode: t.cfg.SourceMode, LastError: t.lastError, ReplID: t.replID,
		Received: t.received.Load(), Applied: t.applied.Load(), KeysWritten: t.counts.Keys.Load(),
		KeysFiltered: t.counts.Filtered.Load(), KeysEmpty: t.counts.Empty.Load(), KeysRewritten: t.counts.Rewritten.Load(),
		BigKeys: t.counts.Big.Load(), Dropped: t.counts.Dropped.Load(),
		CommandsFiltered: t.filtered.Load(), PartialSkipped: t.partial.Load(),
		RDBBytes: t.rdbBytes.Load(), RDBBytesTotal: t.rdbTotal.Load(), RDBBytesApplied: t.rdbRead.Load(), Errors: slices.Clone(t.errors), ErrorsTotal: t.errorsAll,
		PublishSkipped: t.published.Load(), Commands: t.commands.Load(), LagMs: t.lagMs.Load(),
		SourceAddr: t.source.Addr, TargetAddr: t.target.Addr, BytesWritten: t.bytesOut.Load() + t.counts.Bytes.Load(),
		CommandsByName: maps.Clone(t.byName), Retries: t.retries}
	st.TargetMaxOps, st.TargetMaxBytes = t.cfg.TargetMaxOps, t.cfg.TargetMaxBytes
	if r := t.out.Load(); r != nil {
		st.ThrottledMs = r.s.Throttled().Milliseconds()
	}
	if t.queue != nil {
		qs := t.queue.Stats()
		st.SpoolMemBytes, st.SpoolDiskBytes, st.BackPressure = qs.MemBytes, qs.DiskBytes, qs.Blocked
	}
	return st
}

func (t *Task) setState(s string) {
	t.mu.Lock()
	old := t.state
	t.state = s
	t.mu.Unlock()
	if old != s {
		t.log.Info("state", "from", old, "to", s)
	}
}

func (t *Task) failed(err error) error {
	t.mu.Lock()
	t.noteError(err)
	if t.pending != nil {
		// A shared link's snapshot would wait for its reader.
		t.pending.Close()
		t.pending = nil
	}
	t.mu.Unlock()
	t.setState(StateFailed)
	t.log.Error("task failed", "err", err)
	return err
}

// Run runs the task until ctx is canceled (it then stops cleanly: the
// commands in flight are confirmed, state stopped, nil returned) or it
// fails.
func (t *Task) Run(ctx context.Context) error {
	if len(t.cfg.ExtraTargets) > 0 {
		return t.runTargets(ctx)
	}
	if !t.child {
		top, err := t.sourceCluster(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.setState(StateStopped)
				return nil
			}
			return t.failed(err)
		}
		if top != nil {
			return t.runShards(ctx, top)
		}
	}
	target, err := t.precheck(ctx)
	if err != nil {
		if t.lock != nil {
			t.lock.release(t.log)
		}
		if ctx.Err() != nil {
			// Stopped before it began (SIGTERM during the checks): a
			// clean stop, not a failure.
			t.setState(StateStopped)
			return nil
		}
		return t.failed(err)
	}
	ctx, release := t.holdLock(ctx)
	defer release()
	t.targetVersion = target
	// The heartbeat runs from before the snapshot: written during the
	// full sync, it dates the commands the source buffers meanwhile.
	hbCtx, stopBeat := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t.heartbeat(hbCtx)
	}()
	defer func() {
		stopBeat()
		<-hbDone
	}()
	var w sink
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	t.window = &retryWindow{limit: t.cfg.RetryFor}
	for {
		err := t.session(ctx, &w, target)
		if cause := context.Cause(ctx); errors.Is(cause, ErrLocked) {
			return t.failed(cause)
		}
		if ctx.Err() != nil {
			return t.stop(w)
		}
		if !retryable(err) {
			return t.failed(err)
		}
		if err := t.retryAfter(ctx, t.healthySince(), err, "connection lost; retrying"); err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, ErrLocked) {
				return t.failed(cause)
			}
			if ctx.Err() != nil {
				return t.stop(w)
			}
			return t.failed(err)
		}
	}
}

// stop ends the task on request: what is in flight is confirmed (or the
// target is gone), and the applied offset says how far the target is.
func (t *Task) stop(w sink) error {
	t.setState(StateStopped)
	t.mu.Lock()
	if t.pending != nil {
		t.pending.Close()
		t.pending = nil
	}
	t.mu.Unlock()
	if w == nil {
		return nil
	}
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.Sync(drain)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.log.Warn("draining the target", "err", err)
	}
	t.applied.Store(max(t.applied.Load(), w.Applied()))
	if err == nil && t.streaming {
		// What was confirmed, checkpointed: a restart resumes exactly
		// here. (A transaction left open is dropped with the
		// connection; its commands come again.)
		a := t.applied.Load()
		p := checkpoint.Point{ReplID: t.currentReplID(), Offset: a, DB: t.dbAt(a), State: checkpoint.Streaming}
		if err := t.saveCheckpoint(drain, p); err != nil {
			t.log.Warn("stopping", "err", err)
		}
	}
	t.log.Info("stopped", "applied", t.applied.Load())
	return nil
}

// session connects to the source — PSYNC from the applied offset when the
// task has applied some — and runs the full sync when the source asks for
// one, then the stream, until a side fails or ctx ends. *w is the sink
// kept between sessions while it is sound: before a new PSYNC it is
// drained, so the applied offset is exact and nothing is written twice.
func (t *Task) session(ctx context.Context, w *sink, target redisproc.Version) error {
	if t.cfg.SourceMode == SourceScan {
		return t.scanSession(ctx, w, target)
	}
	t.mu.Lock()
	t.healthy = time.Time{} // until this session streams
	t.mu.Unlock()
	if *w != nil {
		err := t.discard(*w)
		if err == nil && !t.targetCluster {
			// Is it still there? A target that restarted meanwhile must
			// be read again (its checkpoint) before the PSYNC.
			err = (*w).Write(writer.Op{Args: [][]byte{[]byte("PING")}})
		}
		if err == nil {
			err = (*w).Sync(ctx)
		}
		if err != nil || (*w).Err() != nil {
			// The target side failed: what was in flight may have
			// landed or not; its checkpoint will say.
			(*w).Close()
			*w = nil
		} else if t.streaming {
			a := max(t.applied.Load(), (*w).Applied())
			t.applied.Store(a)
			t.stream.SetDB(t.dbAt(a))
		}
	}
	scratch := false
	if *w == nil {
		if err := t.locateTarget(ctx); err != nil {
			return err
		}
		nw, err := t.openTarget(ctx)
		if err != nil {
			return err
		}
		*w = nw
		t.newSink()
		if scratch, err = t.resume(ctx, nw); err != nil {
			return err
		}
	}
	t.streaming = false
	replID := t.currentReplID()
	if err := t.locateSource(ctx); err != nil {
		return err
	}
	o := receiver.Options{Source: t.sourceOpts(), AnnouncePort: t.cfg.AnnouncePort, Logger: t.log, ReadTimeout: t.linkTimeout()}
	if replID != "" {
		o.ReplID, o.Offset = replID, t.applied.Load()
	} else {
		t.setState(StateFullSync)
	}
	t.mu.Lock()
	link := t.pending // a full resync a lost link's PSYNC got
	t.pending = nil
	t.mu.Unlock()
	if link == nil {
		var err error
		if link, err = t.connect(ctx, o); err != nil {
			return err
		}
	}
	defer link.Close()
	var rd *reading
	defer func() {
		if rd != nil {
			t.closeReading(rd)
		}
	}()
	if link.Full() {
		if replID != "" || scratch || t.loading {
			if err := t.resyncFromScratch(ctx, *w); err != nil {
				return err
			}
		}
		// Until it ends, the target holds part of a snapshot: the next
		// session must not continue the old stream on it (a shared link
		// may serve a point the source refused this task), and a new
		// full sync empties it first.
		t.mu.Lock()
		t.replID = ""
		t.mu.Unlock()
		t.loading = true
		t.setState(StateFullSync)
		// The stream begins when the source took its snapshot, about
		// now: a floor for dating the commands it buffers before the
		// first heartbeat arrives.
		t.lastBeatMs = time.Now().UnixMilli()
		t.rdbTotal.Store(link.RDBSize())
		t.rdbBytes.Store(0)
		t.rdbRead.Store(0)
		var err error
		if rd, err = t.fullSyncSpooled(ctx, link, *w, target); err != nil {
			return err
		}
		t.loading = false
		// A new stream: SELECT starts over; the loader left the
		// connection in some database.
		t.stream = t.filter.NewStream()
		t.dbs, t.baseDB, t.tx.connDB = nil, 0, -1
	} else {
		t.log.Info("partial resync", "replid", link.ReplID(), "offset", link.StartOffset())
	}
	// PSYNC2 may name a new replid with +CONTINUE: the offsets go on.
	t.mu.Lock()
	t.replID = link.ReplID()
	t.mu.Unlock()
	t.applied.Store(link.StartOffset())
	if rd == nil { // else the stream is being read already
		t.received.Store(link.StartOffset())
	}
	t.lastOffset = link.StartOffset()
	if t.stream == nil {
		t.stream = t.filter.NewStream()
	}
	if r, ok := sinkRouter(*w); ok {
		r.Group(t.exact())
	}
	t.streaming = true
	t.setState(StateSynchronizing)
	t.mu.Lock()
	t.healthy = time.Now()
	t.mu.Unlock()
	if rd == nil {
		var err error
		if rd, err = t.readStream(ctx, link); err != nil {
			return err
		}
	}
	return t.incremental(ctx, link, w, rd)
}

// fullSyncSpooled runs the full sync. With a spool directory the
// snapshot goes to a file as fast as the source sends it and the loader
// reads it from there, and the stream that follows is read into the
// queue as soon as the snapshot has arrived: a slow target does not make
// the source buffer the stream for resync (and drop it past its replica
// output buffer limit). It returns that reading, or nil.
func (t *Task) fullSyncSpooled(ctx context.Context, link fanout.Link, w sink, target redisproc.Version) (*reading, error) {
	if fanout.Shared(link) {
		// The hub spools the snapshot for every target: this one reads it
		// at its own pace, and its stream into its queue meanwhile.
		snapshot := fanout.TakeRDB(link)
		defer snapshot.Close()
		stop := context.AfterFunc(ctx, func() { snapshot.Close() })
		defer stop()
		// The stream starts at the snapshot: a link lost before its first
		// batch continues from there.
		t.received.Store(link.StartOffset())
		rd, err := t.readStream(ctx, link)
		if err != nil {
			return nil, err
		}
		if err := t.fullSync(ctx, link, countingReader{snapshot, &t.rdbBytes}, w, target); err != nil {
			t.closeReading(rd)
			return nil, err
		}
		return rd, nil
	}
	if t.cfg.SpoolDir == "" {
		return nil, t.fullSync(ctx, link, countingReader{link.RDB(), &t.rdbBytes}, w, target)
	}
	snap, err := spool.NewSnapshot(t.cfg.SpoolDir, t.cfg.SpoolMax)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	type result struct {
		rd  *reading
		err error
	}
	parent := ctx // the reading outlives this call
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A copy waiting on the source ends with ctx. unblock runs before
	// cancel: a successful return keeps the link.
	unblock := context.AfterFunc(ctx, func() { link.Close() })
	defer unblock()
	started := make(chan result, 1)
	go func() {
		_, err := io.Copy(snap, countingReader{link.RDB(), &t.rdbBytes})
		snap.Finish(err)
		if err != nil {
			started <- result{nil, fmt.Errorf("snapshot: %w", err)}
			return
		}
		t.log.Info("snapshot received; reading the stream meanwhile", "rdb_bytes", t.rdbBytes.Load(), "waiting_bytes", snap.Waiting())
		t.received.Store(link.StartOffset())
		rd, err := t.readStream(parent, link)
		started <- result{rd, err}
	}()
	err = t.fullSync(ctx, link, snap.Reader(ctx), w, target)
	if err != nil {
		cancel()
	}
	res := <-started
	if err == nil {
		err = res.err
	}
	if err != nil {
		if res.rd != nil {
			t.closeReading(res.rd)
		}
		return nil, err
	}
	return res.rd, nil
}

// precheck: both sides reachable and authenticated; the selection valid
// for the source's databases; and, for a new task in intercept mode, no
// key outside the reserved prefix in the target databases it writes.
func (t *Task) precheck(ctx context.Context) (redisproc.Version, error) {
	t.setState(StatePrecheck)
	if err := t.locateSource(ctx); err != nil {
		return redisproc.Version{}, err
	}
	src, err := dialer.Dial(ctx, t.sourceOpts())
	if err != nil {
		return redisproc.Version{}, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	sinfo, err := src.Do("INFO", "server")
	if err != nil {
		return redisproc.Version{}, fmt.Errorf("source: %w", err)
	}
	if t.sourceVersion, err = redisproc.ParseVersion(redisproc.InfoField(sinfo.Text(), "redis_version")); err != nil {
		return redisproc.Version{}, fmt.Errorf("source: %w", err)
	}
	if t.sourceDBsWithKeys, err = keyspaceDBs(src); err != nil {
		return redisproc.Version{}, fmt.Errorf("source: %w", err)
	}
	if t.child {
		// The parent checked the target once for every shard: a shard
		// must not find another's first keys a conflict.
		return t.targetInfo(ctx)
	}
	return t.checkTarget(ctx, databases(src), true)
}

// targetInfo reads what a shard needs of the target: its version and
// whether it is a cluster; and builds the filter.
func (t *Task) targetInfo(ctx context.Context) (redisproc.Version, error) {
	dst, v, err := t.readTarget(ctx)
	if err != nil {
		return v, err
	}
	defer dst.Close()
	fc := t.cfg.Filter
	fc.Databases = 1
	t.filter, err = filter.New(fc)
	return v, err
}

// readTarget dials the target and reads its version and whether it is a
// cluster; the caller closes the connection.
func (t *Task) readTarget(ctx context.Context) (*dialer.Conn, redisproc.Version, error) {
	if err := t.locateTarget(ctx); err != nil {
		return nil, redisproc.Version{}, err
	}
	dst, err := dialer.Dial(ctx, t.targetOpts())
	if err != nil {
		return nil, redisproc.Version{}, fmt.Errorf("target: %w", err)
	}
	fail := func(err error) (*dialer.Conn, redisproc.Version, error) {
		dst.Close()
		return nil, redisproc.Version{}, fmt.Errorf("target: %w", err)
	}
	info, err := dst.Do("INFO", "server")
	if err != nil {
		return fail(err)
	}
	v, err := redisproc.ParseVersion(redisproc.InfoField(info.Text(), "redis_version"))
	if err != nil {
		return fail(err)
	}
	if t.targetCluster, err = cluster.Enabled(dst); err != nil {
		return fail(err)
	}
	if t.targetCluster {
		top, err := cluster.Load(dst)
		if err != nil {
			return fail(err)
		}
		t.targetSeeds = nil
		for _, m := range top.Masters {
			t.targetSeeds = append(t.targetSeeds, m.Addr)
		}
	}
	return dst, v, nil
}

// keyspaceDBs lists the databases INFO keyspace says hold keys.
func keyspaceDBs(c *dialer.Conn) ([]int, error) {
	v, err := c.Do("INFO", "keyspace")
	if err != nil {
		return nil, err
	}
	return redisproc.KeyspaceDBs(v.Text()), nil
}

// sink is where the task's commands go: one writer, or a router over a
// cluster's masters.
type sink interface {
	Write(writer.Op) error
	Mark(offset int64) error
	Flush() error
	Sync(ctx context.Context) error
	Applied() int64
	Err() error
	Close() error
	// Throttled is how long the sink has waited on its throttles.
	Throttled() time.Duration
}

// sinkRef holds a sink for an atomic pointer.
type sinkRef struct{ s sink }

// openTarget opens the writer, or for a cluster the router.
func (t *Task) openTarget(ctx context.Context) (sink, error) {
	s, err := t.openSink(ctx)
	if err == nil {
		t.out.Store(&sinkRef{s})
	}
	return s, err
}

func (t *Task) openSink(ctx context.Context) (sink, error) {
	// Never a typed nil in the interface: callers test it against nil.
	if t.targetCluster {
		o := router.Options{Target: t.targetOpts(), Window: t.cfg.Window, WindowBytes: t.cfg.WindowBytes, Keys: t.keys(),
			MaxOps: t.cfg.TargetMaxOps, MaxBytes: t.cfg.TargetMaxBytes, Advanced: t.advanced,
			CrossSlot: t.cfg.CrossSlot, SplitTransactions: t.cfg.SplitTransactions, Logger: t.log, Seeds: t.targetSeeds}
		if t.exact() {
			o.Checkpoint = &router.SlotCheckpoints{Key: t.slotKey, Value: t.slotValue}
		}
		r, err := router.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	w, err := writer.Open(ctx, writer.Options{Target: t.targetOpts(), Window: t.cfg.Window, WindowBytes: t.cfg.WindowBytes, Keys: t.keys(),
		MaxOps: t.cfg.TargetMaxOps, MaxBytes: t.cfg.TargetMaxBytes, Advanced: t.advanced})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// checkTarget reads the target's version, builds the filter for a source
// of the given number of databases (0: as many as the target has) and
// applies the conflict rule to the target databases the task writes. A
// sync (rather than a file's restore) takes the task's lock first, and a
// target holding the task's checkpoints is the task's own: no conflict.
func (t *Task) checkTarget(ctx context.Context, sourceDBs int, sync bool) (redisproc.Version, error) {
	dst, v, err := t.readTarget(ctx)
	if err != nil {
		return v, err
	}
	defer dst.Close()
	fc := t.cfg.Filter
	if fc.Databases = sourceDBs; sourceDBs == 0 {
		fc.Databases = databases(dst)
	}
	if t.filter, err = filter.New(fc); err != nil {
		return v, err
	}
	if sync && t.lock == nil {
		if t.lock, err = t.acquireLock(ctx); err != nil {
			return v, err
		}
	}
	if !t.targetCluster {
		if ours, err := t.hasState(sync, []*dialer.Conn{dst}, t.cfg.Reset); err != nil || ours {
			return v, err // a task to resume: the keys are its own
		}
		return v, conflicts([]*dialer.Conn{dst}, t.filter.TargetDBs(fc.Databases), t.cfg.OnConflict, t.log)
	}
	// A cluster has db 0 only: every source database with keys must
	// go there.
	var other []string
	for _, db := range t.sourceDBsWithKeys {
		if to, ok := t.filter.DB(db); ok && to != 0 {
			other = append(other, strconv.Itoa(db))
		}
	}
	if len(other) > 0 {
		return v, fmt.Errorf("the target is a cluster, which has db 0 only, and source databases %s hold keys: select db 0 alone with --dbs 0, or map them into it with --map-db N:0 (with --allow-db-merge for several)", strings.Join(other, ", "))
	}
	top, err := cluster.Load(dst)
	if err != nil {
		return v, fmt.Errorf("target: %w", err)
	}
	var masters []*dialer.Conn
	defer func() {
		for _, c := range masters {
			c.Close()
		}
	}()
	for i := range top.Masters {
		c, err := dialer.Dial(ctx, top.Options(t.targetOpts(), i))
		if err != nil {
			return v, fmt.Errorf("target master: %w", err)
		}
		masters = append(masters, c)
	}
	if ours, err := t.hasState(sync, masters, t.cfg.Reset); err != nil || ours {
		return v, err
	}
	return v, conflicts(masters, []int{0}, t.cfg.OnConflict, t.log)
}

// databases is how many databases a server has (CONFIG GET databases; 16,
// Redis's default, where CONFIG is not allowed).
func databases(c *dialer.Conn) int {
	v, err := c.Do("CONFIG", "GET", "databases")
	if err == nil && len(v.Elems) == 2 {
		if n, err := strconv.Atoi(v.Elems[1].Text()); err == nil && n > 0 {
			return n
		}
	}
	return filter.DefaultDatabases
}

// conflicts applies the conflict rule to the target databases a task
// writes: in intercept mode any key outside the reserved prefix refuses
// the task, with the count per database; in overwrite mode a warning.
func conflicts(nodes []*dialer.Conn, dbs []int, mode string, log *slog.Logger) error {
	if mode == ConflictOverwrite {
		log.Warn("on-conflict overwrite: target keys named like the source's are replaced; other target keys are left alone")
		return nil
	}
	var busy []string
	for _, dst := range nodes {
		ks, err := dst.Do("INFO", "keyspace")
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		for line := range strings.Lines(ks.Text()) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "db")
			if !ok {
				continue
			}
			name, counts, _ := strings.Cut(rest, ":")
			db, err := strconv.Atoi(name)
			if err != nil || !slices.Contains(dbs, db) {
				continue
			}
			n, err := foreignKeys(dst, db)
			if err != nil {
				return fmt.Errorf("target: %w", err)
			}
			if n > 0 {
				keys, _, _ := strings.Cut(strings.TrimPrefix(counts, "keys="), ",")
				// Not counting resync's own (another task's checkpoint).
				if own, err := dst.ScanMatch(checkpoint.PrefixPattern(ReservedPrefix)); err == nil {
					if k, err := strconv.Atoi(keys); err == nil {
						keys = strconv.Itoa(k - len(own))
					}
				}
				where := ""
				if len(nodes) > 1 {
					where = " on " + dst.Addr()
				}
				busy = append(busy, fmt.Sprintf("db%d%s holds %s keys", db, where, keys))
			}
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("the target is not empty: %s (on-conflict intercept); empty those databases, choose another target, or use --on-conflict overwrite to replace keys of the same name and keep the others", strings.Join(busy, ", "))
	}
	return nil
}

// foreignKeys counts, up to one, the keys of db outside the reserved prefix.
func foreignKeys(c *dialer.Conn, db int) (int, error) {
	if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
		return 0, err
	}
	cursor := "0"
	for {
		v, err := c.Do("SCAN", cursor, "COUNT", "1000")
		if err != nil {
			return 0, err
		}
		if len(v.Elems) != 2 {
			return 0, fmt.Errorf("redis %s: SCAN: unexpected reply", c.Addr())
		}
		for _, k := range v.Elems[1].Elems {
			if !strings.HasPrefix(k.Text(), ReservedPrefix) {
				return 1, nil
			}
		}
		if cursor = v.Elems[0].Text(); cursor == "0" {
			return 0, nil
		}
	}
}

// countingReader counts the snapshot's bytes for the status.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// fullSync writes every selected key of the snapshot, then the functions
// and scripts it holds, and waits until the target confirmed all of it.
func (t *Task) fullSync(ctx context.Context, link fanout.Link, snapshot io.Reader, w sink, target redisproc.Version) error {
	t.log.Info("full sync", "replid", link.ReplID(), "offset", link.StartOffset(), "rdb_bytes", link.RDBSize())
	// Until it ends, the target holds part of a snapshot: a restart
	// must start it over, not take the keys for someone else's.
	begun := checkpoint.Point{ReplID: link.ReplID(), Offset: link.StartOffset(), State: checkpoint.FullSync}
	if err := t.saveCheckpoint(ctx, begun); err != nil {
		return err
	}
	if r, ok := sinkRouter(w); ok {
		r.Group(false)
		r.SetDone(nil)
		if err := t.dropSlotCheckpoints(ctx); err != nil {
			return err
		}
	}
	d, err := rdb.NewDecoder(countingReader{snapshot, &t.rdbRead})
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := t.loader(w, target).load(ctx, d); err != nil {
		return err
	}
	if err := w.Sync(ctx); err != nil {
		return err
	}
	done := checkpoint.Point{ReplID: link.ReplID(), Offset: link.StartOffset(), State: checkpoint.Streaming}
	if err := t.saveCheckpoint(ctx, done); err != nil {
		return err
	}
	c := &t.counts
	t.log.Info("full sync done", "keys", c.Keys.Load(), "filtered", c.Filtered.Load(), "empty_skipped", c.Empty.Load(),
		"rewritten", c.Rewritten.Load(), "big", c.Big.Load(), "dropped", c.Dropped.Load(), "rdb_bytes", t.rdbBytes.Load())
	return nil
}

func (t *Task) loader(w sink, target redisproc.Version) *loader {
	return &loader{w: w, filter: t.filter, target: target, always: t.cfg.Rewrite == RewriteAlways,
		bigBytes: t.cfg.BigKeyBytes, bigElems: t.cfg.BigKeyElements, drop: t.cfg.DropUnsupported,
		keys: t.keys(), log: t.log, counts: &t.counts}
}

// dumpPayload appends what DUMP would return for raw: the value, the RDB
// version (2 bytes) and the CRC-64 of both (8 bytes), little-endian.
func dumpPayload(dst, raw []byte, version int) []byte {
	dst = append(dst, raw...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(version))
	return binary.LittleEndian.AppendUint64(dst, rdb.CRC64(0, dst))
}

// restoreOps restore one key: RESTORE with REPLACE, the expiry absolute
// (ABSTTL) and the LRU/LFU hints on 5.0+. On older targets a relative TTL
// could not be exact, so the key is restored without one and PEXPIREAT
// follows; before 3.0 RESTORE has no REPLACE, so DEL goes first.
func restoreOps(rec *rdb.Record, payload []byte, target redisproc.Version) []writer.Op {
	args := [][]byte{[]byte("RESTORE"), rec.Key, []byte("0"), payload}
	var ops []writer.Op
	switch {
	case target.AtLeast(5, 0):
		args = append(args, []byte("REPLACE"))
		if rec.ExpireMs != 0 {
			args[2] = []byte(strconv.FormatInt(rec.ExpireMs, 10))
			args = append(args, []byte("ABSTTL"))
		}
		if rec.Idle >= 0 {
			args = append(args, []byte("IDLETIME"), []byte(strconv.FormatInt(rec.Idle, 10)))
		}
		if rec.Freq >= 0 {
			args = append(args, []byte("FREQ"), []byte(strconv.Itoa(rec.Freq)))
		}
		return []writer.Op{{Args: args, Key: rec.Key}}
	case target.AtLeast(3, 0):
		args = append(args, []byte("REPLACE"))
	default:
		ops = append(ops, writer.Op{Args: [][]byte{[]byte("DEL"), rec.Key}})
	}
	ops = append(ops, writer.Op{Args: args, Key: rec.Key})
	if rec.ExpireMs != 0 {
		ops = append(ops, writer.Op{Args: [][]byte{[]byte("PEXPIREAT"), rec.Key, []byte(strconv.FormatInt(rec.ExpireMs, 10))}})
	}
	return ops
}

func (t *Task) publishApplied(link fanout.Link, w sink) error {
	a := w.Applied()
	if a > t.applied.Load() {
		t.applied.Store(a)
		link.SetApplied(a)
	}
	if err := t.watermark(w, a); err != nil {
		return err
	}
	t.beatsApplied(a)
	return nil
}

// beatsApplied takes the heartbeats the target has confirmed, up to
// offset a: a heartbeat is applied once the target confirmed everything
// up to it, and the time it holds, against now, is the lag.
func (t *Task) beatsApplied(a int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for n < len(t.beats) && t.beats[n].offset <= a {
		n++
	}
	if n > 0 {
		t.lagMs.Store(max(0, time.Now().UnixMilli()-t.beats[n-1].sentMs))
		t.beats = append(t.beats[:0], t.beats[n:]...)
	}
}

// HeartbeatKey is the key the task writes to the source; a shard's
// carries a hash tag of a slot its master serves.
func (t *Task) HeartbeatKey() string {
	if t.hbTag != "" {
		return ReservedPrefix + "heartbeat:" + t.cfg.Name + ":{" + t.hbTag + "}"
	}
	return ReservedPrefix + "heartbeat:" + t.cfg.Name
}

// heartbeat writes the current time to the source every interval, with a
// short TTL. A source that refuses (a read-only replica, no SET
// permission) leaves the lag unknown, with a warning; the task goes on.
func (t *Task) heartbeat(ctx context.Context) {
	key := t.HeartbeatKey()
	ttl := strconv.FormatInt((10 * t.cfg.HeartbeatInterval).Milliseconds(), 10)
	var c *dialer.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(t.cfg.HeartbeatInterval)
	defer tick.Stop()
	warned := false
	for {
		if c != nil && c.Addr() != t.sourceOpts().Addr {
			c.Close() // the source's master moved
			c = nil
		}
		if c == nil {
			o := t.sourceOpts()
			o.DB = 0
			var err error
			if c, err = dialer.Dial(ctx, o); err != nil && ctx.Err() == nil {
				t.beatMissed.Store(time.Now().UnixMilli())
				if !warned {
					t.log.Warn("heartbeat: cannot reach the source; lag unknown", "err", err)
					warned = true
				}
			}
		}
		if c != nil {
			_, err := c.Do("SET", key, strconv.FormatInt(time.Now().UnixMilli(), 10), "PX", ttl)
			if err != nil && ctx.Err() == nil {
				t.beatMissed.Store(time.Now().UnixMilli())
				if !warned {
					t.log.Warn("heartbeat: the source refuses it; lag unknown", "key", key, "err", err)
					warned = true
				}
				if !isReply(err) {
					c.Close()
					c = nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func isReply(err error) bool {
	var re *resp.RedisError
	return errors.As(err, &re)
}

// apply writes a batch's commands through the filter (selection,
// mapping, key and command rules, the reserved prefix; PUBLISH is never
// replayed); a mark at the batch's end covers what was left out and the
// source's PINGs.
func (t *Task) apply(b receiver.Batch, w sink) error {
	hb := []byte(t.HeartbeatKey())
	// Sources before 7.0 replicate relative expiries as typed: they are
	// made absolute on the source's time, estimated by when the batch
	// arrived, and no later than the last heartbeat in the stream plus
	// its interval (a backlog arrives late).
	relative := !t.sourceVersion.AtLeast(7, 0)
	if t.wrap() && !t.tx.inSource && !t.tx.open {
		t.tx.plain = replayable(b.Commands, []byte(ReservedPrefix))
	}
	var size int64
	defer func() {
		t.bytesOut.Add(size)
		t.mu.Lock()
		for name, n := range t.counted {
			if *n > 0 {
				t.byName[name] += *n
				*n = 0
			}
		}
		t.mu.Unlock()
	}()
	for _, c := range b.Commands {
		if len(c.Args) >= 3 && bytes.Equal(c.Args[1], hb) && strings.EqualFold(string(c.Args[0]), "SET") {
			if ms, err := strconv.ParseInt(string(c.Args[2]), 10, 64); err == nil {
				t.mu.Lock()
				t.beats = append(t.beats, beat{offset: c.Offset, sentMs: ms})
				t.mu.Unlock()
				t.lastBeatMs = ms
			}
		}
		if isPublish(c.Args[0]) {
			t.published.Add(1)
			continue
		}
		res, err := t.stream.Apply(c.Args)
		if err != nil {
			return fmt.Errorf("stream offset %d: %w", c.Offset, err)
		}
		if res.Skipped != "" {
			if n := t.partial.Add(1); n <= droppedWarnings {
				t.log.Warn("skipped a command the filters can only partly apply (--on-partial-filter skip)", "offset", c.Offset, "reason", res.Skipped)
			}
		}
		if res.Dropped {
			t.filtered.Add(1)
		}
		for i, args := range res.Cmds {
			var offset int64
			if i == len(res.Cmds)-1 {
				offset = c.Offset
			}
			if t.child {
				// Every master of a cluster carries its own copy of a
				// library: the second copy must not fail.
				args = loadReplace(args)
			}
			if (t.child || t.targetCluster) && isFlush(args[0]) {
				// A shard's master emptied its own slots, or a flush into
				// a cluster (which must spare resync's keys): what came
				// before is committed first, the deletion (through
				// another connection) follows, then its checkpoint.
				if err := t.commitBefore(w); err != nil {
					return err
				}
				if err := t.flushShard(w); err != nil {
					return fmt.Errorf("stream offset %d: %s: %w", c.Offset, args[0], err)
				}
				if err := t.checkpointAt(w, c.Offset); err != nil {
					return err
				}
				t.count(args[0])
				continue
			}
			if r, ok := sinkRouter(w); ok && t.exact() {
				r.Source(c.Offset)
				if router.Broadcast(args) {
					// To every master, in no slot's transaction: its
					// checkpoint follows at once, so that a restart does
					// not apply it again.
					if err := t.commitBefore(w); err != nil {
						return err
					}
					if err := w.Write(writer.Op{Args: args}); err != nil {
						return err
					}
					if err := t.checkpointAt(w, c.Offset); err != nil {
						return err
					}
					t.count(args[0])
					continue
				}
			}
			if relative && len(args) > 1 {
				exec := b.At.UnixMilli()
				// Unless a heartbeat went missing since (a failover): the
				// next may then be far later than an interval.
				if t.lastBeatMs > 0 && t.beatMissed.Load() < t.lastBeatMs {
					exec = min(exec, t.lastBeatMs+t.cfg.HeartbeatInterval.Milliseconds())
				}
				if cmds := transform.AbsoluteTTL(args, exec, t.targetVersion.AtLeast(6, 2), t.targetVersion.AtLeast(5, 0)); cmds != nil {
					for j, targs := range cmds {
						op := writer.Op{Args: targs, Key: args[1]}
						if j == len(cmds)-1 {
							op.Offset = offset
						}
						if err := t.write(w, op); err != nil {
							return err
						}
					}
					t.count(args[0])
					continue
				}
			}
			if err := t.write(w, writer.Op{Args: args, Offset: offset, SourceMayFail: isScript(args[0])}); err != nil {
				return err
			}
			for _, a := range args {
				size += int64(len(a))
			}
			t.count(args[0])
		}
		if len(res.Cmds) > 0 {
			t.commands.Add(1)
		}
		t.noteDB(c.Offset)
		t.lastOffset = c.Offset
	}
	t.lastOffset = b.End
	return t.endBatch(w, b.End)
}

// isScript reports EVAL, EVALSHA and FCALL: sources before 7.0 replicate
// a script verbatim, even one that failed half way after writing, so the
// target answers the same error the source did; that is not a failure.
func isScript(name []byte) bool {
	for _, s := range []string{"EVAL", "EVALSHA", "FCALL"} {
		if strings.EqualFold(string(name), s) {
			return true
		}
	}
	return false
}

// isPublish reports PUBLISH and SPUBLISH, which are never replayed: a
// target's subscribers are not the source's.
func isPublish(name []byte) bool {
	return strings.EqualFold(string(name), "PUBLISH") || strings.EqualFold(string(name), "SPUBLISH")
}

// count counts one applied command by its name in upper case; names
// past 24 bytes are not Redis commands and count as OTHER.
func (t *Task) count(name []byte) {
	var up [24]byte
	key := []byte("OTHER")
	if len(name) <= len(up) {
		key = up[:len(name)]
		for i, c := range name {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			key[i] = c
		}
	}
	if n := t.counted[string(key)]; n != nil { // no allocation: a lookup
		*n++
		return
	}
	if t.counted == nil {
		t.counted = map[string]*int64{}
	}
	one := int64(1)
	t.counted[string(key)] = &one
}
