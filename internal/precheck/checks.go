package precheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/resync/resync/internal/resp"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
)

// newestSource is the newest version among the source's nodes.
func (r *run) newestSource() redisproc.Version {
	var v redisproc.Version
	for _, n := range r.src.up() {
		if n.version.AtLeastPatch(v.Major, v.Minor, v.Patch) {
			v = n.version
		}
	}
	return v
}

// oldestTarget is the oldest version among the target's nodes.
func (r *run) oldestTarget() redisproc.Version {
	var v redisproc.Version
	for i, n := range r.dst.up() {
		if i == 0 || !n.version.AtLeastPatch(v.Major, v.Minor, v.Patch) {
			v = n.version
		}
	}
	return v
}

func (r *run) targetVersion() {
	src := r.newestSource()
	for _, n := range r.dst.up() {
		v := n.version
		switch {
		case !v.AtLeast(2, 8):
			r.add("target-version", n, Fail, fmt.Sprintf("Redis %s: resync writes to 2.8 or newer", v), "upgrade the target to 2.8 or newer")
		case v.AtLeast(7, 5):
			r.add("target-version", n, Warn, fmt.Sprintf("Redis %s is newer than the versions resync knows (2.8 to 7.4)", v),
				"try a sync into it on a copy first")
		case len(r.src.up()) > 0 && rdb.LoadsVersion(v.Major, v.Minor) < rdb.LoadsVersion(src.Major, src.Minor):
			r.add("target-version", n, Warn, fmt.Sprintf("Redis %s is older than the source's %s and cannot load its values as they are: values will be rewritten as commands (slower)", v, src),
				fmt.Sprintf("for the fastest full sync use a target of Redis %d.%d or newer", src.Major, src.Minor))
		default:
			r.add("target-version", n, Pass, fmt.Sprintf("Redis %s loads the source's values as they are (RESTORE)", v), "")
		}
	}
}

func (r *run) targetRole() {
	for _, n := range r.dst.up() {
		if n.info["role"] != "slave" {
			r.add("target-role", n, Pass, "a master: it takes writes", "")
			continue
		}
		master := net.JoinHostPort(n.info["master_host"], n.info["master_port"])
		r.add("target-role", n, Fail, fmt.Sprintf("a replica of %s: it refuses resync's writes (READONLY), or loses them when it next syncs with its master", master),
			fmt.Sprintf("point --target at a master (this one's is %s), or detach this server first: REPLICAOF NO ONE", master))
	}
}

func (r *run) sameServer() {
	if !r.both() {
		return
	}
	same := false
	for _, s := range r.src.up() {
		for _, t := range r.dst.up() {
			if id := s.info["run_id"]; id != "" && id == t.info["run_id"] {
				same = true
				r.add("same-server", nil, Fail, fmt.Sprintf("source %s and target %s are the same server (run_id %s): resync would read back its own writes", s.opts.Addr, t.opts.Addr, short(id)),
					"point --target at another server")
			}
		}
	}
	if !same {
		r.add("same-server", nil, Pass, "the source and the target are different servers (their run_ids differ)", "")
	}
}

// short abbreviates a 40-character id.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func (r *run) replicationLoop() {
	if !r.both() {
		return
	}
	found := false
	for _, s := range r.src.up() {
		for _, t := range r.dst.up() {
			if s.info["run_id"] == t.info["run_id"] {
				continue // same-server says it
			}
			switch {
			case replicaOf(r.ctx, t, s):
				found = true
				r.add("replication-loop", nil, Fail, fmt.Sprintf("target %s is a replica of source %s: it takes the source's writes from it already, and refuses resync's (READONLY)", t.opts.Addr, s.opts.Addr),
					fmt.Sprintf("choose a target that does not replicate the source, or detach it first (REPLICAOF NO ONE on %s; with --on-conflict intercept, empty it too)", t.opts.Addr))
			case replicaOf(r.ctx, s, t):
				found = true
				r.add("replication-loop", nil, Fail, fmt.Sprintf("source %s is a replica of target %s: what resync writes to the target would come back to the source, and round again", s.opts.Addr, t.opts.Addr),
					"choose a target that is not the source's master")
			}
		}
	}
	if !found {
		r.add("replication-loop", nil, Pass, "neither side replicates the other", "")
	}
}

