package precheck

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
)

// run is one precheck: the connections, and the results so far.
type run struct {
	ctx      context.Context
	cfg      Config
	prefix   string // the reserved prefix
	src, dst *side
	filter   *filter.Filter
	// sourceDBs is the source's number of databases (1 for a cluster).
	sourceDBs int
	results   []Result
}

func newRun(ctx context.Context, c Config) *run {
	if c.OnConflict == "" {
		c.OnConflict = ConflictIntercept
	}
	if c.Name == "" {
		c.Name = "default"
	}
	r := &run{ctx: ctx, cfg: c, prefix: c.Filter.ReservedPrefix}
	if r.prefix == "" {
		r.prefix = DefaultReservedPrefix
	}
	return r
}

func (r *run) close() {
	r.src.close()
	r.dst.close()
}

// add records one result; a PASS carries no fix.
func (r *run) add(check string, n *node, v Verdict, why, fix string) {
	res := Result{Check: check, Verdict: v, Why: why, Fix: fix}
	if n != nil {
		res.Node = n.label()
	}
	if v == Pass {
		res.Fix = ""
	}
	r.results = append(r.results, res)
}

// addSide records a result about a whole side (a cluster's slot map).
func (r *run) addSide(check string, s *side, v Verdict, why, fix string) {
	r.add(check, s.seed, v, why, fix)
}

func (r *run) run() {
	r.src = connect(r.ctx, "source", r.cfg.Source)
	r.dst = connect(r.ctx, "target", r.cfg.Target)
	// A stop cuts a check short (a SCAN of a big keyspace): the
	// connections close, and what is left reports itself canceled.
	src, dst := r.src, r.dst
	defer context.AfterFunc(r.ctx, func() {
		src.close()
		dst.close()
	})()
	r.reachability()
	if !r.buildFilter() {
		return
	}
	checks := map[string]func(){
		"source-version":         r.sourceVersion,
		"target-version":         r.targetVersion,
		"target-role":            r.targetRole,
		"same-server":            r.sameServer,
		"replication-loop":       r.replicationLoop,
		"cluster-slots":          r.clusterSlots,
		"cluster-masters":        r.clusterMasters,
		"cluster-dbs":            r.clusterDBs,
		"source-replication-acl": r.sourceReplicationACL,
		"scan-mode":              r.scanMode,
		"source-heartbeat-acl":   r.sourceHeartbeatACL,
		"target-acl":             r.targetACL,
		"unsupported-types":      r.unsupportedTypes,
		"modules":                r.modules,
		"conflict":               r.conflict,
		"eviction-policy":        r.evictionPolicy,
		"target-memory":          r.targetMemory,
		"backlog":                r.backlog,
		"repl-timeout":           r.replTimeout,
		"output-buffer":          r.outputBuffer,
		"fork-memory":            r.forkMemory,
		"clock":                  r.clock,
	}
	for _, name := range checkNames {
		fn, ok := checks[name]
		if !ok {
			continue // reachable and auth ran first
		}
		if slices.Contains(r.cfg.Skip, name) {
			r.add(name, nil, Warn, "waived by --skip-check "+name+": not checked", "drop --skip-check "+name+" to check it")
			continue
		}
		if r.ctx.Err() != nil {
			r.add(name, nil, Warn, "not checked: the precheck was canceled", "")
			continue
		}
		if r.cfg.ScanMode && slices.Contains(replicationOnly, name) {
			r.add(name, nil, Pass, "scan mode: no replication link, nothing to check", "")
			continue
		}
		fn()
	}
}

// buildFilter reads the source's number of databases and builds the
// filter that says which source databases go to which target databases.
func (r *run) buildFilter() bool {
	r.sourceDBs = 0 // the filter's default (16) when the source is down
	if r.src.cluster {
		r.sourceDBs = 1
	} else if n := r.src.seed; n.up() {
		if v, err := n.config("databases"); err == nil {
			fmt.Sscan(v, &r.sourceDBs)
		}
	}
	fc := r.cfg.Filter
	fc.ReservedPrefix, fc.Databases = r.prefix, r.sourceDBs
	var err error
	if r.filter, err = filter.New(fc); err != nil {
		r.add("config", nil, Fail, oneLine(err.Error()), "correct the database selection (--dbs, --map-db)")
		return false
	}
	return true
}

