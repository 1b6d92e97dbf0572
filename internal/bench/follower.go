package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// nodes are one side of a sync: a standalone server, or a cluster's
// masters (as redisproc.StartCluster lays out their slots).
type nodes []*redisproc.Server

// owner is the node that holds key.
func (n nodes) owner(key string) *redisproc.Server {
	if len(n) == 1 {
		return n[0]
	}
	return n[ownerOf(cluster.Slot([]byte(key)), len(n))]
}

// sample is what a follower reports at one moment: its heartbeat lag
// (resync only, nil while unknown) and the offset it has applied of each
// source master's stream, by the master's address.
type sample struct {
	lagMs   *int64
	offsets map[string]int64
}

// follower is what follows the source: resync (and its target), or a
// native replica.
type follower interface {
	// applied counts the commands it has applied so far.
	applied(ctx context.Context) (int64, error)
	sample(ctx context.Context) (sample, error)
	// target is where its writes land, to look for the marker.
	target() nodes
}

// resyncFollower is a running resync and its target.
type resyncFollower struct {
	p   *resyncProc
	dst nodes
}

func (f resyncFollower) applied(ctx context.Context) (int64, error) {
	d, err := f.p.status(ctx)
	return d.CommandsApplied, err
}

func (f resyncFollower) sample(ctx context.Context) (sample, error) {
	d, err := f.p.status(ctx)
	if err != nil {
		return sample{}, err
	}
	if d.State != "synchronizing" {
		return sample{}, fmt.Errorf("resync is %s, not synchronizing: %s", d.State, f.p.logTail())
	}
	s := sample{lagMs: d.LagMs, offsets: map[string]int64{}}
	for _, sh := range d.Shards {
		s.offsets[sh.Source] = sh.AppliedOffset
	}
	return s, nil
}

func (f resyncFollower) target() nodes { return f.dst }

// nativeFollower is a native replica.
type nativeFollower struct {
	c               *dialer.Conn
	replica, source *redisproc.Server
	polls           int64 // the INFO commands the bench itself sent it
}

func (f *nativeFollower) applied(ctx context.Context) (int64, error) {
	v, err := f.c.Do("INFO", "stats")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(redisproc.InfoField(v.Text(), "total_commands_processed"), 10, 64)
	// The replica counts the stream's commands and the bench's INFOs
	// (each after it ran).
	n -= f.polls
	f.polls++
	return n, err
}

func (f *nativeFollower) sample(ctx context.Context) (sample, error) {
	v, err := f.c.Do("INFO", "replication")
	if err != nil {
		return sample{}, err
	}
	f.polls++
	off, err := strconv.ParseInt(redisproc.InfoField(v.Text(), "slave_repl_offset"), 10, 64)
	if err != nil {
		return sample{}, fmt.Errorf("replica %s: no slave_repl_offset in INFO replication", f.replica.Addr)
	}
	return sample{offsets: map[string]int64{f.source.Addr: off}}, nil
}

func (f *nativeFollower) target() nodes { return nodes{f.replica} }
