// Package checkpoint holds the format of what a task keeps in its target:
// the checkpoint (how far the target is in the source's replication
// stream) and the lock that keeps a second process off the same task.
//
// Both are plain strings of "field=value" words, readable with GET by an
// operator, under the reserved prefix so that they never travel to
// another target.
package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// States of a checkpoint.
const (
	// Streaming: the target holds the source's data up to Offset.
	Streaming = "stream"
	// FullSync: a full sync into the target began and has not ended; the
	// target holds part of a snapshot.
	FullSync = "full"
	// Scan: a task in scan mode writes this target (no replication
	// stream, no offset: a restart copies everything again).
	Scan = "scan"
)

// Point is a checkpoint: the target holds every command of the source's
// replication stream ReplID up to Offset (the offset of its last byte),
// and the source's current database there was DB.
type Point struct {
	ReplID string
	Offset int64
	DB     int
	State  string
	// TimeMs is when it was written (resync's clock, Unix ms); for people.
	TimeMs int64
}

// Key is the checkpoint key of a task's shard under prefix; shard is ""
// for a standalone source.
func Key(prefix, task, shard string) string {
	k := prefix + "checkpoint:" + task
	if shard != "" {
		k += ":" + shard
	}
	return k
}

// Patterns match every checkpoint key of a task (for SCAN MATCH): its
// own, and those of its shards and slots; not another task's whose name
// begins the same.
func Patterns(prefix, task string) []string {
	k := escape(prefix + "checkpoint:" + task)
	return []string{k, k + ":*"}
}

// SlotKey is the checkpoint key of one slot of a cluster target, for the
// checkpoint key base: tag is a hash tag of the slot (cluster.Tag).
func SlotKey(base, tag string) string { return base + ":{" + tag + "}" }

// SlotPattern matches the slot checkpoint keys of base.
func SlotPattern(base string) string { return escape(base) + ":{*}" }

// PrefixPattern matches every key under prefix (for SCAN MATCH).
func PrefixPattern(prefix string) string { return escape(prefix) + "*" }

// LockKey is a task's lock key under prefix.
func LockKey(prefix, task string) string { return prefix + "lock:" + task }

// escape quotes the glob characters of s for a MATCH pattern.
func escape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Format returns p as a checkpoint value.
func (p Point) Format() string {
	state := p.State
	if state == "" {
		state = Streaming
	}
	return fmt.Sprintf("replid=%s offset=%d db=%d state=%s time=%d", p.ReplID, p.Offset, p.DB, state, p.TimeMs)
}

// Parse reads a checkpoint value.
func Parse(s string) (Point, error) {
	var p Point
	seen := map[string]bool{}
	for _, w := range strings.Fields(s) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return Point{}, fmt.Errorf("checkpoint %q: %q is not field=value", clip(s), clip(w))
		}
		var err error
		switch k {
		case "replid":
			p.ReplID = v
		case "offset":
			p.Offset, err = strconv.ParseInt(v, 10, 64)
		case "db":
			p.DB, err = strconv.Atoi(v)
		case "state":
			p.State = v
			if v != Streaming && v != FullSync && v != Scan {
				err = fmt.Errorf("unknown state")
			}
		case "time":
			p.TimeMs, err = strconv.ParseInt(v, 10, 64)
		default:
			continue // a later version's field
		}
		if err == nil && (p.Offset < 0 || p.DB < 0) {
			err = fmt.Errorf("negative")
		}
		if err != nil {
			return Point{}, fmt.Errorf("checkpoint %q: field %s: %v", clip(s), k, err)
		}
		seen[k] = true
	}
	for _, k := range []string{"replid", "offset", "db", "state"} {
		if !seen[k] {
			return Point{}, fmt.Errorf("checkpoint %q: no %s field", clip(s), k)
		}
	}
	if len(p.ReplID) != 40 && !(p.State == Scan && p.ReplID == "") {
		return Point{}, fmt.Errorf("checkpoint %q: replid %q is not 40 characters", clip(s), clip(p.ReplID))
	}
	return p, nil
}

// Owner identifies the process that holds a lock.
type Owner struct {
	Host  string
	PID   int
	Token string // unique per run
	// SinceMs is when it took the lock (Unix ms).
	SinceMs int64
}

// Format returns o as a lock value.
func (o Owner) Format() string {
	return fmt.Sprintf("host=%s pid=%d token=%s since=%d", o.Host, o.PID, o.Token, o.SinceMs)
}

// ParseOwner reads a lock value; fields it does not know are ignored.
func ParseOwner(s string) (Owner, error) {
	var o Owner
	for _, w := range strings.Fields(s) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return Owner{}, fmt.Errorf("lock %q: %q is not field=value", clip(s), clip(w))
		}
		var err error
		switch k {
		case "host":
			o.Host = v
		case "pid":
			o.PID, err = strconv.Atoi(v)
		case "token":
			o.Token = v
		case "since":
			o.SinceMs, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return Owner{}, fmt.Errorf("lock %q: field %s: %v", clip(s), k, err)
		}
	}
	if o.Token == "" {
		return Owner{}, fmt.Errorf("lock %q: no token", clip(s))
	}
	return o, nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