// replicaOf reports whether replica replicates master: by its own INFO
// (master_host and master_port), by the master's list of replicas, or
// (PSYNC2, 4.0+) by their sharing a replication id.
func replicaOf(ctx context.Context, replica, master *node) bool {
	if replica.info["role"] == "slave" {
		if sameAddr(ctx, net.JoinHostPort(replica.info["master_host"], replica.info["master_port"]), master.opts.Addr) {
			return true
		}
		if id := master.info["master_replid"]; id != "" && id == replica.info["master_replid"] {
			return true
		}
	}
	for field, value := range master.info {
		if !strings.HasPrefix(field, "slave") || strings.Contains(field, "_") {
			continue
		}
		var ip, port string
		for kv := range strings.SplitSeq(value, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "ip":
				ip = v
			case "port":
				port = v
			}
		}
		if ip != "" && sameAddr(ctx, net.JoinHostPort(ip, port), replica.opts.Addr) {
			return true
		}
	}
	return false
}

// sameAddr reports whether two host:port addresses reach the same place:
// same port, and hosts equal, both loopback, or resolving to a common IP.
func sameAddr(ctx context.Context, a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if strings.EqualFold(ha, hb) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips := func(h string) []string {
		if ip := net.ParseIP(h); ip != nil {
			return []string{ip.String()}
		}
		out, _ := net.DefaultResolver.LookupHost(ctx, h)
		return out
	}
	loop := func(ip string) bool { p := net.ParseIP(ip); return p != nil && p.IsLoopback() }
	for _, x := range ips(ha) {
		for _, y := range ips(hb) {
			if x == y || loop(x) && loop(y) {
				return true
			}
		}
	}
	return false
}

// clusterSlots checks that each cluster side serves every slot, as each
// of its masters sees it: a master that dropped slots still appears to
// serve them in the others' maps.
func (r *run) clusterSlots() {
	for _, s := range []*side{r.src, r.dst} {
		if !s.cluster {
			continue
		}
		if s.topErr != nil {
			r.addSide("cluster-slots", s, Fail, "cannot read the cluster's slot map: "+errText(s.seed, s.topErr),
				"check the cluster with redis-cli --cluster check "+s.seed.opts.Addr)
			continue
		}
		uncovered := map[int]bool{}
		var seenBy, notOK []string
		for _, n := range s.up() {
			host, _, _ := net.SplitHostPort(n.opts.Addr)
			v, err := n.do("CLUSTER", "NODES")
			if err != nil {
				notOK = append(notOK, "CLUSTER NODES failed on "+n.opts.Addr+": "+errText(n, err))
				continue
			}
			missing := 0
			if top, err := cluster.ParseNodes(v.Text(), host); err != nil {
				for slot := range cluster.Slots {
					uncovered[slot] = true
				}
				missing = cluster.Slots
			} else {
				for slot := range cluster.Slots {
					if top.Owner(slot) < 0 {
						uncovered[slot] = true
						missing++
					}
				}
			}
			if missing > 0 {
				seenBy = append(seenBy, n.opts.Addr)
			}
			if ci, err := n.do("CLUSTER", "INFO"); err == nil {
				if st := redisproc.InfoField(ci.Text(), "cluster_state"); st != "ok" {
					notOK = append(notOK, fmt.Sprintf("cluster_state:%s on %s", st, n.opts.Addr))
				}
			}
		}
		if len(uncovered) == 0 && len(notOK) == 0 {
			r.addSide("cluster-slots", s, Pass, fmt.Sprintf("all %d slots are served by %d masters; cluster_state:ok", cluster.Slots, len(s.nodes)), "")
			continue
		}
		var why []string
		if len(uncovered) > 0 {
			why = append(why, fmt.Sprintf("slots %s (%d in all) are served by no master (as %s sees it)", slotRanges(uncovered), len(uncovered), strings.Join(seenBy, ", ")))
		}
		why = append(why, notOK...)
		r.addSide("cluster-slots", s, Fail, strings.Join(why, "; "),
			"assign every slot to a master (redis-cli --cluster fix "+s.seed.opts.Addr+"), then check again")
	}
}

