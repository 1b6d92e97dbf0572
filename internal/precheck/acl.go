package precheck

import (
	"fmt"
	"slices"
	"strings"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/resp"
)

// probe is one command as ACL DRYRUN is asked about it: name is how
// ACL SETUSER spells it ("xgroup|create"), args a valid call (DRYRUN checks
// the arity, and the keys against the user's key patterns).
type probe struct {
	name string
	args []string
}

// denials is what ACL DRYRUN said about a list of probes.
type denials struct {
	commands []string // the user may not run these
	keys     bool     // the user may not touch the key the probes used
	missing  []string // no such command on the server (renamed or disabled)
	// unchecked is why DRYRUN itself could not answer ("" when it did).
	unchecked string
}

func (d denials) none() bool { return len(d.commands) == 0 && !d.keys && len(d.missing) == 0 }

// dryRun asks the server, for each probe, whether the node's user may
// run it (ACL DRYRUN, 7.0+). Nothing is run.
func dryRun(n *node, probes []probe) denials {
	var d denials
	for _, p := range probes {
		v, err := n.do(append([]string{"ACL", "DRYRUN", n.user()}, p.args...)...)
		if err != nil {
			re, ok := replyError(err)
			switch {
			case ok && strings.HasPrefix(re.Msg, "ERR Command") && strings.Contains(re.Msg, "not found"):
				d.missing = append(d.missing, p.name)
				continue
			case ok && re.Code() == "NOPERM":
				d.unchecked = fmt.Sprintf("user %q may not run ACL DRYRUN, which the check needs", n.user())
			default:
				d.unchecked = "ACL DRYRUN failed: " + errText(n, err)
			}
			return d
		}
		if v.Kind == resp.SimpleString && v.Text() == "OK" {
			continue
		}
		// The denial names either the command or a key.
		if msg := v.Text(); strings.Contains(msg, "permissions to access") {
			d.keys = true
		} else {
			d.commands = append(d.commands, p.name)
		}
	}
	return d
}

// allowsAll reports whether the node's user may run every command on
// every key (+@all ~*), from ACL GETUSER: how a 6.x server, which has no
// ACL DRYRUN, can still be vouched for.
func allowsAll(n *node) bool {
	v, err := n.do("ACL", "GETUSER", n.user())
	if err != nil {
		return false
	}
	var cmds string
	allKeys := false
	for i := 0; i+1 < len(v.Elems); i += 2 {
		val := v.Elems[i+1]
		switch v.Elems[i].Text() {
		case "commands":
			cmds = val.Text()
		case "flags":
			for _, f := range val.Elems {
				allKeys = allKeys || f.Text() == "allkeys"
			}
		case "keys":
			for _, k := range val.Elems {
				allKeys = allKeys || k.Text() == "*"
			}
			allKeys = allKeys || val.Text() == "~*"
		}
	}
	return cmds == "+@all" && allKeys
}

// aclPrecheck is the common part of the ACL checks: what a server that
// cannot be asked with DRYRUN gets. It returns false when the check is
// done.
func (r *run) aclPrecheck(check string, n *node, what string, cmds []probe) bool {
	switch {
	case !n.version.AtLeast(6, 0):
		r.add(check, n, Pass, fmt.Sprintf("Redis %s has no ACLs: a logged-in client may run %s", n.version, what), "")
		return false
	case !n.version.AtLeast(7, 0) && allowsAll(n):
		r.add(check, n, Pass, fmt.Sprintf("user %q may run every command on every key (+@all ~*)", n.user()), "")
		return false
	case !n.version.AtLeast(7, 0):
		r.add(check, n, Warn, fmt.Sprintf("cannot be checked on Redis %s (ACL DRYRUN came with 7.0): make sure user %q may run %s", n.version, n.user(), what),
			setUser(n.user(), probeNames(cmds), ""))
		return false
	}
	return true
}

