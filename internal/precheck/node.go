package precheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
)

// node is one server a check talks to: a standalone server, or one master
// of a cluster.
type node struct {
	side string // "source" or "target"
	opts dialer.Options
	conn *dialer.Conn
	// err is why it could not be reached, logged in to, or read.
	err     error
	info    map[string]string // INFO's default sections, field by field
	version redisproc.Version
}

// label names the node in a result.
func (n *node) label() string { return n.side + " " + n.opts.Addr }

// up reports whether the node answers: connected, logged in, INFO read.
func (n *node) up() bool { return n.conn != nil && n.err == nil }

// do runs one command.
func (n *node) do(args ...string) (resp.Value, error) { return n.conn.Do(args...) }

// user is the ACL user the node is logged in as.
func (n *node) user() string {
	if n.opts.Username == "" {
		return "default"
	}
	return n.opts.Username
}

// int reads a numeric INFO field; ok is false when it is absent.
func (n *node) int(field string) (int64, bool) {
	v, err := strconv.ParseInt(n.info[field], 10, 64)
	return v, err == nil
}

// config reads one setting with CONFIG GET.
func (n *node) config(name string) (string, error) {
	v, err := n.do("CONFIG", "GET", name)
	if err != nil {
		return "", err
	}
	if len(v.Elems) < 2 {
		return "", fmt.Errorf("CONFIG GET %s: the server knows no such setting", name)
	}
	return v.Elems[1].Text(), nil
}

// dbStats is one database's line of INFO keyspace.
type dbStats struct {
	keys, subexpiry int64
}

// keyspace returns INFO keyspace's figures per database.
func (n *node) keyspace() map[int]dbStats {
	out := map[int]dbStats{}
	for field, value := range n.info {
		name, ok := strings.CutPrefix(field, "db")
		if !ok {
			continue
		}
		db, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		var s dbStats
		for kv := range strings.SplitSeq(value, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "keys":
				s.keys = n
			case "subexpiry":
				s.subexpiry = n
			}
		}
		out[db] = s
	}
	return out
}