// slotRanges writes a set of slots as ranges: "0-99, 200".
func slotRanges(set map[int]bool) string {
	slots := slices.Sorted(maps.Keys(set))
	var parts []string
	for i := 0; i < len(slots); {
		j := i
		for j+1 < len(slots) && slots[j+1] == slots[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(slots[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", slots[i], slots[j]))
		}
		i = j + 1
	}
	if len(parts) > 8 {
		parts = append(parts[:8], "…")
	}
	return strings.Join(parts, ", ")
}

func (r *run) clusterMasters() {
	for _, s := range []*side{r.src, r.dst} {
		if !s.cluster || s.topErr != nil {
			continue
		}
		var down []string
		for _, n := range s.nodes {
			if !n.up() {
				down = append(down, n.opts.Addr)
			}
		}
		if len(down) == 0 {
			r.addSide("cluster-masters", s, Pass, fmt.Sprintf("all %d masters reachable and logged in with the %s's credentials", len(s.nodes), s.name), "")
			continue
		}
		r.addSide("cluster-masters", s, Fail, fmt.Sprintf("%d of %d masters cannot be reached or logged in to with the %s's credentials: %s", len(down), len(s.nodes), s.name, strings.Join(down, ", ")),
			"every master must be reachable from here and accept the same user and password: see their reachable and auth results")
	}
}

// sourceDBsWithKeys lists the databases that hold keys on any source node.
func (r *run) sourceDBsWithKeys() []int {
	seen := map[int]bool{}
	for _, n := range r.src.up() {
		for db, st := range n.keyspace() {
			if st.keys > 0 {
				seen[db] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (r *run) clusterDBs() {
	if !r.dst.cluster || len(r.src.up()) == 0 {
		return
	}
	var other []string
	for _, db := range r.sourceDBsWithKeys() {
		if to, ok := r.filter.DB(db); ok && to != 0 {
			other = append(other, strconv.Itoa(db))
		}
	}
	if len(other) > 0 {
		r.add("cluster-dbs", nil, Fail, fmt.Sprintf("the target is a cluster, which has db 0 only, and source databases %s hold keys", strings.Join(other, ", ")),
			"select db 0 alone with --dbs 0, or map them into it with --map-db N:0 (with --allow-db-merge for several)")
		return
	}
	r.add("cluster-dbs", nil, Pass, "every selected source database with keys goes to db 0, the only one a cluster has", "")
}

// unsupportedTypes counts what the target cannot hold at all: streams
// before 5.0, hash field TTLs before 7.4, functions before 7.0.
func (r *run) unsupportedTypes() {
	if !r.both() {
		return
	}
	tv := r.oldestTarget()
	for _, n := range r.src.up() {
		// problems fail the check, each with its fix; dropped only warn.
		var problems, fixes, dropped []string
		if n.version.AtLeast(5, 0) && !tv.AtLeast(5, 0) {
			count, err := r.countStreams(n)
			switch {
			case err != nil:
				r.add("unsupported-types", n, Warn, "cannot count the source's streams: "+errText(n, err),
					fmt.Sprintf("the target (Redis %s) cannot hold streams: make sure the selected databases hold none", tv))
				continue
			case count > 0 && r.cfg.DropUnsupported:
				dropped = append(dropped, fmt.Sprintf("%d %s will be dropped (Redis %s has no streams; they came with 5.0)", count, plural(count, "stream", "streams"), tv))
			case count > 0:
				problems = append(problems, fmt.Sprintf("%d %s, which Redis %s cannot hold (streams came with 5.0)", count, plural(count, "stream", "streams"), tv))
				fixes = append(fixes, "for the streams, a target of 5.0 or newer, or --drop-unsupported to drop them (counted and logged)")
			}
		}
		if n.version.AtLeast(7, 4) && !tv.AtLeast(7, 4) {
			count := 0
			for db, st := range n.keyspace() {
				if _, ok := r.filter.DB(db); ok {
					count += int(st.subexpiry)
				}
			}
			switch {
			case count > 0 && r.cfg.DropUnsupported:
				dropped = append(dropped, fmt.Sprintf("the field TTLs of %d %s will be dropped, the fields kept without them (Redis %s has no hash field TTLs; they came with 7.4)", count, plural(count, "hash", "hashes"), tv))
			case count > 0:
				problems = append(problems, fmt.Sprintf("%d %s with field TTLs, which Redis %s cannot hold (hash field TTLs came with 7.4)", count, plural(count, "hash", "hashes"), tv))
				fixes = append(fixes, "for the field TTLs, a target of 7.4 or newer, or --drop-unsupported to keep the fields without their TTLs")
			}
		}
		if libs, _ := n.int("number_of_libraries"); libs > 0 && !tv.AtLeast(7, 0) && r.filter.Command([]byte("function")) {
			// --drop-unsupported does not cover them: the sync would stop at FUNCTION LOAD.
			problems = append(problems, fmt.Sprintf("%d function %s, which Redis %s cannot load (functions came with 7.0)", libs, plural(int(libs), "library", "libraries"), tv))
			fixes = append(fixes, "for the functions, a target of 7.0 or newer, or --block-command FUNCTION to leave them out")
		}
		switch {
		case len(problems) > 0:
			r.add("unsupported-types", n, Fail, "the selected databases hold "+strings.Join(append(problems, dropped...), "; "), strings.Join(fixes, "; "))
		case len(dropped) > 0:
			r.add("unsupported-types", n, Warn, strings.Join(dropped, "; ")+" (--drop-unsupported)", "use a newer target to keep them")
		case !tv.AtLeast(7, 4) && n.version.AtLeast(5, 0):
			r.add("unsupported-types", n, Pass, fmt.Sprintf("nothing the target (Redis %s) cannot hold in the selected databases", tv), "")
		default:
			r.add("unsupported-types", n, Pass, fmt.Sprintf("the target (Redis %s) holds every type the source (Redis %s) has", tv, n.version), "")
		}
	}
}

// countStreams counts the streams of the selected databases that the key
// rules let through: SCAN's TYPE filter from 6.0, TYPE per key on 5.x.
func (r *run) countStreams(n *node) (int, error) {
	total := 0
	for db, st := range n.keyspace() {
		if _, ok := r.filter.DB(db); !ok || st.keys == 0 {
			continue
		}
		if !r.src.cluster {
			if _, err := n.do("SELECT", strconv.Itoa(db)); err != nil {
				return 0, err
			}
		}
		cursor := "0"
		for {
			args := []string{"SCAN", cursor, "COUNT", "1000"}
			if n.version.AtLeast(6, 0) {
				args = append(args, "TYPE", "stream")
			}
			v, err := n.do(args...)
			if err != nil {
				return 0, err
			}
			if len(v.Elems) != 2 {
				return 0, fmt.Errorf("SCAN: unexpected reply")
			}
			keys := v.Elems[1].Elems
			if !n.version.AtLeast(6, 0) {
				for _, k := range keys {
					n.conn.Writer().WriteCommandStrings("TYPE", k.Text())
				}
				if err := n.conn.Writer().Flush(); err != nil {
					return 0, err
				}
				// Every reply is read, even after an error: the
				// connection serves the node's other checks.
				streams := keys[:0]
				var first error
				for _, k := range keys {
					t, err := n.conn.Receive("TYPE")
					if err != nil {
						first = cmp.Or(first, err)
						continue
					}
					if t.Text() == "stream" {
						streams = append(streams, k)
					}
				}
				if first != nil {
					return 0, first
				}
				keys = streams
			}
			for _, k := range keys {
				if r.filter.Key(k.Str) {
					total++
				}
			}
			if cursor = v.Elems[0].Text(); cursor == "0" {
				break
			}
		}
	}
	return total, nil
}

// moduleList returns the names of the modules a node has loaded
// (MODULE LIST, 4.0+).
func moduleList(n *node) ([]string, error) {
	if !n.version.AtLeast(4, 0) {
		return nil, nil
	}
	v, err := n.do("MODULE", "LIST")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range v.Elems {
		// Each module is name, value pairs: a map in RESP3, a flat array in RESP2.
		for i := 0; i+1 < len(m.Elems); i += 2 {
			if m.Elems[i].Text() == "name" {
				names = append(names, m.Elems[i+1].Text())
			}
		}
	}
	return names, nil
}

func (r *run) modules() {
	if !r.both() {
		return
	}
	need := map[string]bool{}
	for _, n := range r.src.up() {
		names, err := moduleList(n)
		if err != nil {
			r.add("modules", n, Warn, "cannot list the source's modules: "+errText(n, err),
				"make sure every module the source has loaded is loaded on the target too")
			return
		}
		for _, m := range names {
			need[m] = true
		}
	}
	if len(need) == 0 {
		r.add("modules", nil, Pass, "no modules loaded on the source", "")
		return
	}
	var missing []string
	for _, t := range r.dst.up() {
		names, err := moduleList(t)
		if err != nil {
			r.add("modules", t, Warn, fmt.Sprintf("the source has modules (%s) and the target's cannot be listed: %s", strings.Join(slices.Sorted(maps.Keys(need)), ", "), errText(t, err)),
				"make sure they are loaded on the target too")
			return
		}
		for _, m := range slices.Sorted(maps.Keys(need)) {
			if !slices.Contains(names, m) {
				missing = append(missing, fmt.Sprintf("%s (not on %s)", m, t.opts.Addr))
			}
		}
	}
	switch {
	case len(missing) == 0:
		r.add("modules", nil, Pass, "the target has loaded every module the source has: "+strings.Join(slices.Sorted(maps.Keys(need)), ", "), "")
	case r.cfg.DropUnsupported:
		r.add("modules", nil, Warn, "modules loaded on the source but not on the target: "+strings.Join(missing, ", ")+"; their values will be dropped (--drop-unsupported)",
			"load the modules on the target (loadmodule in redis.conf) to keep their values")
	default:
		r.add("modules", nil, Fail, "modules loaded on the source but not on the target: "+strings.Join(missing, ", ")+"; the target cannot restore their values",
			"load the modules on the target (loadmodule in redis.conf), or --drop-unsupported to drop their values")
	}
}

// targetDBs are the target databases the sync writes.
func (r *run) targetDBs() []int {
	if r.dst.cluster {
		return []int{0}
	}
	return r.filter.TargetDBs(r.sourceDBs)
}

// homeDB is the target database of the task's own keys.
func (r *run) homeDB() int {
	if r.dst.cluster {
		return 0
	}
	return r.cfg.Target.DB
}

// resumes looks for the task's checkpoint on the target; it returns
// where it is and what it says.
func (r *run) resumes() (where *node, what string, err error) {
	for _, n := range r.dst.up() {
		if !r.dst.cluster {
			if _, err := n.do("SELECT", strconv.Itoa(r.homeDB())); err != nil {
				return nil, "", err
			}
		}
		for i, p := range checkpoint.Patterns(r.prefix, r.cfg.Name) {
			var keys []string
			if i == 0 {
				// The task's own key: one EXISTS, not a SCAN of the
				// keyspace (on a resume it is always there).
				key := checkpoint.Key(r.prefix, r.cfg.Name, "")
				v, err := n.do("EXISTS", key)
				var re *resp.RedisError
				switch {
				case errors.As(err, &re) && re.Code() == "MOVED":
					continue // a cluster master that does not serve its slot
				case errors.As(err, &re):
					// A cluster that is down answers no key
					// command; SCAN still works.
					if keys, err = n.conn.ScanMatch(p); err != nil {
						return nil, "", err
					}
				case err != nil:
					return nil, "", err
				case v.Int == 1:
					keys = []string{key}
				}
			} else if keys, err = n.conn.ScanMatch(p); err != nil {
				return nil, "", err
			}
			if len(keys) == 0 {
				continue
			}
			what = keys[0]
			if v, err := n.do("GET", keys[0]); err == nil {
				if pt, err := checkpoint.Parse(v.Text()); err == nil {
					what = fmt.Sprintf("%s: replid %s offset %d", keys[0], short(pt.ReplID), pt.Offset)
				}
			}
			return n, what, nil
		}
	}
	return nil, "", nil
}

func (r *run) conflict() {
	if len(r.dst.up()) == 0 {
		return
	}
	if !r.cfg.Reset {
		where, what, err := r.resumes()
		if err != nil {
			r.add("conflict", nil, Warn, "cannot look for the task's checkpoint on the target: "+err.Error(), "")
		} else if where != nil {
			for _, n := range r.dst.up() {
				r.add("conflict", n, Pass, fmt.Sprintf("resuming task %q: the target holds its checkpoint (%s on %s), so its keys are the task's own", r.cfg.Name, what, where.opts.Addr), "")
			}
			return
		}
	}
	dbs := r.targetDBs()
	for _, n := range r.dst.up() {
		var busy []string
		var err error
		for _, db := range dbs {
			st := n.keyspace()[db]
			if st.keys == 0 {
				continue
			}
			var own []string
			if !r.dst.cluster {
				if _, err = n.do("SELECT", strconv.Itoa(db)); err != nil {
					break
				}
			}
			if own, err = n.conn.ScanMatch(checkpoint.PrefixPattern(r.prefix)); err != nil {
				break
			}
			if k := st.keys - int64(len(own)); k > 0 {
				busy = append(busy, fmt.Sprintf("db%d holds %d %s", db, k, plural(int(k), "key", "keys")))
			}
		}
		switch {
		case err != nil:
			r.add("conflict", n, Warn, "cannot count the target's keys: "+errText(n, err), "make sure the target databases resync writes are empty")
		case len(busy) == 0:
			r.add("conflict", n, Pass, fmt.Sprintf("the target databases resync writes (%s) hold no keys (not counting resync's own, under %q)", dbRanges(dbs), r.prefix), "")
		case r.cfg.OnConflict == ConflictOverwrite:
			r.add("conflict", n, Warn, strings.Join(busy, ", ")+": keys named like the source's will be replaced, the others kept (--on-conflict overwrite)",
				"empty those databases first if the target must end up equal to the source")
		default:
			r.add("conflict", n, Fail, "the target is not empty: "+strings.Join(busy, ", ")+" (not counting resync's own keys; --on-conflict intercept)",
				"empty those databases (FLUSHDB), choose another target, or use --on-conflict overwrite to replace keys of the same name and keep the others")
		}
	}
}

// dbRanges writes database numbers compactly: "db0-15", "db0, db3".
func dbRanges(dbs []int) string {
	set := map[int]bool{}
	for _, db := range dbs {
		set[db] = true
	}
	s := slotRanges(set)
	var out []string
	for p := range strings.SplitSeq(s, ", ") {
		out = append(out, "db"+p)
	}
	return strings.Join(out, ", ")
}

func (r *run) evictionPolicy() {
	for _, n := range r.dst.up() {
		policy := n.info["maxmemory_policy"] // INFO memory from 3.2
		if policy == "" {
			var err error
			if policy, err = n.config("maxmemory-policy"); err != nil {
				r.add("eviction-policy", n, Warn, "cannot read maxmemory-policy: "+errText(n, err), "make sure the target's maxmemory-policy is noeviction")
				continue
			}
		}
		if policy == "noeviction" {
			r.add("eviction-policy", n, Pass, "maxmemory-policy noeviction: a full target refuses writes (resync stops and says so) instead of losing data", "")
			continue
		}
		when := "once the target reaches maxmemory"
		if limit, ok := maxmemory(n); ok && limit == 0 {
			when = "no maxmemory is set now, but once one is and the target reaches it"
		}
		r.add("eviction-policy", n, Warn, fmt.Sprintf("maxmemory-policy is %s: %s, eviction silently loses synced data", policy, when),
			"CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)")
	}
}

// maxmemory is a node's maxmemory: from INFO memory (3.2+), else
// CONFIG GET.
func maxmemory(n *node) (int64, bool) {
	if v, ok := n.int("maxmemory"); ok {
		return v, true
	}
	v, err := n.config("maxmemory")
	if err != nil {
		return 0, false
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	return limit, err == nil
}

// dataset is a node's data size: used_memory_dataset (4.0+), else
// used_memory.
func dataset(n *node) int64 {
	if v, ok := n.int("used_memory_dataset"); ok {
		return v
	}
	v, _ := n.int("used_memory")
	return v
}

func (r *run) targetMemory() {
	if !r.both() {
		return
	}
	var data int64
	var selected, all int64
	for _, n := range r.src.up() {
		data += dataset(n)
		for db, st := range n.keyspace() {
			all += st.keys
			if _, ok := r.filter.DB(db); ok {
				selected += st.keys
			}
		}
	}
	note := ""
	if selected < all && all > 0 {
		// Only some databases go: their share of the keys is the best
		// estimate of their share of the memory.
		data = int64(float64(data) * float64(selected) / float64(all))
		note = fmt.Sprintf("; the selected databases hold %d of the source's %d keys", selected, all)
	}
	if len(r.src.up()) < len(r.src.nodes) {
		note += "; not counting the source masters that cannot be reached"
	}
	share := data
	masters := len(r.dst.nodes)
	if r.dst.cluster && masters > 1 {
		share = data / int64(masters)
	}
	for _, n := range r.dst.up() {
		used, _ := n.int("used_memory")
		limit, _ := maxmemory(n) // unknown: as if none, the machine's memory bounds it
		what := fmt.Sprintf("maxmemory %s", size(limit))
		noMax := limit == 0
		if noMax {
			var ok bool
			limit, ok = n.int("total_system_memory")
			what = fmt.Sprintf("no maxmemory; the machine's memory %s", size(limit))
			if !ok || limit == 0 {
				r.add("target-memory", n, Warn, "cannot tell how much memory the target has (no maxmemory, and Redis before 3.2 does not report the machine's)",
					fmt.Sprintf("make sure it has room for %s of source data", size(share)))
				continue
			}
		}
		free := max(limit-used, 0)
		need := fmt.Sprintf("%s of source data", size(data))
		if share != data {
			need = fmt.Sprintf("its share, %s of the %s of source data over %d masters", size(share), size(data), masters)
		}
		why := fmt.Sprintf("free %s (%s, used %s) for %s%s", size(free), what, size(used), need, note)
		// A little over the 20% the check wants: the figures move a
		// little between two looks.
		room := used + int64(math.Ceil(1.25*float64(share)))
		room = (room + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
		fix := fmt.Sprintf("raise maxmemory to at least %s: CONFIG SET maxmemory %s", size(room), configSize(room, n.version.AtLeast(3, 2)))
		if noMax {
			fix = fmt.Sprintf("a target with more memory: it needs about %s in all", size(room))
		}
		switch {
		case free < share:
			r.add("target-memory", n, Fail, why+": it does not fit", fix)
		case float64(free) < 1.2*float64(share):
			r.add("target-memory", n, Warn, why+": less than 20% to spare", fix)
		default:
			r.add("target-memory", n, Pass, why, "")
		}
	}
}

// size writes a byte count for people: "512 B", "3.2 MiB", "1.5 GiB".
func size(b int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.mult {
			s := strconv.FormatFloat(float64(b)/float64(u.mult), 'f', 1, 64)
			return strings.TrimSuffix(s, ".0") + " " + u.name
		}
	}
	return fmt.Sprintf("%d B", b)
}

// Recommended source settings.
const (
	// recBacklog: the backlog is what lets a resync restart, or a cut
	// link, continue with a partial sync instead of a new full one; 256
	// MiB holds several minutes of a busy source's writes, and costs
	// memory only as it fills.
	recBacklog = 256 << 20
	// recReplTimeout: the source drops a replica that takes no data for
	// repl-timeout seconds during a diskless transfer; resync takes none
	// while its buffers wait for a slow target (back-pressure).
	recReplTimeout = 600
	// recOutputHard, recOutputSoft, recOutputSeconds: the replica output
	// buffer holds every write made while the snapshot is produced and
	// sent; a few MB/s over a transfer of minutes is about 1 GiB. A limit
	// is a bound, not an allocation.
	recOutputHard    = 1 << 30
	recOutputSoft    = 512 << 20
	recOutputSeconds = 120
)

func (r *run) backlog() {
	for _, n := range r.src.up() {
		b, ok := n.int("repl_backlog_size")
		if !ok {
			v, err := n.config("repl-backlog-size")
			if err == nil {
				b, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				r.add("backlog", n, Warn, "cannot read repl-backlog-size: "+errText(n, err), "make sure the source's repl-backlog-size is at least 256mb")
				continue
			}
		}
		if b >= recBacklog {
			r.add("backlog", n, Pass, fmt.Sprintf("repl-backlog-size %s: a resync restart or a cut link can continue where it stopped", size(b)), "")
			continue
		}
		r.add("backlog", n, Warn, fmt.Sprintf("repl-backlog-size is %s: once more writes than that happen while resync is stopped or its link is cut, it must start over with a full sync", size(b)),
			"CONFIG SET repl-backlog-size "+configSize(recBacklog, n.version.AtLeast(3, 2))+" (and set it in redis.conf)")
	}
}

// sourceConfig reads a setting of a source node, reporting a WARN under
// check when CONFIG is refused or renamed.
func (r *run) sourceConfig(check string, n *node, name, want string) (string, bool) {
	v, err := n.config(name)
	if err != nil {
		r.add(check, n, Warn, "cannot read the source's "+name+" (CONFIG GET: "+errText(n, err)+")", "check it by hand: "+want)
		return "", false
	}
	return v, true
}

func (r *run) replTimeout() {
	for _, n := range r.src.up() {
		v, ok := r.sourceConfig("repl-timeout", n, "repl-timeout", fmt.Sprintf("repl-timeout %d or more", recReplTimeout))
		if !ok {
			continue
		}
		secs, err := strconv.Atoi(v)
		if err != nil {
			r.add("repl-timeout", n, Warn, fmt.Sprintf("repl-timeout is %q, not a number", v), fmt.Sprintf("CONFIG SET repl-timeout %d", recReplTimeout))
			continue
		}
		if secs >= recReplTimeout {
			r.add("repl-timeout", n, Pass, fmt.Sprintf("repl-timeout %d s", secs), "")
			continue
		}
		r.add("repl-timeout", n, Warn, fmt.Sprintf("repl-timeout is %d s: the source drops a replica link that takes no data for that long, as resync's can while a slow target catches up, and the sync starts over", secs),
			fmt.Sprintf("CONFIG SET repl-timeout %d (and set it in redis.conf)", recReplTimeout))
	}
}

func (r *run) outputBuffer() {
	for _, n := range r.src.up() {
		class := "replica" // "slave" is the only name before 5.0
		if !n.version.AtLeast(5, 0) {
			class = "slave"
		}
		// Before 5.0, CONFIG SET reads this setting's sizes without units
		// ("1gb" is 1 byte): bytes there.
		units := n.version.AtLeast(5, 0)
		rec := fmt.Sprintf("%s %s %s %d", class, configSize(recOutputHard, units), configSize(recOutputSoft, units), recOutputSeconds)
		fix := fmt.Sprintf("CONFIG SET client-output-buffer-limit %q (and set it in redis.conf)", rec)
		v, ok := r.sourceConfig("output-buffer", n, "client-output-buffer-limit", "client-output-buffer-limit "+rec)
		if !ok {
			continue
		}
		f := strings.Fields(v)
		var hard, soft, secs int64 = -1, -1, -1
		for i := 0; i+3 < len(f); i += 4 {
			if f[i] == "slave" || f[i] == "replica" {
				hard, _ = strconv.ParseInt(f[i+1], 10, 64)
				soft, _ = strconv.ParseInt(f[i+2], 10, 64)
				secs, _ = strconv.ParseInt(f[i+3], 10, 64)
			}
		}
		if hard < 0 {
			r.add("output-buffer", n, Warn, fmt.Sprintf("cannot find the replica class in client-output-buffer-limit %q", v), fix)
			continue
		}
		limits := fmt.Sprintf("hard %s, soft %s for %d s", limitSize(hard), limitSize(soft), secs)
		if (hard == 0 || hard >= recOutputHard) && (soft == 0 || soft >= recOutputSoft) {
			r.add("output-buffer", n, Pass, "replica output buffer limits: "+limits, "")
			continue
		}
		r.add("output-buffer", n, Warn, "replica output buffer limits are "+limits+": the source drops the link when the writes made during a full sync outgrow them, and the full sync starts over", fix)
	}
}

// configSize writes a size for CONFIG SET: with a unit ("256mb") where the
// server's CONFIG SET reads one, else in bytes.
func configSize(b int64, units bool) string {
	switch {
	case units && b > 0 && b%(1<<30) == 0:
		return strconv.FormatInt(b>>30, 10) + "gb"
	case units && b > 0 && b%(1<<20) == 0:
		return strconv.FormatInt(b>>20, 10) + "mb"
	}
	return strconv.FormatInt(b, 10)
}

func limitSize(b int64) string {
	if b == 0 {
		return "none"
	}
	return size(b)
}

func (r *run) forkMemory() {
	for _, n := range r.src.up() {
		used, _ := n.int("used_memory")
		total, ok := n.int("total_system_memory")
		if !ok || total == 0 {
			r.add("fork-memory", n, Warn, fmt.Sprintf("used_memory %s; Redis %s does not report the machine's memory", size(used), n.version),
				"make sure the source's machine has room for a fork's copy-on-write (up to used_memory again)")
			continue
		}
		why := fmt.Sprintf("used_memory %s of the machine's %s", size(used), size(total))
		if used > total/2 {
			r.add("fork-memory", n, Warn, why+": a full sync forks the source (BGSAVE), and copy-on-write can need up to used_memory again while the snapshot is written",
				"make room on the source's machine (or run the full sync at a quiet time); vm.overcommit_memory = 1 keeps the fork itself from failing")
			continue
		}
		r.add("fork-memory", n, Pass, why+": room for a fork's copy-on-write", "")
	}
}

// clockOffset is how far a node's clock is from ours, and how well that
// is known (half the round trip of TIME).
func clockOffset(n *node) (offset, uncertainty time.Duration, err error) {
	before := time.Now()
	v, err := n.do("TIME")
	after := time.Now()
	if err != nil {
		return 0, 0, err
	}
	if len(v.Elems) != 2 {
		return 0, 0, fmt.Errorf("TIME: unexpected reply")
	}
	sec, err1 := strconv.ParseInt(v.Elems[0].Text(), 10, 64)
	usec, err2 := strconv.ParseInt(v.Elems[1].Text(), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("TIME: unexpected reply")
	}
	server := time.Unix(sec, usec*1000)
	rtt := after.Sub(before)
	mid := before.Add(rtt / 2)
	return server.Sub(mid), rtt / 2, nil
}

// clockTolerance is how far the two clocks may differ.
const clockTolerance = time.Second

func (r *run) clock() {
	if !r.both() {
		return
	}
	type reading struct {
		n           *node
		off, uncert time.Duration
	}
	read := func(nodes []*node) []reading {
		var out []reading
		for _, n := range nodes {
			if off, u, err := clockOffset(n); err == nil {
				out = append(out, reading{n, off, u})
			}
		}
		return out
	}
	src, dst := read(r.src.up()), read(r.dst.up())
	if len(src) == 0 || len(dst) == 0 {
		r.add("clock", nil, Warn, "cannot read the clocks (TIME refused)", "make sure the source's and target's clocks agree (NTP)")
		return
	}
	var worst time.Duration
	var ws, wt reading
	for _, s := range src {
		for _, t := range dst {
			d := s.off - t.off
			if d < 0 {
				d = -d
			}
			// Only what the round trips cannot explain counts.
			d = max(d-s.uncert-t.uncert, 0)
			if d >= worst {
				worst, ws, wt = d, s, t
			}
		}
	}
	if worst > clockTolerance {
		r.add("clock", nil, Warn, fmt.Sprintf("the clocks of source %s and target %s differ by %s: absolute TTLs would expire early or late by that much", ws.n.opts.Addr, wt.n.opts.Addr, worst.Round(time.Millisecond)),
			"synchronize both machines' clocks (NTP, chrony)")
		return
	}
	r.add("clock", nil, Pass, fmt.Sprintf("the source's and target's clocks agree within %s", max(worst, time.Millisecond).Round(time.Millisecond)), "")
}