func probeNames(ps []probe) []string {
	var out []string
	for _, p := range ps {
		if !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}

// setUser is the ACL SETUSER line that grants commands and a key pattern.
func setUser(user string, cmds []string, keys string) string {
	line := "ACL SETUSER " + user
	for _, c := range cmds {
		line += " +" + c
	}
	if keys != "" {
		line += " ~" + keys
	}
	return line
}

func (r *run) sourceReplicationACL() {
	probes := []probe{
		{"psync", []string{"PSYNC", "?", "-1"}},
		{"replconf", []string{"REPLCONF", "listening-port", "0"}},
	}
	for _, n := range r.src.up() {
		if !r.aclPrecheck("source-replication-acl", n, "PSYNC and REPLCONF", probes) {
			continue
		}
		d := dryRun(n, probes)
		switch {
		case d.unchecked != "":
			r.add("source-replication-acl", n, Warn, "cannot be checked: "+d.unchecked,
				fmt.Sprintf("make sure user %q may run PSYNC and REPLCONF (%s)", n.user(), setUser(n.user(), probeNames(probes), "")))
		case len(d.missing) > 0:
			r.add("source-replication-acl", n, Fail, fmt.Sprintf("the source has no command %s (renamed or disabled): resync replicates with PSYNC and REPLCONF", strings.Join(d.missing, ", ")),
				"give the commands back their names (rename-command in redis.conf)"+scanInstead)
		case len(d.commands) > 0:
			r.add("source-replication-acl", n, Fail, fmt.Sprintf("user %q may not run %s: resync replicates with PSYNC and REPLCONF", n.user(), strings.Join(d.commands, ", ")),
				setUser(n.user(), d.commands, "")+scanInstead)
		default:
			r.add("source-replication-acl", n, Pass, fmt.Sprintf("user %q may run PSYNC and REPLCONF", n.user()), "")
		}
	}
}

// heartbeatKey is the key resync writes on the source to measure the lag
// (a cluster's shards add a hash tag, which the same patterns match).
func (r *run) heartbeatKey() string { return r.prefix + "heartbeat:" + r.cfg.Name }

func (r *run) sourceHeartbeatACL() {
	key := r.heartbeatKey()
	probes := []probe{{"set", []string{"SET", key, "1", "PX", "10000"}}}
	for _, n := range r.src.up() {
		if n.info["role"] == "slave" {
			r.add("source-heartbeat-acl", n, Warn, "the source is a replica, which refuses writes: resync cannot write its heartbeat there, so the lag is unknown",
				"point --source at the master, or accept an unknown lag")
			continue
		}
		if !r.aclPrecheck("source-heartbeat-acl", n, "SET on "+key, probes) {
			continue
		}
		d := dryRun(n, probes)
		switch {
		case d.unchecked != "":
			r.add("source-heartbeat-acl", n, Warn, "cannot be checked: "+d.unchecked+"; without SET on "+key+" the lag is unknown",
				setUser(n.user(), []string{"set"}, r.prefix+"heartbeat:*"))
		case !d.none():
			keys := ""
			if d.keys {
				keys = r.prefix + "heartbeat:*"
			}
			r.add("source-heartbeat-acl", n, Warn, fmt.Sprintf("user %q may not SET the heartbeat key %s: the sync works, but its lag is unknown", n.user(), key),
				setUser(n.user(), d.commands, keys))
		default:
			r.add("source-heartbeat-acl", n, Pass, fmt.Sprintf("user %q may SET the heartbeat key %s", n.user(), key), "")
		}
	}
}

// targetProbes are the commands resync itself sends to the target (the
// full sync, the rewrite of values as commands, checkpoints and the task
// lock), and the commands of a source's stream that it replays as they
// come, asked about with key k.
func targetProbes(k string, cluster, hashTTLs bool) (required, stream []probe) {
	required = []probe{
		{"restore", []string{"RESTORE", k, "0", "x", "REPLACE", "ABSTTL"}},
		{"del", []string{"DEL", k}},
		{"set", []string{"SET", k, "v"}},
		{"get", []string{"GET", k}},
		{"append", []string{"APPEND", k, "v"}},
		{"pexpireat", []string{"PEXPIREAT", k, "0"}},
		{"pttl", []string{"PTTL", k}},
		{"multi", []string{"MULTI"}},
		{"exec", []string{"EXEC"}},
		{"discard", []string{"DISCARD"}},
		{"scan", []string{"SCAN", "0"}},
		{"info", []string{"INFO"}},
		{"eval", []string{"EVAL", "return 1", "1", k}},
		{"hset", []string{"HSET", k, "f", "v"}},
		{"rpush", []string{"RPUSH", k, "v"}},
		{"sadd", []string{"SADD", k, "m"}},
		{"zadd", []string{"ZADD", k, "1", "m"}},
		{"xadd", []string{"XADD", k, "*", "f", "v"}},
		{"xsetid", []string{"XSETID", k, "0-1"}},
		{"xgroup|create", []string{"XGROUP", "CREATE", k, "g", "$"}},
		{"xgroup|createconsumer", []string{"XGROUP", "CREATECONSUMER", k, "g", "c"}},
		{"xreadgroup", []string{"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", k, "0"}},
		{"xclaim", []string{"XCLAIM", k, "g", "c", "0", "0-1"}},
	}
	if cluster {
		required = append(required, probe{"cluster|nodes", []string{"CLUSTER", "NODES"}}, probe{"asking", []string{"ASKING"}})
	} else {
		required = append(required, probe{"select", []string{"SELECT", "0"}})
	}
	if hashTTLs {
		required = append(required, probe{"hpexpireat", []string{"HPEXPIREAT", k, "0", "FIELDS", "1", "f"}})
	}
	stream = []probe{
		{"incrby", []string{"INCRBY", k, "1"}},
		{"lpush", []string{"LPUSH", k, "v"}},
		{"lpop", []string{"LPOP", k}},
		{"rpop", []string{"RPOP", k}},
		{"lrem", []string{"LREM", k, "0", "v"}},
		{"lset", []string{"LSET", k, "0", "v"}},
		{"ltrim", []string{"LTRIM", k, "0", "1"}},
		{"hdel", []string{"HDEL", k, "f"}},
		{"hincrby", []string{"HINCRBY", k, "f", "1"}},
		{"srem", []string{"SREM", k, "m"}},
		{"zrem", []string{"ZREM", k, "m"}},
		{"zincrby", []string{"ZINCRBY", k, "1", "m"}},
		{"xdel", []string{"XDEL", k, "0-1"}},
		{"xtrim", []string{"XTRIM", k, "MAXLEN", "0"}},
		{"xack", []string{"XACK", k, "g", "0-1"}},
		{"unlink", []string{"UNLINK", k}},
		{"rename", []string{"RENAME", k, k}},
		{"persist", []string{"PERSIST", k}},
		{"pexpire", []string{"PEXPIRE", k, "1"}},
		{"mset", []string{"MSET", k, "v"}},
		{"setrange", []string{"SETRANGE", k, "0", "v"}},
		{"setbit", []string{"SETBIT", k, "0", "1"}},
		{"pfadd", []string{"PFADD", k, "e"}},
		{"flushdb", []string{"FLUSHDB"}},
		{"flushall", []string{"FLUSHALL"}},
		{"function|load", []string{"FUNCTION", "LOAD", "x"}},
		{"script|load", []string{"SCRIPT", "LOAD", "return 1"}},
		{"evalsha", []string{"EVALSHA", "0000000000000000000000000000000000000000", "1", k}},
	}
	if !cluster {
		stream = append(stream, probe{"swapdb", []string{"SWAPDB", "0", "1"}})
	}
	return required, stream
}

func (r *run) targetACL() {
	// The checkpoint key: every user resync writes as must be allowed it.
	k := checkpoint.Key(r.prefix, r.cfg.Name, "")
	for _, n := range r.dst.up() {
		required, stream := targetProbes(k, r.dst.cluster, n.version.AtLeast(7, 4))
		if !r.aclPrecheck("target-acl", n, "RESTORE, MULTI/EXEC and the data commands", required) {
			continue
		}
		d := dryRun(n, required)
		if d.unchecked != "" {
			r.add("target-acl", n, Warn, "cannot be checked: "+d.unchecked,
				fmt.Sprintf("make sure user %q may run: %s", n.user(), strings.Join(probeNames(required), ", ")))
			continue
		}
		ds := dryRun(n, stream)
		var why []string
		verdict := Pass
		if len(d.commands) > 0 {
			verdict = Fail
			why = append(why, fmt.Sprintf("user %q may not run %s, which resync sends to write the full sync and its checkpoints", n.user(), strings.Join(d.commands, ", ")))
		}
		if d.keys {
			verdict = Fail
			why = append(why, fmt.Sprintf("user %q may not write resync's own keys (%s*: checkpoints, lock)", n.user(), r.prefix))
		}
		if len(d.missing) > 0 {
			verdict = Fail
			why = append(why, "the target has no command "+strings.Join(d.missing, ", ")+" (renamed or disabled)")
		}
		if len(ds.commands) > 0 || len(ds.missing) > 0 {
			if verdict == Pass {
				verdict = Warn
			}
			why = append(why, fmt.Sprintf("user %q may not run %s: the sync stops if the source's writes include one",
				n.user(), strings.Join(append(ds.commands, ds.missing...), ", ")))
		}
		if verdict == Pass {
			r.add("target-acl", n, Pass, fmt.Sprintf("user %q may run what resync sends (RESTORE, MULTI/EXEC, the data commands) and write resync's keys", n.user()), "")
			continue
		}
		keys := ""
		if d.keys {
			keys = r.prefix + "*"
		}
		var fixes []string
		if grant := append(slices.Clone(d.commands), ds.commands...); len(grant) > 0 || keys != "" {
			fixes = append(fixes, setUser(n.user(), grant, keys))
		}
		if len(d.missing)+len(ds.missing) > 0 {
			fixes = append(fixes, "give renamed commands back their names (rename-command in redis.conf)")
		}
		fix := strings.Join(fixes, "; ")
		r.add("target-acl", n, verdict, strings.Join(why, "; "), fix)
	}
}