// parseInfo reads an INFO reply into its fields.
func parseInfo(text string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// side is the source or the target: one server, or a cluster's masters.
type side struct {
	name    string
	base    dialer.Options
	seed    *node   // the server the URL names
	nodes   []*node // a cluster's masters, else the seed
	cluster bool
	top     *cluster.Topology
	topErr  error // why the cluster's slot map could not be read
}

// up returns the nodes that answer.
func (s *side) up() []*node {
	var out []*node
	for _, n := range s.nodes {
		if n.up() {
			out = append(out, n)
		}
	}
	return out
}

// close closes every connection.
func (s *side) close() {
	if s == nil {
		return
	}
	closed := map[*dialer.Conn]bool{}
	for _, n := range append([]*node{s.seed}, s.nodes...) {
		if n != nil && n.conn != nil && !closed[n.conn] {
			closed[n.conn] = true
			n.conn.Close()
		}
	}
}

// dialNode connects to one server and reads its INFO.
func dialNode(ctx context.Context, sideName string, o dialer.Options) *node {
	n := &node{side: sideName, opts: o}
	n.conn, n.err = dialer.Dial(ctx, o)
	if n.err != nil {
		n.conn = nil
		return n
	}
	v, err := n.do("INFO")
	if err != nil {
		n.err = &infoError{err}
		return n
	}
	n.info = parseInfo(v.Text())
	if n.version, err = redisproc.ParseVersion(n.info["redis_version"]); err != nil {
		n.err = &infoError{fmt.Errorf("INFO: %w", err)}
	}
	return n
}

// infoError is a server that let us in but would not say what it is.
type infoError struct{ err error }

func (e *infoError) Error() string { return e.err.Error() }
func (e *infoError) Unwrap() error { return e.err }

// connect reaches one side: the server the URL names and, for a cluster,
// every master of its slot map with the same credentials.
func connect(ctx context.Context, name string, base dialer.Options) *side {
	s := &side{name: name, base: base}
	s.seed = dialNode(ctx, name, base)
	s.nodes = []*node{s.seed}
	if !s.seed.up() || s.seed.info["cluster_enabled"] != "1" {
		return s
	}
	s.cluster = true
	if s.top, s.topErr = cluster.Load(s.seed.conn); s.topErr != nil {
		return s
	}
	s.nodes = nil
	for i, m := range s.top.Masters {
		if m.Addr == s.seed.opts.Addr && s.seed.info["role"] == "master" {
			s.nodes = append(s.nodes, s.seed)
			continue
		}
		s.nodes = append(s.nodes, dialNode(ctx, name, s.top.Options(base, i)))
	}
	return s
}

// loginFailure reports whether err is a failure to log in (the server
// answered) rather than to reach the server.
func loginFailure(err error) bool {
	for _, reason := range []error{dialer.ErrWrongPassword, dialer.ErrUserAuth, dialer.ErrPasswordRequired,
		dialer.ErrNoPasswordSet, dialer.ErrNoACL} {
		if errors.Is(err, reason) {
			return true
		}
	}
	return false
}

// errText is an error's message as a node result shows it: the dialer's
// errors begin "redis ADDR: ", which the node column already says.
func errText(n *node, err error) string {
	var de *dialer.Error
	if errors.As(err, &de) {
		return de.Detail
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "redis "+n.opts.Addr+": ")
	return msg
}

// replyError returns the server's own message when err is an error reply.
func replyError(err error) (*resp.RedisError, bool) {
	var re *resp.RedisError
	ok := errors.As(err, &re)
	return re, ok
}

// passwordHint says where a side's password comes from, for fixes.
func passwordHint(side string) string {
	return fmt.Sprintf("the --%s URL, --%s-password-file or $RESYNC_%s_PASSWORD", side, side, strings.ToUpper(side))
}

// explainLogin says why a login failed, as plainly as the server allows.
// Redis answers WRONGPASS both for a wrong password and for a user that
// does not exist; where the default user can still get in (no password,
// or the password given is its own), ACL USERS tells the two apart.
func explainLogin(ctx context.Context, n *node) (why, fix string) {
	side, u := n.side, n.opts.Username
	hint := passwordHint(side)
	switch {
	case errors.Is(n.err, dialer.ErrUserAuth):
		why, fix = tellUserFromPassword(ctx, n)
		if why == "" {
			why = fmt.Sprintf("wrong password for user %q, or no such user (the server does not say which)", u)
			fix = fmt.Sprintf("check the user name and its password (%s); ACL LIST on the server shows its users", hint)
		}
	case errors.Is(n.err, dialer.ErrWrongPassword):
		why = "wrong password for the default user"
		fix = "check the password (" + hint + ")"
	case errors.Is(n.err, dialer.ErrPasswordRequired):
		why = "the server requires a password and none was given (NOAUTH)"
		fix = "give the password with " + hint
	case errors.Is(n.err, dialer.ErrNoPasswordSet):
		why = "a password was given, but the server has none set"
		fix = "give no password, or check that --" + side + " names the intended server"
	case errors.Is(n.err, dialer.ErrNoACL):
		why = fmt.Sprintf("a user name (%q) was given, but the server has no ACL users (Redis before 6.0)", u)
		fix = "give the password alone, without a user name: redis://:PASSWORD@host:port (or a password file)"
	default:
		why, fix = errText(n, n.err), "check the credentials ("+hint+")"
	}
	return why, fix
}

// tellUserFromPassword logs in as the default user — without a password,
// then with the one given — and asks ACL USERS whether the user exists.
// It returns "" when it cannot tell.
func tellUserFromPassword(ctx context.Context, n *node) (why, fix string) {
	u := n.opts.Username
	probe := n.opts
	probe.Username, probe.Password, probe.DB = "", "", 0
	c, err := dialer.Dial(ctx, probe)
	withGiven := false
	if errors.Is(err, dialer.ErrPasswordRequired) && n.opts.Password != "" {
		probe.Password = n.opts.Password
		c, err = dialer.Dial(ctx, probe)
		withGiven = true
	}
	if err != nil {
		return "", ""
	}
	defer c.Close()
	v, err := c.Do("ACL", "USERS")
	if err != nil {
		return "", ""
	}
	var users []string
	for _, e := range v.Elems {
		users = append(users, e.Text())
	}
	if !slices.Contains(users, u) {
		why = fmt.Sprintf("no ACL user %q on the server", u)
		fix = "check the user name in the --" + n.side + " URL, or create the user: ACL SETUSER " + u + " on >PASSWORD ..."
		if withGiven {
			fix = "the password given is the default user's: leave the user name out of the --" + n.side + " URL, or create the user"
		}
		return why, fix
	}
	if g, err := c.Do("ACL", "GETUSER", u); err == nil {
		for i := 0; i+1 < len(g.Elems); i += 2 {
			if g.Elems[i].Text() != "flags" {
				continue
			}
			for _, f := range g.Elems[i+1].Elems {
				if f.Text() == "off" {
					return fmt.Sprintf("user %q is disabled (off)", u), "enable it: ACL SETUSER " + u + " on"
				}
			}
		}
	}
	return fmt.Sprintf("wrong password for user %q", u), "check the password (" + passwordHint(n.side) + ")"
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}
