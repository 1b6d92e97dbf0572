package precheck

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// check runs the precheck with a bound on its time.
func check(t *testing.T, c Config) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := Run(ctx, c)
	t.Logf("report:\n%s", text(rep)) // shown with -v, or when the test fails
	return rep
}

func text(rep Report) string {
	var b strings.Builder
	rep.WriteText(&b)
	return b.String()
}

// result returns the result of check on node ("" for the pair), failing
// the test when there is not exactly one.
func result(t *testing.T, rep Report, check, node string) Result {
	t.Helper()
	var found []Result
	for _, r := range rep.Find(check) {
		if r.Node == node {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s results for node %q, want 1, in:\n%s", len(found), check, node, text(rep))
	}
	return found[0]
}

// expect checks a result's verdict and that its why and fix say what
// they must.
func expect(t *testing.T, r Result, v Verdict, why []string, fix ...string) {
	t.Helper()
	if r.Verdict != v {
		t.Errorf("%s %s: verdict %s, want %s: %s (fix: %s)", r.Check, r.Node, r.Verdict, v, r.Why, r.Fix)
	}
	for _, w := range why {
		if !strings.Contains(r.Why, w) {
			t.Errorf("%s %s: why %q lacks %q", r.Check, r.Node, r.Why, w)
		}
	}
	for _, f := range fix {
		if !strings.Contains(r.Fix, f) {
			t.Errorf("%s %s: fix %q lacks %q", r.Check, r.Node, r.Fix, f)
		}
	}
	if v != Pass && r.Fix == "" {
		t.Errorf("%s %s: a %s without a fix", r.Check, r.Node, v)
	}
}

func src(s *redisproc.Server) string { return "source " + s.Addr }
func dst(s *redisproc.Server) string { return "target " + s.Addr }

// withSourceData fills db0 and db1 of s with a few keys.
func withSourceData(t *testing.T, s *redisproc.Server) {
	t.Helper()
	c := redistest.Dial(t, s)
	for db, n := range map[string]int{"0": 5, "1": 2} {
		if _, err := c.Do("SELECT", db); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, err := c.Do("SET", "k"+strconv.Itoa(i), "v"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A sound setup: everything passes; with the source's default
// replication settings, exactly those three checks warn, each with its
// CONFIG SET line.
func TestGoodSetup(t *testing.T) {
	source := redistest.Start(t, "repl-backlog-size 256mb", "repl-timeout 600", "client-output-buffer-limit slave 1gb 512mb 120")
	target := redistest.Start(t)
	withSourceData(t, source)
	cfg := Config{Source: source.DialOptions(), Target: target.DialOptions(), Name: "good"}
	rep := check(t, cfg)
	// Before 3.2 INFO has no total_system_memory; before 3.0 the default
	// maxmemory-policy is volatile-lru.
	old := func(c string) bool {
		return !source.Version.AtLeast(3, 2) && (c == "fork-memory" || c == "target-memory") ||
			!source.Version.AtLeast(3, 0) && c == "eviction-policy"
	}
	for _, r := range rep.Results {
		if r.Verdict != Pass && !old(r.Check) {
			t.Errorf("%s %s: %s %s", r.Check, r.Node, r.Verdict, r.Why)
		}
	}
	if rep.Failed() {
		t.Error("Failed() with no FAIL")
	}
	// Every check that applies to two standalone servers ran, in order.
	var got []string
	for _, r := range rep.Results {
		if len(got) == 0 || got[len(got)-1] != r.Check {
			got = append(got, r.Check)
		}
	}
	var want []string
	for _, n := range Names() {
		if !strings.HasPrefix(n, "cluster-") {
			want = append(want, n)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks run:\n%v\nwant:\n%v", got, want)
	}
	out := text(rep)
	if _, warnings, _ := rep.Counts(); !strings.HasPrefix(out, "VERDICT  CHECK ") || strings.Count(out, "  fix: ") != warnings {
		t.Errorf("text report:\n%s", out)
	}
	expect(t, result(t, rep, "reachable", src(source)), Pass, []string{"connected: Redis " + source.Version.String(), "standalone"})
	expect(t, result(t, rep, "conflict", dst(target)), Pass, []string{"hold no keys", "db0-15"})
	if !old("target-memory") {
		expect(t, result(t, rep, "target-memory", dst(target)), Pass, []string{"free ", "of source data"})
	}

	redistest.Do(t, source, "CONFIG", "SET", "repl-backlog-size", "1048576")
	redistest.Do(t, source, "CONFIG", "SET", "repl-timeout", "60")
	redistest.Do(t, source, "CONFIG", "SET", "client-output-buffer-limit", "slave 268435456 67108864 60")
	rep = check(t, cfg)
	class := "replica"
	if !source.Version.AtLeast(5, 0) {
		class = "slave"
	}
	backlog, output := "256mb", class+" 1gb 512mb 120"
	if !source.Version.AtLeast(3, 2) {
		backlog = "268435456"
	}
	if !source.Version.AtLeast(5, 0) {
		output = class + " 1073741824 536870912 120" // older CONFIG SETs read "1gb" as 1 byte
	}
	expect(t, result(t, rep, "backlog", src(source)), Warn, []string{"repl-backlog-size is 1 MiB"}, "CONFIG SET repl-backlog-size "+backlog)
	expect(t, result(t, rep, "repl-timeout", src(source)), Warn, []string{"repl-timeout is 60 s"}, "CONFIG SET repl-timeout 600")
	expect(t, result(t, rep, "output-buffer", src(source)), Warn, []string{"hard 256 MiB, soft 64 MiB for 60 s"},
		`CONFIG SET client-output-buffer-limit "`+output+`"`)
	if rep.Failed() {
		t.Errorf("warnings made the report fail:\n%s", text(rep))
	}

	// The fixes, run as they are written, make the checks pass.
	for _, name := range []string{"backlog", "repl-timeout", "output-buffer"} {
		applyFix(t, source, result(t, rep, name, src(source)).Fix)
	}
	rep = check(t, cfg)
	for _, name := range []string{"backlog", "repl-timeout", "output-buffer"} {
		expect(t, result(t, rep, name, src(source)), Pass, nil)
	}
}

// applyFix runs the CONFIG SET line of a fix on s.
func applyFix(t *testing.T, s *redisproc.Server, fix string) {
	t.Helper()
	_, line, ok := strings.Cut(fix, "CONFIG SET ")
	if !ok {
		t.Fatalf("fix %q has no CONFIG SET", fix)
	}
	line, _, _ = strings.Cut(line, " (and")
	name, value, _ := strings.Cut(line, " ")
	if uq, err := strconv.Unquote(value); err == nil {
		value = uq
	}
	redistest.Do(t, s, "CONFIG", "SET", name, value)
}

// A wrong password, a missing one, and one the server does not have: the
// auth check says which; the node's other checks do not run; no password
// shows anywhere.
func TestPasswords(t *testing.T) {
	const secret = "Sesame-open-4711"
	o := redistest.Options(t)
	o.Password = secret
	locked := redistest.StartWith(t, o)
	open := redistest.Start(t)

	bad := locked.DialOptions()
	bad.Password = "not-" + secret
	rep := check(t, Config{Source: bad, Target: open.DialOptions()})
	expect(t, result(t, rep, "reachable", src(locked)), Pass, []string{"answers"})
	expect(t, result(t, rep, "auth", src(locked)), Fail, []string{"wrong password for the default user", "were not run"}, "--source-password-file", "RESYNC_SOURCE_PASSWORD")
	for _, name := range []string{"source-version", "backlog", "same-server", "clock"} {
		if rs := rep.Find(name); len(rs) > 0 {
			t.Errorf("%s ran without a source: %v", name, rs)
		}
	}
	if !rep.Failed() {
		t.Error("a failed login is not a failed report")
	}
	js, _ := json.Marshal(rep)
	if strings.Contains(string(js)+text(rep), secret) {
		t.Errorf("the report shows the password:\n%s", js)
	}

	none := locked.DialOptions()
	none.Password = ""
	rep = check(t, Config{Source: open.DialOptions(), Target: none})
	expect(t, result(t, rep, "auth", dst(locked)), Fail, []string{"requires a password and none was given"}, "--target-password-file")

	extra := open.DialOptions()
	extra.Password = secret
	rep = check(t, Config{Source: extra, Target: locked.DialOptions()})
	expect(t, result(t, rep, "auth", src(open)), Fail, []string{"a password was given, but the server has none set"})
	expect(t, result(t, rep, "auth", dst(locked)), Pass, []string{"the default user, with its password"})
	if strings.Contains(text(rep), secret) {
		t.Error("the report shows the password")
	}
}

// Redis answers WRONGPASS for a user that does not exist and for a wrong
// password alike; where the default user can look, the check tells them
// apart, and where it cannot, it says it cannot.
func TestUnknownACLUser(t *testing.T) {
	redistest.RequireVersion(t, 6, 0, "introduced ACL users")
	open := redistest.Start(t)
	redistest.Do(t, open, "ACL", "SETUSER", "alice", "on", ">right", "~*", "+@all")

	ghost := open.DialOptions()
	ghost.Username, ghost.Password = "ghost", "whatever"
	rep := check(t, Config{Source: ghost, Target: open.DialOptions()})
	expect(t, result(t, rep, "auth", src(open)), Fail, []string{`no ACL user "ghost" on the server`}, "check the user name")
	if w := result(t, rep, "auth", src(open)).Why; strings.Contains(w, "alice") {
		t.Errorf("the report lists the server's other users: %s", w)
	}

	alice := open.DialOptions()
	alice.Username, alice.Password = "alice", "wrong"
	rep = check(t, Config{Source: alice, Target: open.DialOptions()})
	expect(t, result(t, rep, "auth", src(open)), Fail, []string{`wrong password for user "alice"`})
	if strings.Contains(result(t, rep, "auth", src(open)).Why, "no such user") {
		t.Error("an existing user's wrong password is reported as maybe no such user")
	}

	redistest.Do(t, open, "ACL", "SETUSER", "alice", "off")
	alice.Password = "right"
	rep = check(t, Config{Source: alice, Target: open.DialOptions()})
	expect(t, result(t, rep, "auth", src(open)), Fail, []string{`user "alice" is disabled`}, "ACL SETUSER alice on")

	// The default user has a password of its own: nobody can look.
	o := redistest.Options(t)
	o.Password = "default-pw"
	locked := redistest.StartWith(t, o)
	redistest.Do(t, locked, "ACL", "SETUSER", "bob", "on", ">right", "~*", "+@all")
	bob := locked.DialOptions()
	bob.Username, bob.Password = "bob", "wrong"
	rep = check(t, Config{Source: open.DialOptions(), Target: bob})
	expect(t, result(t, rep, "auth", dst(locked)), Fail, []string{`wrong password for user "bob", or no such user (the server does not say which)`}, "ACL LIST")

	// The password given is the default user's, with a user name that
	// does not exist: the fix says to drop the name.
	named := locked.DialOptions()
	named.Username = "nosuch"
	rep = check(t, Config{Source: open.DialOptions(), Target: named})
	expect(t, result(t, rep, "auth", dst(locked)), Fail, []string{`no ACL user "nosuch"`}, "the password given is the default user's")
}

// A source user that may not PSYNC fails the replication check; one that
// may not write resync's heartbeat key warns that the lag is unknown.
func TestSourceUserWithoutPSYNC(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "introduced ACL DRYRUN")
	source := redistest.Start(t)
	target := redistest.Start(t)
	redistest.Do(t, source, "ACL", "SETUSER", "repl", "on", ">pw", "~app:*", "+@all", "-psync", "-sync")
	o := source.DialOptions()
	o.Username, o.Password = "repl", "pw"
	rep := check(t, Config{Source: o, Target: target.DialOptions(), Name: "orders"})
	expect(t, result(t, rep, "auth", src(source)), Pass, []string{`user "repl"`})
	expect(t, result(t, rep, "source-replication-acl", src(source)), Fail, []string{`user "repl" may not run psync`}, "ACL SETUSER repl +psync", "--source-mode scan")
	if r := result(t, rep, "source-replication-acl", src(source)); strings.Contains(r.Why, "replconf") {
		t.Errorf("REPLCONF is allowed, yet: %s", r.Why)
	}
	expect(t, result(t, rep, "source-heartbeat-acl", src(source)), Warn, []string{"resync:heartbeat:orders", "lag is unknown"}, "ACL SETUSER repl ~resync:heartbeat:*")

	// A user that may not even ask (no ACL DRYRUN): the check says it
	// cannot tell, rather than guessing.
	redistest.Do(t, source, "ACL", "SETUSER", "narrow", "on", ">pw", "~*", "+psync", "+replconf", "+ping", "+info", "+set", "+config|get", "+time", "+module|list", "+select", "+scan")
	o.Username = "narrow"
	rep = check(t, Config{Source: o, Target: target.DialOptions()})
	expect(t, result(t, rep, "source-replication-acl", src(source)), Warn, []string{"cannot be checked", `"narrow" may not run ACL DRYRUN`})

	// Without PING, resync cannot even log in: the fix grants it.
	redistest.Do(t, source, "ACL", "SETUSER", "narrow", "-ping")
	rep = check(t, Config{Source: o, Target: target.DialOptions()})
	expect(t, result(t, rep, "reachable", src(source)), Fail, []string{"logged in, but PING failed: NOPERM"}, "ACL SETUSER narrow +ping")
}

// A target user without RESTORE fails the target's ACL check, naming it;
// a command of the stream it may not run is named too.
func TestTargetUserWithoutRESTORE(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "introduced ACL DRYRUN")
	source := redistest.Start(t)
	target := redistest.Start(t)
	redistest.Do(t, target, "ACL", "SETUSER", "loader", "on", ">pw", "~*", "+@all", "-restore", "-flushall")
	o := target.DialOptions()
	o.Username, o.Password = "loader", "pw"
	rep := check(t, Config{Source: source.DialOptions(), Target: o})
	r := result(t, rep, "target-acl", dst(target))
	expect(t, r, Fail, []string{`user "loader" may not run restore`, "flushall: the sync stops if the source's writes include one"}, "ACL SETUSER loader +restore +flushall")

	// Keys outside resync's prefix only: checkpoints cannot be written.
	redistest.Do(t, target, "ACL", "SETUSER", "keyed", "on", ">pw", "~app:*", "+@all")
	o.Username = "keyed"
	rep = check(t, Config{Source: source.DialOptions(), Target: o})
	expect(t, result(t, rep, "target-acl", dst(target)), Fail, []string{"may not write resync's own keys (resync:*"}, "ACL SETUSER keyed ~resync:*")
}

// Intercept mode refuses a target whose written databases hold keys,
// with the counts per database and not counting resync's own; overwrite
// mode warns with the same counts; a target holding the task's own
// checkpoint is a resume.
func TestConflict(t *testing.T) {
	source := redistest.Start(t)
	target := redistest.Start(t)
	c := redistest.Dial(t, target)
	for _, cmd := range [][]string{
		{"SET", "a", "1"}, {"SET", "b", "1"}, {"SET", "c", "1"}, {"SET", "resync:checkpoint:other", "x"},
		{"SELECT", "2"}, {"SET", "d", "1"},
	} {
		if _, err := c.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Source: source.DialOptions(), Target: target.DialOptions(), Name: "mine"}
	rep := check(t, cfg)
	expect(t, result(t, rep, "conflict", dst(target)), Fail, []string{"db0 holds 3 keys, db2 holds 1 key", "intercept"}, "--on-conflict overwrite", "FLUSHDB")

	cfg.OnConflict = ConflictOverwrite
	rep = check(t, cfg)
	expect(t, result(t, rep, "conflict", dst(target)), Warn, []string{"db0 holds 3 keys, db2 holds 1 key", "will be replaced"})
	if rep.Failed() {
		t.Errorf("overwrite mode failed:\n%s", text(rep))
	}

	// Only source db 1 is synced, into target db 1, which is empty.
	cfg.OnConflict = ""
	cfg.Filter = filter.Config{DBs: []int{1}}
	expect(t, result(t, check(t, cfg), "conflict", dst(target)), Pass, []string{"(db1) hold no keys"})
	cfg.Filter = filter.Config{DBs: []int{1}, MapDB: map[int]int{1: 2}}
	expect(t, result(t, check(t, cfg), "conflict", dst(target)), Fail, []string{"db2 holds 1 key"})

	// The task's own checkpoint: a resume, whatever else the target holds.
	cfg.Filter = filter.Config{}
	redistest.Do(t, target, "SET", "resync:checkpoint:mine", "replid="+strings.Repeat("a", 40)+" offset=1234 db=0 state=stream time=1")
	rep = check(t, cfg)
	expect(t, result(t, rep, "conflict", dst(target)), Pass, []string{`resuming task "mine"`, "offset 1234"})
	// Another task's name that begins the same is not ours.
	cfg.Name = "min"
	expect(t, result(t, check(t, cfg), "conflict", dst(target)), Fail, []string{"db0 holds 3 keys"})
	// --reset forgets the checkpoint: the conflict rule applies again.
	cfg.Name, cfg.Reset = "mine", true
	expect(t, result(t, check(t, cfg), "conflict", dst(target)), Fail, []string{"db0 holds 3 keys"})

	// A waived check is listed as such and no longer fails the report.
	cfg.Skip = []string{"conflict"}
	rep = check(t, cfg)
	expect(t, result(t, rep, "conflict", ""), Warn, []string{"waived by --skip-check conflict"})
	if rep.Failed() {
		t.Errorf("waived conflict still fails:\n%s", text(rep))
	}
}

// An unknown or unwaivable --skip-check name is a usage error that names
// it.
func TestSkipNames(t *testing.T) {
	err := Config{Skip: []string{"conflict", "nosuch"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "target-memory") {
		t.Errorf("unknown name: %v", err)
	}
	if err := (Config{Skip: []string{"auth"}}).Validate(); err == nil || !strings.Contains(err.Error(), "cannot be waived") {
		t.Errorf("auth waived: %v", err)
	}
	if err := (Config{Skip: Names()[2:]}).Validate(); err != nil {
		t.Errorf("every waivable check: %v", err)
	}
	if err := (Config{OnConflict: "merge"}).Validate(); err == nil {
		t.Error("on-conflict merge accepted")
	}
	rep := Run(context.Background(), Config{Skip: []string{"nosuch"}})
	if len(rep.Results) != 1 || rep.Results[0].Check != "config" || !rep.Failed() {
		t.Errorf("Run with a bad config: %+v", rep)
	}
}

// A target that evicts, and one too small for the source's data.
func TestTargetMemoryAndEviction(t *testing.T) {
	source := redistest.Start(t)
	target := redistest.Start(t, "maxmemory 3mb", "maxmemory-policy allkeys-lru")
	redistest.Do(t, source, "DEBUG", "POPULATE", "100000")
	rep := check(t, Config{Source: source.DialOptions(), Target: target.DialOptions()})
	expect(t, result(t, rep, "eviction-policy", dst(target)), Warn, []string{"allkeys-lru", "eviction silently loses synced data"}, "CONFIG SET maxmemory-policy noeviction")
	r := result(t, rep, "target-memory", dst(target))
	expect(t, r, Fail, []string{"maxmemory 3 MiB", "MiB of source data", "does not fit"}, "CONFIG SET maxmemory ")

	// The fixes, run as they are written, make it fit and stop eviction.
	applyFix(t, target, r.Fix)
	applyFix(t, target, result(t, rep, "eviction-policy", dst(target)).Fix)
	rep = check(t, Config{Source: source.DialOptions(), Target: target.DialOptions()})
	expect(t, result(t, rep, "target-memory", dst(target)), Pass, []string{"free "})
	expect(t, result(t, rep, "eviction-policy", dst(target)), Pass, []string{"noeviction"})
}

// One cluster serves several cases: as a target of a multi-db source, as
// a source, and, last, with slots no master serves.
func TestCluster(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	cl := redistest.StartCluster(t, 3, 0)
	seed := cl.Masters[0]
	source := redistest.Start(t)
	c := redistest.Dial(t, source)
	for _, cmd := range [][]string{{"SET", "a", "1"}, {"SELECT", "3"}, {"SET", "b", "1"}} {
		if _, err := c.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Source: source.DialOptions(), Target: seed.DialOptions()}
	rep := check(t, cfg)
	expect(t, result(t, rep, "cluster-dbs", ""), Fail, []string{"the target is a cluster, which has db 0 only, and source databases 3 hold keys"}, "--dbs 0", "--map-db N:0")
	expect(t, result(t, rep, "cluster-slots", dst(seed)), Pass, []string{"all 16384 slots are served by 3 masters"})
	expect(t, result(t, rep, "cluster-masters", dst(seed)), Pass, []string{"all 3 masters reachable"})
	for _, m := range cl.Masters {
		expect(t, result(t, rep, "conflict", dst(m)), Pass, []string{"(db0) hold no keys"})
		expect(t, result(t, rep, "target-memory", dst(m)), Pass, []string{"over 3 masters"})
		expect(t, result(t, rep, "reachable", dst(m)), Pass, []string{"cluster master"})
	}
	cfg.Filter = filter.Config{DBs: []int{0}}
	expect(t, result(t, check(t, cfg), "cluster-dbs", ""), Pass, nil)
	cfg.Filter = filter.Config{DBs: []int{3}, MapDB: map[int]int{3: 0}}
	expect(t, result(t, check(t, cfg), "cluster-dbs", ""), Pass, nil)

	// The cluster as a source: every master is checked.
	rep = check(t, Config{Source: seed.DialOptions(), Target: source.DialOptions(), Skip: []string{"conflict"}})
	for _, m := range cl.Masters {
		expect(t, result(t, rep, "source-version", src(m)), Pass, nil)
		expect(t, result(t, rep, "backlog", src(m)), Warn, nil)
	}
	expect(t, result(t, rep, "cluster-masters", src(seed)), Pass, []string{"all 3 masters"})

	// Master 0 lets slots 0-99 go: it sees them served by nobody.
	args := []string{"CLUSTER", "DELSLOTS"}
	for s := range 100 {
		args = append(args, strconv.Itoa(s))
	}
	redistest.Do(t, seed, args...)
	for deadline := time.Now().Add(10 * time.Second); redisproc.InfoField(redistest.Do(t, seed, "CLUSTER", "INFO"), "cluster_state") != "fail"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("cluster_state never turned fail")
		}
	}
	cfg.Filter = filter.Config{DBs: []int{0}}
	rep = check(t, cfg)
	expect(t, result(t, rep, "cluster-slots", dst(seed)), Fail, []string{"slots 0-99 (100 in all) are served by no master", "cluster_state:fail on " + seed.Addr}, "redis-cli --cluster fix "+seed.Addr)

	// A master that takes other credentials than the rest.
	odd := cl.Masters[2]
	redistest.Do(t, odd, "CONFIG", "SET", "requirepass", "other")
	rep = check(t, cfg)
	expect(t, result(t, rep, "cluster-masters", dst(seed)), Fail, []string{"1 of 3 masters cannot be reached or logged in to with the target's credentials: " + odd.Addr})
	expect(t, result(t, rep, "auth", dst(odd)), Fail, []string{"requires a password", "were not run"})
	if rs := rep.Find("conflict"); len(rs) != 2 {
		t.Errorf("conflict checked on %d masters, want the 2 that let us in", len(rs))
	}
}

// Source and target the same server.
func TestSameServer(t *testing.T) {
	s := redistest.Start(t)
	rep := check(t, Config{Source: s.DialOptions(), Target: s.DialOptions()})
	expect(t, result(t, rep, "same-server", ""), Fail, []string{"source " + s.Addr + " and target " + s.Addr + " are the same server"}, "another server")
	if len(rep.Find("replication-loop")) != 1 || rep.Find("replication-loop")[0].Verdict != Pass {
		t.Errorf("the same server reported as a replication loop too:\n%s", text(rep))
	}
}

// A target that replicates the source, and a source that replicates the
// target.
func TestReplicationLoop(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	rep := check(t, Config{Source: master.DialOptions(), Target: replica.DialOptions()})
	expect(t, result(t, rep, "replication-loop", ""), Fail, []string{"target " + replica.Addr + " is a replica of source " + master.Addr}, "REPLICAOF NO ONE")
	expect(t, result(t, rep, "target-role", dst(replica)), Fail, []string{"a replica of 127.0.0.1:" + strconv.Itoa(master.Port)}, "point --target at a master")

	rep = check(t, Config{Source: replica.DialOptions(), Target: master.DialOptions()})
	expect(t, result(t, rep, "replication-loop", ""), Fail, []string{"source " + replica.Addr + " is a replica of target " + master.Addr})
	expect(t, result(t, rep, "source-heartbeat-acl", src(replica)), Warn, []string{"replica", "lag is unknown"})
}

// A refused connection and an untrusted certificate: reachable fails,
// with the fix, and nothing else is asked of that side.
func TestUnreachable(t *testing.T) {
	target := redistest.Start(t)
	down := redistest.Start(t)
	addr := down.Addr
	down.Stop()
	rep := check(t, Config{Source: dialer.Options{Addr: addr, ConnectTimeout: 2 * time.Second}, Target: target.DialOptions()})
	expect(t, result(t, rep, "reachable", "source "+addr), Fail, []string{"connection refused", "were not run"}, "--source")
	for _, r := range rep.Results {
		if r.Node == "" || strings.HasPrefix(r.Node, "source") && r.Check != "reachable" {
			t.Errorf("ran without a source: %s %s %s", r.Check, r.Node, r.Why)
		}
	}
	if len(rep.Find("auth")) != 1 {
		t.Errorf("auth results: %v", rep.Find("auth"))
	}
}

func TestUntrustedCertificate(t *testing.T) {
	redistest.RequireTLS(t)
	certs := redistest.NewCerts(t)
	o := redistest.Options(t)
	o.TLS = certs.ServerTLS(false)
	tlsServer := redistest.StartWith(t, o)
	plain := redistest.Start(t)
	opts := tlsServer.DialOptions()
	opts.TLS.CAFile = certs.OtherCAFile
	rep := check(t, Config{Source: plain.DialOptions(), Target: opts})
	expect(t, result(t, rep, "reachable", dst(tlsServer)), Fail, []string{"certificate not trusted"}, "--target-tls-ca")

	opts.TLS.CAFile = certs.CAFile
	expect(t, result(t, check(t, Config{Source: plain.DialOptions(), Target: opts}), "reachable", dst(tlsServer)), Pass, nil)
}

// buildDir holds older redis-server builds for spot checks; tests that
// need one skip when it is absent.
const buildDir = "/work/redis-builds/bin/"

func startBuild(t *testing.T, version string, config ...string) *redisproc.Server {
	t.Helper()
	bin := buildDir + "redis-server-" + version
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Redis %s build at %s", version, bin)
	}
	o := redistest.Options(t, config...)
	o.Binary = bin
	return redistest.StartWith(t, o)
}

// Streams into a target older than 5.0: counted per selected database;
// with --drop-unsupported a warning.
func TestStreamsIntoOldTarget(t *testing.T) {
	redistest.RequireVersion(t, 5, 0, "introduced streams")
	source := redistest.Start(t)
	target := startBuild(t, "4.0.14")
	c := redistest.Dial(t, source)
	for _, cmd := range [][]string{
		{"XADD", "s1", "*", "f", "v"}, {"XADD", "s2", "*", "f", "v"}, {"SET", "plain", "v"}, {"XADD", "skip:s", "*", "f", "v"},
		{"SELECT", "1"}, {"XADD", "s3", "*", "f", "v"}, {"SELECT", "2"}, {"XADD", "s4", "*", "f", "v"},
	} {
		if _, err := c.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Source: source.DialOptions(), Target: target.DialOptions(),
		Filter: filter.Config{DBs: []int{0, 1}, BlockKeyPrefix: []string{"skip:"}}}
	rep := check(t, cfg)
	expect(t, result(t, rep, "unsupported-types", src(source)), Fail, []string{"3 streams, which Redis 4.0.14 cannot hold"}, "5.0 or newer", "--drop-unsupported to drop them")
	expect(t, result(t, rep, "target-version", dst(target)), Warn, []string{"rewritten as commands (slower)"})
	expect(t, result(t, rep, "target-acl", dst(target)), Pass, []string{"no ACLs"})
	cfg.DropUnsupported = true
	expect(t, result(t, check(t, cfg), "unsupported-types", src(source)), Warn, []string{"3 streams will be dropped"})
}

// Hash field TTLs (7.4) into an older target.
func TestHashFieldTTLsIntoOldTarget(t *testing.T) {
	source := startBuild(t, "7.4.1")
	target := redistest.Start(t)
	if target.Version.AtLeast(7, 4) {
		t.Skip("the target holds hash field TTLs")
	}
	redistest.Do(t, source, "HSET", "h", "f", "v", "g", "w")
	redistest.Do(t, source, "HEXPIRE", "h", "1000", "FIELDS", "1", "f")
	rep := check(t, Config{Source: source.DialOptions(), Target: target.DialOptions()})
	expect(t, result(t, rep, "unsupported-types", src(source)), Fail, []string{"1 hash with field TTLs"}, "7.4 or newer", "--drop-unsupported to keep the fields without their TTLs")
}

// The text report: aligned columns, each WARN's and FAIL's fix below it,
// the summary last.
func TestWriteText(t *testing.T) {
	rep := Report{Results: []Result{
		{Check: "auth", Node: "source 10.0.0.1:6379", Verdict: Pass, Why: "logged in"},
		{Check: "eviction-policy", Node: "target 10.0.0.2:6379", Verdict: Warn, Why: "allkeys-lru", Fix: "CONFIG SET maxmemory-policy noeviction"},
		{Check: "clock", Verdict: Fail, Why: "two\nlines", Fix: "NTP"},
	}}
	want := `VERDICT  CHECK            NODE                  WHY
PASS     auth             source 10.0.0.1:6379  logged in
WARN     eviction-policy  target 10.0.0.2:6379  allkeys-lru
  fix: CONFIG SET maxmemory-policy noeviction
FAIL     clock            -                     two lines
  fix: NTP
1 passed, 1 warning, 1 failed
`
	if got := text(rep); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// Scan mode: the replication checks have nothing to check; the scan-mode
// check says it cannot be exact, fails while the keyspace notifications
// are off without --enable-notifications (and warns with it), and fails
// a user who may not DUMP. A cluster source has each master checked.
func TestScanMode(t *testing.T) {
	redistest.RequireVersion(t, 7, 0, "introduced ACL DRYRUN")
	source := redistest.Start(t)
	target := redistest.Start(t)
	redistest.Do(t, source, "ACL", "SETUSER", "scanner", "on", ">pw", "~*", "&*", "+@all", "-psync", "-sync")
	o := source.DialOptions()
	o.Username, o.Password = "scanner", "pw"
	rep := check(t, Config{Source: o, Target: target.DialOptions(), ScanMode: true})
	for _, name := range []string{"source-replication-acl", "backlog", "output-buffer"} {
		expect(t, result(t, rep, name, ""), Pass, []string{"scan mode"})
	}
	var verdicts []string
	for _, r := range rep.Find("scan-mode") {
		verdicts = append(verdicts, string(r.Verdict)+": "+r.Why)
	}
	all := strings.Join(verdicts, "\n")
	for _, want := range []string{"WARN: scan mode cannot be exact", `FAIL: keyspace notifications are off (notify-keyspace-events "")`, `PASS: user "scanner" may run SCAN, DUMP`} {
		if !strings.Contains(all, want) {
			t.Errorf("scan-mode results lack %q:\n%s", want, all)
		}
	}
	if !rep.Failed() {
		t.Error("notifications off and no consent, yet no FAIL")
	}

	rep = check(t, Config{Source: o, Target: target.DialOptions(), ScanMode: true, EnableNotifications: true})
	if rep.Failed() {
		t.Errorf("with --enable-notifications, a FAIL:\n%s", text(rep))
	}
	redistest.Do(t, source, "ACL", "SETUSER", "scanner", "-dump")
	rep = check(t, Config{Source: o, Target: target.DialOptions(), ScanMode: true, EnableNotifications: true})
	found := false
	for _, r := range rep.Find("scan-mode") {
		found = found || r.Verdict == Fail && strings.Contains(r.Why, "may not run dump") && strings.Contains(r.Fix, "ACL SETUSER scanner")
	}
	if !found {
		t.Errorf("a user without DUMP passes:\n%s", text(rep))
	}

	// A cluster source: each master is checked, as each is scanned and
	// followed.
	cl := redistest.StartCluster(t, 3, 0)
	rep = check(t, Config{Source: cl.Masters[0].DialOptions(), Target: target.DialOptions(), ScanMode: true, EnableNotifications: true})
	for _, m := range cl.Masters {
		found := false
		for _, r := range rep.Find("scan-mode") {
			found = found || r.Node == src(m) && r.Verdict == Warn && strings.Contains(r.Why, "resync will turn them on")
		}
		if !found {
			t.Errorf("master %s: no notifications warning:\n%s", m.Addr, text(rep))
		}
	}
	if _, _, fails := rep.Counts(); fails != 0 {
		t.Errorf("a cluster source in scan mode fails the precheck:\n%s", text(rep))
	}
}
