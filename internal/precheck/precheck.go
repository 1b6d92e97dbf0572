// Package precheck tells an operator, before a sync starts, whether the
// source and target are fit for it: reachable and logged in, versions
// resync supports, the permissions resync needs, room on the target, no
// conflicting data, and source settings that keep a long sync from
// starting over. Each check has a stable name, a verdict per node (or per
// pair), the reason with its figures, and the fix.
//
// The checks only read. Permissions are checked with ACL DRYRUN, never by
// running the command, so a check leaves both servers as it found them.
// A cluster is checked master by master (its replicas are not written or
// read by a sync). A node that cannot be reached or logged in to fails
// reachable or auth, and the checks that need it are left out.
//
//	reachable, auth          each node answers and lets us log in; why not, precisely
//	source-version           2.8 to 7.4 supported, later WARN, older FAIL
//	target-version           older than the source (RDB version): WARN, values rewritten
//	target-role              a target replica refuses writes: FAIL
//	same-server              source and target share a run_id: FAIL
//	replication-loop         one replicates the other: FAIL
//	cluster-slots            every slot served, cluster_state:ok, as each master sees it
//	cluster-masters          every master reachable with the same credentials
//	cluster-dbs              source dbs other than 0 with keys into a cluster: FAIL
//	source-replication-acl   PSYNC and REPLCONF allowed (ACL DRYRUN, 7.0+); scan mode: not needed
//	scan-mode                scan mode only: a standalone source, keyspace notifications on (or
//	                         --enable-notifications), SCAN, DUMP and PSUBSCRIBE allowed; and
//	                         always a WARN that it cannot be exact
//	source-heartbeat-acl     SET on the heartbeat key allowed, else the lag is unknown
//	target-acl               what resync sends allowed; stream commands denied: WARN
//	unsupported-types        streams before 5.0, hash field TTLs before 7.4, functions before 7.0
//	modules                  a source module the target lacks
//	conflict                 intercept: written target dbs empty (or the task resumes)
//	eviction-policy          a target that evicts loses synced data: WARN
//	target-memory            free memory against the source's data (a master's share)
//	backlog, repl-timeout,   source replication settings that make a sync start over
//	output-buffer
//	fork-memory              room on the source's machine for a fork's copy-on-write
//	clock                    source and target clocks within a second (absolute TTLs)
package precheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
)

// Verdict is the outcome of one check on one node.
type Verdict string

// The verdicts. A WARN never stops a sync; a FAIL does.
const (
	Pass Verdict = "PASS"
	Warn Verdict = "WARN"
	Fail Verdict = "FAIL"
)

// Result is one check's verdict on one node, or on the pair.
type Result struct {
	// Check is the check's stable name, the one --skip-check takes.
	Check string `json:"check"`
	// Node is "source HOST:PORT" or "target HOST:PORT", "" for a check
	// of the pair.
	Node    string  `json:"node"`
	Verdict Verdict `json:"verdict"`
	// Why is one line in plain words, with the figures.
	Why string `json:"why"`
	// Fix says what to do; empty for a PASS.
	Fix string `json:"fix,omitempty"`
}

// Conflict rules, as resync sync's --on-conflict takes them (the task
// package's ConflictIntercept and ConflictOverwrite).
const (
	ConflictIntercept = "intercept"
	ConflictOverwrite = "overwrite"
)

// DefaultReservedPrefix is where resync keeps its own keys when the
// filter names no other prefix.
const DefaultReservedPrefix = "resync:"

// Config is what to check: the two endpoints and the task's settings that
// decide what the sync will need of them.
type Config struct {
	Source, Target dialer.Options
	// Name is the task's name: a target holding its checkpoint is a task
	// being resumed, not a conflict.
	Name string
	// Filter selects and maps the databases (DBs, MapDB) and names the
	// reserved prefix; its Databases is read from the source.
	Filter filter.Config
	// OnConflict is ConflictIntercept (the default when "") or
	// ConflictOverwrite.
	OnConflict string
	// Reset: the sync will forget the task's checkpoint, so a target
	// holding it is checked for conflicts like any other.
	Reset bool
	// DropUnsupported: what the target cannot hold is dropped, so it is a
	// WARN instead of a FAIL.
	DropUnsupported bool
	// Skip names checks waived by the operator; each is reported as a
	// WARN so that the waiver shows. See Names.
	Skip []string
	// ScanMode: the sync copies by SCAN and follows keyspace
	// notifications instead of replicating (task.SourceScan);
	// EnableNotifications lets it turn those on.
	ScanMode, EnableNotifications bool
}

