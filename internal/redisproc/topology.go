package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// waitFor polls check until it reports done, failing after limit with the
// last reason it gave.
func waitFor(ctx context.Context, limit time.Duration, what string, check func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		done, why := check()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not done after %s: %s", what, limit, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartReplica starts a server that replicates master and waits until its
// link is up and the initial sync is loaded.
func StartReplica(ctx context.Context, o Options, master *Server) (*Server, error) {
	r, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := r.ReplicaOf(ctx, master); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// ReplicaOf makes s replicate master and waits for the link to come up.
func (s *Server) ReplicaOf(ctx context.Context, master *Server) error {
	// SLAVEOF is understood by every version, REPLICAOF only from 5.0.
	if _, err := s.Do(ctx, "SLAVEOF", "127.0.0.1", strconv.Itoa(master.Port)); err != nil {
		return fmt.Errorf("replica %s of %s: %w", s.Addr, master.Addr, err)
	}
	return s.WaitLinkUp(ctx)
}

// WaitLinkUp waits until a replica reports master_link_status:up and is not loading.
func (s *Server) WaitLinkUp(ctx context.Context) error {
	return waitFor(ctx, 30*time.Second, "replica "+s.Addr+" link", func() (bool, string) {
		info, err := s.Do(ctx, "INFO", "replication")
		if err != nil {
			return false, err.Error()
		}
		link := InfoField(info, "master_link_status")
		sync := InfoField(info, "master_sync_in_progress")
		return link == "up" && sync == "0", fmt.Sprintf("master_link_status:%s master_sync_in_progress:%s", link, sync)
	})
}

// Cluster is a running Redis Cluster.
type Cluster struct {
	Masters  []*Server
	Replicas [][]*Server // Replicas[i] replicate Masters[i]
}

// Nodes returns every node, masters first.
func (c *Cluster) Nodes() []*Server {
	nodes := append([]*Server(nil), c.Masters...)
	for _, rs := range c.Replicas {
		nodes = append(nodes, rs...)
	}
	return nodes
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes() {
		n.Stop()
	}
}

// SlotRange returns the slots [first, last] that StartCluster gives master i of n.
func SlotRange(i, n int) (first, last int) {
	return i * 16384 / n, (i+1)*16384/n - 1
}

// StartCluster starts masters × (1 + replicas) nodes, gives the masters
// equal slot ranges in order, attaches the replicas, and waits until every
// node reports cluster_state:ok and every replica's link is up. o.Dir is
// ignored: each node gets a directory of its own.
func StartCluster(ctx context.Context, o Options, masters, replicas int) (*Cluster, error) {
	if masters < 1 || replicas < 0 {
		return nil, errors.New("redisproc: a cluster needs at least one master")
	}
	o.Cluster, o.Dir = true, ""
	c := &Cluster{Replicas: make([][]*Server, masters)}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	for i := range masters {
		s, err := Start(ctx, o)
		if err != nil {
			return fail(err)
		}
		c.Masters = append(c.Masters, s)
		for range replicas {
			r, err := Start(ctx, o)
			if err != nil {
				return fail(err)
			}
			c.Replicas[i] = append(c.Replicas[i], r)
		}
	}
	nodes := c.Nodes()
	for i, m := range c.Masters {
		// Distinct epochs from the start spare the cluster its collision
		// handling, as redis-cli --cluster create does.
		if _, err := m.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return fail(err)
		}
		first, last := SlotRange(i, masters)
		args := []string{"CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last)}
		if !m.Version.AtLeast(7, 0) {
			args = []string{"CLUSTER", "ADDSLOTS"}
			for slot := first; slot <= last; slot++ {
				args = append(args, strconv.Itoa(slot))
			}
		}
		if _, err := m.Do(ctx, args...); err != nil {
			return fail(fmt.Errorf("assign slots %d-%d to %s: %w", first, last, m.Addr, err))
		}
	}
	for _, n := range nodes[1:] {
		if _, err := nodes[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(n.Port)); err != nil {
			return fail(err)
		}
	}
	ids := make(map[*Server]string, len(nodes))
	for _, n := range nodes {
		id, err := n.NodeID(ctx)
		if err != nil {
			return fail(err)
		}
		ids[n] = id
	}
	// Every node must know every other before a replica can name its master.
	for _, n := range nodes {
		err := waitFor(ctx, 30*time.Second, "cluster node "+n.Addr+" meets the others", func() (bool, string) {
			out, err := n.Do(ctx, "CLUSTER", "NODES")
			if err != nil {
				return false, err.Error()
			}
			known := 0
			for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(line); len(f) > 2 && !strings.Contains(f[2], "handshake") && !strings.Contains(f[2], "noaddr") {
					known++
				}
			}
			return known == len(nodes), fmt.Sprintf("knows %d of %d nodes", known, len(nodes))
		})
		if err != nil {
			return fail(err)
		}
	}
	for i, rs := range c.Replicas {
		for _, r := range rs {
			if _, err := r.Do(ctx, "CLUSTER", "REPLICATE", ids[c.Masters[i]]); err != nil {
				return fail(fmt.Errorf("replica %s of %s: %w", r.Addr, c.Masters[i].Addr, err))
			}
		}
	}
	for _, n := range nodes {
		err := waitFor(ctx, 30*time.Second, "cluster node "+n.Addr+" state", func() (bool, string) {
			info, err := n.Do(ctx, "CLUSTER", "INFO")
			if err != nil {
				return false, err.Error()
			}
			state, slots := InfoField(info, "cluster_state"), InfoField(info, "cluster_slots_ok")
			return state == "ok" && slots == "16384", fmt.Sprintf("cluster_state:%s cluster_slots_ok:%s", state, slots)
		})
		if err != nil {
			return fail(err)
		}
	}
	for _, rs := range c.Replicas {
		for _, r := range rs {
			if err := r.WaitLinkUp(ctx); err != nil {
				return fail(err)
			}
		}
	}
	return c, nil
}

// NodeID returns a cluster node's id, from the "myself" line of CLUSTER NODES.
func (s *Server) NodeID(ctx context.Context) (string, error) {
	out, err := s.Do(ctx, "CLUSTER", "NODES")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(f[2], "myself") {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("cluster node %s: no myself line in CLUSTER NODES", s.Addr)
}

// MoveSlot moves slot from master from to master to, as redis-cli
// --cluster reshard does: IMPORTING and MIGRATING, the keys in batches
// with MIGRATE (a short pause between batches lets other writes in), then
// SETSLOT NODE on every master. Clients meanwhile meet ASK, then MOVED.
func (c *Cluster) MoveSlot(ctx context.Context, slot int, from, to *Server) error {
	fid, err := from.NodeID(ctx)
	if err != nil {
		return err
	}
	tid, err := to.NodeID(ctx)
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := to.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", fid); err != nil {
		return err
	}
	if _, err := from.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", tid); err != nil {
		return err
	}
	fc, err := from.Dial(ctx)
	if err != nil {
		return err
	}
	defer fc.Close()
	host, port, err := net.SplitHostPort(to.Addr)
	if err != nil {
		return err
	}
	for {
		v, err := fc.Do("CLUSTER", "GETKEYSINSLOT", s, "50")
		if err != nil {
			return fmt.Errorf("%s: %w", from.Addr, err)
		}
		if len(v.Elems) == 0 {
			break
		}
		args := []string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}
		for _, k := range v.Elems {
			args = append(args, k.Text())
		}
		if _, err := fc.Do(args...); err != nil {
			return fmt.Errorf("%s: %w", from.Addr, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, m := range append([]*Server{to, from}, c.Masters...) {
		if _, err := m.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", tid); err != nil {
			return err
		}
	}
	return nil
}

// StartSentinel starts a Sentinel (redis-server --sentinel) that monitors
// master under name, with a quorum of one and a one-second down-after,
// and waits until it reports the master up.
func StartSentinel(ctx context.Context, o Options, master *Server, name string) (*Server, error) {
	// o.Password, when set, is the Sentinel's own (requirepass); the
	// master's comes from the master.
	o.TLS, o.Cluster = nil, false
	s, err := start(ctx, o, &sentinelSpec{name: name, master: master})
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, 30*time.Second, "sentinel "+s.Addr+" sees master "+name, func() (bool, string) {
		st, err := s.SentinelMaster(ctx, name)
		if err != nil {
			return false, err.Error()
		}
		return st["flags"] == "master" && st["role-reported"] == "master" && st["ip"]+":"+st["port"] == master.Addr,
			fmt.Sprintf("flags=%s role-reported=%s addr=%s:%s", st["flags"], st["role-reported"], st["ip"], st["port"])
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// SentinelMaster returns a Sentinel's view of a master (SENTINEL MASTER name) as fields.
func (s *Server) SentinelMaster(ctx context.Context, name string) (map[string]string, error) {
	c, err := s.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v, err := c.Do("SENTINEL", "MASTER", name)
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string, len(v.Elems)/2)
	for i := 0; i+1 < len(v.Elems); i += 2 {
		fields[v.Elems[i].Text()] = v.Elems[i+1].Text()
	}
	return fields, nil
}
