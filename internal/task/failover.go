package task

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// errNoMaster says no candidate source is a master now (a failover in
// progress): the task retries.
var errNoMaster = errors.New("no master among the source's candidates")

// sourceOpts returns how to reach the source's current master.
func (t *Task) sourceOpts() dialer.Options {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.source
}

// followsFailover reports whether the task was told where to look for a
// new source master.
func (t *Task) followsFailover() bool {
	return len(t.cfg.SourceCandidates) > 0 || len(t.cfg.SourceSentinels) > 0 || t.child
}

// locateSource finds the source's current master: the one the Sentinels
// name, or the candidate that is a master (preferring one whose history
// includes the task's replication id, so PSYNC can continue). The
// source's credentials and TLS settings go with the new address.
func (t *Task) locateSource(ctx context.Context) error {
	if !t.followsFailover() {
		return nil
	}
	cur := t.sourceOpts()
	var addr string
	var err error
	switch {
	case t.child:
		addr, err = t.shardMaster(ctx, cur)
	case len(t.cfg.SourceSentinels) > 0:
		addr, err = AskSentinels(ctx, t.cfg.Source, t.cfg.SourceSentinelAuth, t.cfg.SourceSentinels, t.cfg.SourceMaster)
		if err != nil {
			err = fmt.Errorf("source: %w", err)
		}
	default:
		addr, err = t.findMaster(ctx, cur)
	}
	if err != nil {
		return err
	}
	if addr != cur.Addr {
		t.log.Warn("following the source's master to a new address", "from", cur.Addr, "to", addr)
		cur.Addr = addr
		t.mu.Lock()
		t.source = cur
		t.mu.Unlock()
	}
	return nil
}

// AskSentinels asks each Sentinel in turn for the address of the master
// they know as name (base gives the timeouts, auth the login and TLS).
func AskSentinels(ctx context.Context, base, auth dialer.Options, sentinels []string, name string) (string, error) {
	var errs []error
	for _, s := range sentinels {
		o := dialer.Options{Addr: s, Username: auth.Username, Password: auth.Password, TLS: auth.TLS,
			ConnectTimeout: base.ConnectTimeout, IOTimeout: base.IOTimeout}
		c, err := dialer.Dial(ctx, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v, err := c.Do("SENTINEL", "get-master-addr-by-name", name)
		c.Close()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("sentinel %s: %w", s, err))
		case v.Nil() || len(v.Elems) != 2:
			errs = append(errs, fmt.Errorf("sentinel %s does not monitor a master named %q", s, name))
		default:
			return net.JoinHostPort(v.Elems[0].Text(), v.Elems[1].Text()), nil
		}
	}
	return "", fmt.Errorf("%w: %w", errNoMaster, errors.Join(errs...))
}

// targetOpts returns how to reach the target's current master.
func (t *Task) targetOpts() dialer.Options {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.target
}

// locateTarget asks the target's Sentinels, if any, where its master is
// now.
func (t *Task) locateTarget(ctx context.Context) error {
	if len(t.cfg.TargetSentinels) == 0 {
		return nil
	}
	addr, err := AskSentinels(ctx, t.cfg.Target, t.cfg.TargetSentinelAuth, t.cfg.TargetSentinels, t.cfg.TargetMaster)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	t.mu.Lock()
	old := t.target.Addr
	t.target.Addr = addr
	t.mu.Unlock()
	if addr != old {
		t.log.Warn("writing to the target's master at a new address", "from", old, "to", addr)
	}
	return nil
}

// findMaster dials the current address and every candidate and returns a
// master among them.
func (t *Task) findMaster(ctx context.Context, cur dialer.Options) (string, error) {
	addrs := []string{cur.Addr}
	for _, a := range append([]string{t.cfg.Source.Addr}, t.cfg.SourceCandidates...) {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	replID := t.currentReplID()
	var masters, notes []string
	for _, a := range addrs {
		o := cur
		o.Addr = a
		c, err := dialer.Dial(ctx, o)
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		v, err := c.Do("INFO", "replication")
		c.Close()
		if err != nil {
			notes = append(notes, err.Error())
			continue
		}
		info := v.Text()
		role := redisproc.InfoField(info, "role")
		if role != "master" {
			notes = append(notes, a+" is a "+role)
			continue
		}
		if replID != "" && (redisproc.InfoField(info, "master_replid") == replID || redisproc.InfoField(info, "master_replid2") == replID) {
			return a, nil // it carries on the history the task follows
		}
		masters = append(masters, a)
	}
	if len(masters) > 0 {
		return masters[0], nil
	}
	return "", fmt.Errorf("source: %w (%s)", errNoMaster, strings.Join(notes, "; "))
}

// shardMaster asks the source cluster (the shard's current master, else
// any node the task has known) which master serves the shard's first
// slot now: a replica the cluster promoted takes its master's place.
func (t *Task) shardMaster(ctx context.Context, cur dialer.Options) (string, error) {
	first := t.shardSlots[0][0]
	top, err := cluster.LoadFrom(ctx, cur, append([]string{cur.Addr}, t.clusterSeeds...), func(top *cluster.Topology) error {
		if top.Owner(first) < 0 {
			return fmt.Errorf("no master serves slot %d", first)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("source shard of slots %d-%d: %w: %w", first, t.shardSlots[0][1], errNoMaster, err)
	}
	return top.Masters[top.Owner(first)].Addr, nil
}