// The checks, in the order they are reported.
var checkNames = []string{
	"reachable", "auth",
	"source-version", "target-version", "target-role",
	"same-server", "replication-loop",
	"cluster-slots", "cluster-masters", "cluster-dbs",
	"source-replication-acl", "scan-mode", "source-heartbeat-acl", "target-acl",
	"unsupported-types", "modules", "conflict",
	"eviction-policy", "target-memory",
	"backlog", "repl-timeout", "output-buffer", "fork-memory",
	"clock",
}

// unwaivable checks cannot be skipped: nothing else can run without them.
var unwaivable = []string{"reachable", "auth"}

// Names returns the names of every check, in report order.
func Names() []string { return slices.Clone(checkNames) }

// Validate checks the configuration: the conflict rule, and that every
// name in Skip is a check that can be waived. Its errors are usage errors.
func (c Config) Validate() error {
	var errs []error
	switch c.OnConflict {
	case "", ConflictIntercept, ConflictOverwrite:
	default:
		errs = append(errs, fmt.Errorf("on-conflict %q: want %s or %s", c.OnConflict, ConflictIntercept, ConflictOverwrite))
	}
	for _, name := range c.Skip {
		switch {
		case slices.Contains(unwaivable, name):
			errs = append(errs, fmt.Errorf("--skip-check %s: %s cannot be waived: no other check runs without it", name, name))
		case !slices.Contains(checkNames, name):
			errs = append(errs, fmt.Errorf("--skip-check %q: no such check; the checks are: %s", name, strings.Join(checkNames, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Report is every result of a run, in check order.
type Report struct {
	Results []Result `json:"results"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Verdict == Fail {
			return true
		}
	}
	return false
}

// Counts returns how many checks passed, warned and failed.
func (r Report) Counts() (passed, warnings, failed int) {
	for _, res := range r.Results {
		switch res.Verdict {
		case Pass:
			passed++
		case Warn:
			warnings++
		case Fail:
			failed++
		}
	}
	return passed, warnings, failed
}

// Find returns the results of one check, for callers (and tests) that
// look at one.
func (r Report) Find(check string) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Check == check {
			out = append(out, res)
		}
	}
	return out
}

// WriteText writes the report as an aligned table — verdict, check, node,
// why — with each WARN's and FAIL's fix on the line below, then a summary.
func (r Report) WriteText(w io.Writer) {
	rows := [][3]string{{"VERDICT", "CHECK", "NODE"}}
	for _, res := range r.Results {
		node := res.Node
		if node == "" {
			node = "-"
		}
		rows = append(rows, [3]string{string(res.Verdict), res.Check, node})
	}
	var width [3]int
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len(cell))
		}
	}
	line := func(row [3]string, why string) {
		fmt.Fprintf(w, "%-*s  %-*s  %-*s  %s\n", width[0], row[0], width[1], row[1], width[2], row[2], why)
	}
	line(rows[0], "WHY")
	for i, res := range r.Results {
		line(rows[i+1], oneLine(res.Why))
		if res.Verdict != Pass && res.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", oneLine(res.Fix))
		}
	}
	p, wa, f := r.Counts()
	fmt.Fprintf(w, "%d passed, %d %s, %d failed\n", p, wa, plural(wa, "warning", "warnings"), f)
}

// oneLine keeps a server's multi-line message on one line of the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Run runs every check that is not waived and returns the report. It
// never fails as a whole: an endpoint it cannot reach is a result, and
// the checks that need it are left out (the report says so). An invalid
// Config is reported as a FAIL of check "config".
func Run(ctx context.Context, c Config) Report {
	if err := c.Validate(); err != nil {
		return Report{Results: []Result{{Check: "config", Verdict: Fail, Why: oneLine(err.Error()), Fix: "correct the options"}}}
	}
	r := newRun(ctx, c)
	defer r.close()
	r.run()
	return Report{Results: r.results}
}
