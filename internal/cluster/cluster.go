// Package cluster knows what a client of Redis Cluster must: whether a
// server is in cluster mode, which master serves each of the 16384 slots,
// and which slot a key hashes to (CRC16 of the key, or of its hash tag).
//
// The map is read with CLUSTER NODES, which every cluster-capable version
// (3.0 to 7.4) answers in the same format.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/resync/resync/internal/dialer"
)

// Slots is the number of hash slots of a cluster.
const Slots = 16384

// Enabled reports whether the server runs in cluster mode (INFO cluster).
// Servers before 3.0 have no such section: not a cluster.
func Enabled(c *dialer.Conn) (bool, error) {
	v, err := c.Do("INFO", "cluster")
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(v.Text()) {
		if strings.TrimSpace(line) == "cluster_enabled:1" {
			return true, nil
		}
	}
	return false, nil
}

// Node is one master and the slots it serves.
type Node struct {
	ID    string
	Addr  string // host:port clients connect to
	Slots [][2]int
}

// Topology is which master serves each slot.
type Topology struct {
	Masters []Node
	owner   [Slots]int16 // index into Masters; -1 when no master serves the slot
}

// Load reads the topology from any node of the cluster.
func Load(c *dialer.Conn) (*Topology, error) {
	v, err := c.Do("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(c.Addr())
	t, err := ParseNodes(v.Text(), host)
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", c.Addr(), err)
	}
	return t, nil
}

// ParseNodes reads a CLUSTER NODES reply. host stands in for a node that
// knows no address of its own yet (a lone node lists itself as ":port").
func ParseNodes(text, host string) (*Topology, error) {
	t := &Topology{}
	for i := range t.owner {
		t.owner[i] = -1
	}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("short line %q", line)
		}
		flags := strings.Split(f[2], ",")
		if !slices.Contains(flags, "master") || slices.Contains(flags, "fail") ||
			slices.Contains(flags, "noaddr") || slices.Contains(flags, "handshake") {
			continue
		}
		addr, err := nodeAddr(f[1], host)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", f[0], err)
		}
		n := Node{ID: f[0], Addr: addr}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being imported or migrated: still served here
			}
			lo, hi, err := slotRange(s)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", f[0], err)
			}
			n.Slots = append(n.Slots, [2]int{lo, hi})
		}
		if len(n.Slots) == 0 {
			continue // a master without slots serves nothing
		}
		if len(t.Masters) >= 1<<15-1 {
			return nil, fmt.Errorf("more masters than a cluster can have")
		}
		for _, r := range n.Slots {
			for s := r[0]; s <= r[1]; s++ {
				t.owner[s] = int16(len(t.Masters))
			}
		}
		t.Masters = append(t.Masters, n)
	}
	if len(t.Masters) == 0 {
		return nil, fmt.Errorf("no master serves any slot")
	}
	return t, nil
}

// nodeAddr reads "ip:port@cport[,hostname]" (or "ip:port" before 4.0).
func nodeAddr(field, host string) (string, error) {
	field, _, _ = strings.Cut(field, ",")
	field, _, _ = strings.Cut(field, "@")
	h, port, err := net.SplitHostPort(field)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", field, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("address %q: bad port", field)
	}
	if h == "" {
		h = host
	}
	return net.JoinHostPort(h, port), nil
}

func slotRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil || lo < 0 || hi >= Slots || lo > hi {
		return 0, 0, fmt.Errorf("bad slot range %q", s)
	}
	return lo, hi, nil
}

// Owner returns the index in Masters of the master serving slot, or -1.
func (t *Topology) Owner(slot int) int {
	if slot < 0 || slot >= Slots {
		return -1
	}
	return int(t.owner[slot])
}

// Uncovered returns how many slots no master serves.
func (t *Topology) Uncovered() int {
	n := 0
	for _, o := range t.owner {
		if o < 0 {
			n++
		}
	}
	return n
}

// Options returns base's options for reaching master i: the same
// credentials and TLS settings, its address.
func (t *Topology) Options(base dialer.Options, i int) dialer.Options {
	base.Addr = t.Masters[i].Addr
	base.DB = 0
	return base
}

// Slot returns the hash slot of key: the CRC16 of its hash tag — the part
// between the first "{" and the next "}" when that part is not empty — or
// of the whole key.
func Slot(key []byte) int {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), as Redis
// Cluster uses it.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// Tag returns a short hash tag whose slot is slot: "{" + Tag(s) + "}" in a
// key puts it in slot s (a per-slot checkpoint lives with its slot's
// keys, in their transactions).
func Tag(slot int) string {
	return tags()[slot%Slots]
}

// tags is the table of the shortest decimal tags per slot, built once;
// it never changes after.
var tags = sync.OnceValue(func() []string {
	t := make([]string, Slots)
	left := Slots
	for i := 0; left > 0; i++ {
		s := strconv.Itoa(i)
		if slot := Slot([]byte(s)); t[slot] == "" {
			t[slot] = s
			left--
		}
	}
	return t
})

// LoadFrom reads the slot map from the first of addrs (with base's
// credentials and TLS) that answers with one accept takes; it says why
// each of the others would not do.
func LoadFrom(ctx context.Context, base dialer.Options, addrs []string, accept func(*Topology) error) (*Topology, error) {
	var errs []error
	for _, addr := range addrs {
		o := base
		o.Addr, o.DB = addr, 0
		c, err := dialer.Dial(ctx, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		top, err := Load(c)
		c.Close()
		if err == nil && accept != nil {
			err = accept(top)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return top, nil
	}
	return nil, errors.Join(errs...)
}
