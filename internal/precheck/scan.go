package precheck

import (
	"fmt"
	"strings"

	"github.com/resync/resync/internal/keyevents"
)

// scanInstead ends the fix of a source that will not replicate: where
// that cannot change (a managed service, a proxy), scan mode is the way.
const scanInstead = "; where replication cannot be allowed (a managed service, a proxy), --source-mode scan copies without it (not exact: keyspace notifications, verify after)"

// replicationOnly are the checks of the replication link, which scan mode
// does not open.
var replicationOnly = []string{"source-replication-acl", "backlog", "repl-timeout", "output-buffer", "fork-memory"}

// scanMode checks what scan mode needs of the source, on each node (a
// cluster's masters are scanned and followed one by one): keyspace
// notifications on (or the user's consent to turn them on), and the
// commands it reads with; and says, always, that it cannot be exact.
func (r *run) scanMode() {
	if len(r.src.up()) == 0 {
		return // no source to check
	}
	if !r.cfg.ScanMode {
		r.addSide("scan-mode", r.src, Pass, "replication (PSYNC): scan mode not used", "")
		return
	}
	r.addSide("scan-mode", r.src, Warn, "scan mode cannot be exact: a lost notification (the subscriber's output buffer, a dropped link: everything is then copied again), a key written during its own copy, and what notifies no key (FLUSHALL, FLUSHDB, SWAPDB, a consumer group's reads) can leave differences",
		"run resync verify once the writes stop (--repair mends what differs); prefer PSYNC where it can be allowed")
	probes := []probe{
		{"scan", []string{"SCAN", "0"}},
		{"dump", []string{"DUMP", r.heartbeatKey()}},
		{"psubscribe", []string{"PSUBSCRIBE", "__keyspace@*__:*"}},
		{"multi", []string{"MULTI"}},
	}
	for _, n := range r.src.up() {
		v, err := n.do("CONFIG", "GET", "notify-keyspace-events")
		flags := ""
		if len(v.Elems) == 2 {
			flags = v.Elems[1].Text()
		}
		switch {
		case err != nil || len(v.Elems) != 2:
			r.add("scan-mode", n, Warn, fmt.Sprintf("cannot read notify-keyspace-events (%v)", err),
				"make sure the source publishes keyspace notifications of every class (notify-keyspace-events KA)")
		case !keyevents.Complete(flags) && !r.cfg.EnableNotifications:
			r.add("scan-mode", n, Fail, fmt.Sprintf("keyspace notifications are off (notify-keyspace-events %q): scan mode follows changes through them", flags),
				"run with --enable-notifications to let resync turn them on, or CONFIG SET notify-keyspace-events "+keyevents.Completed(flags))
		case !keyevents.Complete(flags):
			r.add("scan-mode", n, Warn, fmt.Sprintf("keyspace notifications are off (notify-keyspace-events %q): resync will turn them on (--enable-notifications), which costs the source some CPU", flags),
				"turn them off again once the task is over: CONFIG SET notify-keyspace-events "+fmt.Sprintf("%q", flags))
		}
		if !r.aclPrecheck("scan-mode", n, "SCAN, DUMP, PSUBSCRIBE and MULTI", probes) {
			continue
		}
		d := dryRun(n, probes)
		switch {
		case d.unchecked != "":
			r.add("scan-mode", n, Warn, "cannot be checked: "+d.unchecked, setUser(n.user(), probeNames(probes), ""))
		case !d.none():
			denied := append(d.commands, d.missing...)
			if d.keys {
				denied = append(denied, "keys")
			}
			r.add("scan-mode", n, Fail, fmt.Sprintf("user %q may not run %s: scan mode reads with SCAN, DUMP, PSUBSCRIBE and MULTI", n.user(), strings.Join(denied, ", ")),
				setUser(n.user(), probeNames(probes), ""))
		default:
			r.add("scan-mode", n, Pass, fmt.Sprintf("user %q may run SCAN, DUMP, PSUBSCRIBE and MULTI", n.user()), "")
		}
	}
}