// reachability reports, for every node, whether it answers and whether
// it let us log in. A node that does neither is left out of every other
// check, and its result says so.
func (r *run) reachability() {
	const notRun = "; the checks that need it were not run"
	var nodes []*node
	for _, s := range []*side{r.src, r.dst} {
		if s.cluster && s.seed.up() && !slices.Contains(s.nodes, s.seed) && s.topErr == nil {
			nodes = append(nodes, s.seed) // a replica named in the URL: it answered too
		}
		nodes = append(nodes, s.nodes...)
	}
	for _, n := range nodes {
		switch {
		case n.up():
			r.add("reachable", n, Pass, "connected: "+describe(n), "")
		case loginFailure(n.err):
			r.add("reachable", n, Pass, "the server answers", "")
		default:
			why, fix := explainDial(n)
			r.add("reachable", n, Fail, why+notRun, fix)
		}
	}
	for _, n := range nodes {
		switch {
		case n.up():
			r.add("auth", n, Pass, "logged in as "+loginName(n), "")
		case loginFailure(n.err):
			why, fix := explainLogin(r.ctx, n)
			r.add("auth", n, Fail, why+notRun, fix)
		}
	}
}

// describe says what a node is: version and role.
func describe(n *node) string {
	role := "standalone"
	switch {
	case n.info["cluster_enabled"] == "1" && n.info["role"] == "master":
		role = "cluster master"
	case n.info["cluster_enabled"] == "1":
		role = "cluster replica"
	case n.info["role"] == "slave":
		role = fmt.Sprintf("replica of %s:%s", n.info["master_host"], n.info["master_port"])
	}
	return fmt.Sprintf("Redis %s, %s", n.version, role)
}

// loginName says how a node was logged in to.
func loginName(n *node) string {
	switch {
	case n.opts.Username != "":
		return fmt.Sprintf("user %q", n.opts.Username)
	case n.opts.Password != "":
		return "the default user, with its password"
	}
	return "the default user (the server asks no password)"
}

// explainDial says why a node could not be reached, and the fix.
func explainDial(n *node) (why, fix string) {
	side, err := n.side, n.err
	why = errText(n, err)
	var ie *infoError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &ie):
		why = "logged in, but INFO is refused: " + errText(n, ie.err)
		fix = fmt.Sprintf("resync needs INFO: ACL SETUSER %s +info", n.user())
	case errors.Is(err, dialer.ErrTLS) && errors.As(err, &unknownCA):
		why = "TLS: certificate not trusted: the server's certificate is signed by an unknown authority"
		fix = "check --" + side + "-tls-ca: give the CA certificate that signed the server's"
	case errors.Is(err, dialer.ErrTLS) && errors.As(err, &hostErr):
		why = "TLS: the server's certificate is not valid for " + hostErr.Host
		fix = "connect by a name the certificate holds, or give one with --" + side + "-tls-server-name"
	case errors.Is(err, dialer.ErrTLS):
		fix = "check the --" + side + " scheme (rediss:// for a TLS port, redis:// for a plain one) and, if the server requires a client certificate, --" + side + "-tls-cert and --" + side + "-tls-key"
	case isNoPerm(err):
		why = "logged in, but " + why
		fix = fmt.Sprintf("resync needs that command: ACL SETUSER %s +%s", n.user(), deniedCommand(err))
	case errors.Is(err, dialer.ErrRefused):
		fix = "check the host and port in --" + side + ", and that redis-server runs there"
	case errors.Is(err, dialer.ErrTimeout), errors.Is(err, dialer.ErrUnreachable):
		fix = "check the host and port in --" + side + ", the network path and firewalls between here and the server"
	case errors.Is(err, dialer.ErrClosed):
		fix = "check the scheme (rediss:// for a TLS port) and the server's maxclients"
	case errors.Is(err, dialer.ErrNotReady):
		fix = "wait until the server has loaded its data, then check again"
	case errors.Is(err, dialer.ErrCanceled):
		fix = "run the check again"
	default:
		fix = "check --" + side + " and the server's log"
	}
	return why, fix
}

// both reports whether each side has at least one node up, for checks of
// the pair.
func (r *run) both() bool { return len(r.src.up()) > 0 && len(r.dst.up()) > 0 }

func (r *run) sourceVersion() {
	for _, n := range r.src.up() {
		v := n.version
		switch {
		case !v.AtLeast(2, 8):
			r.add("source-version", n, Fail, fmt.Sprintf("Redis %s: resync needs 2.8 or newer (PSYNC came with 2.8)", v),
				"upgrade the source to 2.8 or newer")
		case v.AtLeast(7, 5):
			r.add("source-version", n, Warn, fmt.Sprintf("Redis %s is newer than the versions resync knows (2.8 to 7.4): its snapshot may hold encodings resync cannot read", v),
				"try a sync of a copy first: resync stops with a clear error on data it cannot read")
		default:
			r.add("source-version", n, Pass, fmt.Sprintf("Redis %s (2.8 to 7.4 supported)", v), "")
		}
	}
}

// isNoPerm reports whether err is an ACL denial (NOPERM).
func isNoPerm(err error) bool {
	re, ok := replyError(err)
	return ok && re.Code() == "NOPERM"
}

// deniedCommand picks the command out of a NOPERM message: "... to run
// the 'ping' command".
func deniedCommand(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "run the '"); ok {
		if name, _, ok := strings.Cut(rest, "'"); ok {
			return name
		}
	}
	return "<command>"
}
