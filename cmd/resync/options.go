package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/router"
	"github.com/resync/resync/internal/task"
)

// listFlag is a repeatable string flag; with split, each value may also
// be a comma-separated list.
type listFlag struct {
	values []string
	split  bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }
func (l *listFlag) Set(s string) error {
	if !l.split {
		l.values = append(l.values, s)
		return nil
	}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.values = append(l.values, v)
		}
	}
	return nil
}
func (l *listFlag) repeatable() {}

// byteSize is a size flag: 1048576, 64MiB, 512KiB, 1GiB (KB/MB/GB mean
// the same powers of two).
type byteSize int

// String prints the size as parseSize reads it back, in the largest
// binary unit that divides it (64MiB, not 67108864): -h and the example
// task file show it so.
func (b *byteSize) String() string {
	n := int(*b)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.Itoa(n/u.mult) + u.suffix
		}
	}
	return strconv.Itoa(n)
}
func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 1048576, 64MiB)", s)
	}
	return n * mult, nil
}

// selectionFlags are the database selection and mapping, and the key and
// command filters: one meaning in sync, restore and verify.
type selectionFlags struct {
	dbs, mapDB                 listFlag
	allowDBMerge               *bool
	allowPrefix, blockPrefix   listFlag
	allowRegex, blockRegex     listFlag
	allowCommand, blockCommand listFlag
	onPartial                  *string
}

func addSelectionFlags(fs *flag.FlagSet) *selectionFlags {
	s := &selectionFlags{dbs: listFlag{split: true}, mapDB: listFlag{split: true},
		allowCommand: listFlag{split: true}, blockCommand: listFlag{split: true}}
	fs.Var(&s.dbs, "dbs", "sync only these source databases, e.g. 0,3 (default all)")
	fs.Var(&s.mapDB, "map-db", "write source db S into target db T: S:T (repeatable, or comma-separated)")
	s.allowDBMerge = fs.Bool("allow-db-merge", false, "allow mapping two source databases into one target database")
	fs.Var(&s.allowPrefix, "allow-key-prefix", "sync only keys with this prefix (repeatable)")
	fs.Var(&s.blockPrefix, "block-key-prefix", "never sync keys with this prefix (repeatable)")
	fs.Var(&s.allowRegex, "allow-key-regex", "sync only keys matching this regular expression (repeatable)")
	fs.Var(&s.blockRegex, "block-key-regex", "never sync keys matching this regular expression (repeatable)")
	fs.Var(&s.allowCommand, "allow-command", "replay only these commands (repeatable, or comma-separated)")
	fs.Var(&s.blockCommand, "block-command", "never replay these commands, e.g. FLUSHALL,FLUSHDB (repeatable)")
	s.onPartial = fs.String("on-partial-filter", "fail", "a command the filters can only partly apply: fail or skip")
	return s
}

// config returns the filter configuration, checked (a usage error when
// not valid).
func (s *selectionFlags) config() (filter.Config, error) {
	c := filter.Config{AllowDBMerge: *s.allowDBMerge,
		AllowKeyPrefix: s.allowPrefix.values, BlockKeyPrefix: s.blockPrefix.values,
		AllowKeyRegex: s.allowRegex.values, BlockKeyRegex: s.blockRegex.values,
		AllowCommand: s.allowCommand.values, BlockCommand: s.blockCommand.values,
		ReservedPrefix: task.ReservedPrefix}
	var err error
	if c.OnPartial, err = filter.ParsePolicy(*s.onPartial); err != nil {
		return c, fmt.Errorf("--on-partial-filter: %w", err)
	}
	for _, v := range s.dbs.values {
		db, err := strconv.Atoi(v)
		if err != nil || db < 0 {
			return c, fmt.Errorf("--dbs: %q is not a database number", v)
		}
		c.DBs = append(c.DBs, db)
	}
	for _, v := range s.mapDB.values {
		from, to, ok := strings.Cut(v, ":")
		f, err1 := strconv.Atoi(from)
		t, err2 := strconv.Atoi(to)
		if !ok || err1 != nil || err2 != nil || f < 0 || t < 0 {
			return c, fmt.Errorf("--map-db: %q is not SOURCE:TARGET (e.g. 3:0)", v)
		}
		if c.MapDB == nil {
			c.MapDB = map[int]int{}
		}
		if prev, dup := c.MapDB[f]; dup && prev != t {
			return c, fmt.Errorf("--map-db: db %d mapped twice (to %d and %d)", f, prev, t)
		}
		c.MapDB[f] = t
	}
	if _, err := filter.New(c); err != nil {
		return c, err
	}
	return c, nil
}

// loadFlags say how keys are written: the conflict rule, rewrites, big
// keys and what the target cannot hold.
type loadFlags struct {
	onConflict, rewrite *string
	bigBytes            byteSize
	bigElems            *int
	drop                *bool
	crossSlot           *string
	splitTx             *bool
}

func addLoadFlags(fs *flag.FlagSet) *loadFlags {
	l := &loadFlags{bigBytes: task.DefaultBigKeyBytes}
	l.onConflict = fs.String("on-conflict", task.ConflictIntercept, "intercept: refuse a target whose selected databases hold keys; overwrite: replace keys of the same name, keep the others")
	l.rewrite = fs.String("rewrite", task.RewriteAuto, "auto: write keys as commands only when the target cannot load their payload; always: every key")
	fs.Var(&l.bigBytes, "big-key-threshold", "write a key bigger than this (payload bytes, e.g. 64MiB) in chunks: it bounds the memory one key takes")
	l.bigElems = fs.Int("big-key-elements", task.DefaultBigKeyElements, "write a key with more elements than this in chunks (0: no element bound)")
	l.drop = fs.Bool("drop-unsupported", false, "drop (count and log) what the target cannot hold, instead of failing: hash field TTLs before 7.4, streams before 5.0, module values")
	l.crossSlot = fs.String("cross-slot", router.CrossSlotFail, "a cluster target, a command whose keys span its slots and cannot be split: fail (the task stops, naming it) or skip (logged and counted)")
	l.splitTx = fs.Bool("split-transactions", false, "a cluster target, a MULTI block whose keys span its slots: apply it command by command (else --cross-slot decides)")
	return l
}

// apply checks the load flags and sets them in cfg.
func (l *loadFlags) apply(cfg *task.Config) error {
	switch *l.onConflict {
	case task.ConflictIntercept, task.ConflictOverwrite:
	default:
		return fmt.Errorf("--on-conflict %q: intercept or overwrite", *l.onConflict)
	}
	switch *l.rewrite {
	case task.RewriteAuto, task.RewriteAlways:
	default:
		return fmt.Errorf("--rewrite %q: auto or always", *l.rewrite)
	}
	if l.bigBytes <= 0 {
		return errors.New("--big-key-threshold must be positive")
	}
	if *l.bigElems < 0 {
		return errors.New("--big-key-elements must not be negative")
	}
	if *l.crossSlot != router.CrossSlotFail && *l.crossSlot != router.CrossSlotSkip {
		return fmt.Errorf("--cross-slot %q: fail or skip", *l.crossSlot)
	}
	cfg.CrossSlot, cfg.SplitTransactions = *l.crossSlot, *l.splitTx
	cfg.OnConflict, cfg.Rewrite, cfg.BigKeyBytes, cfg.DropUnsupported = *l.onConflict, *l.rewrite, int(l.bigBytes), *l.drop
	cfg.BigKeyElements = *l.bigElems
	if cfg.BigKeyElements == 0 {
		cfg.BigKeyElements = -1 // task.Config: negative means no bound
	}
	return nil
}

// endpointFlags are how to reach one side: its URL (several for resync
// sync's targets), password file and TLS files, and the task file's
// tables for the side. TLS is on with a rediss:// URL or with any
// --SIDE-tls-* flag.
type endpointFlags struct {
	side                            string // "source" or "target"
	urls                            *urlFlag
	pwFile                          *string
	tlsCA, tlsCert, tlsKey, tlsName *string
	insecure                        flag.Getter // --tls-insecure: one flag for both sides

	// tables are the endpoints of the task file's [source] or [[target]]
	// tables, each merged with the command line's flags (taskFile.apply);
	// nil when the file gives none, or when --target on the command line
	// replaces them.
	tables []endpoint
}

// addEndpointFlags defines one side's flags in fs, and --tls-insecure
// with the first side. With several, the side takes several endpoints
// (resync sync's targets): --SIDE is repeatable and the other flags
// apply to each.
func addEndpointFlags(fs *flag.FlagSet, side string, several bool) *endpointFlags {
	if fs.Lookup("tls-insecure") == nil {
		fs.Bool("tls-insecure", false, "skip TLS certificate verification, both sides (for tests: anyone on the network path can pose as the server); it does not turn TLS on")
	}
	on, each, urlHelp := "; turns TLS on", "", side+" URL: redis://[user[:password]@]host:port[/db], or rediss:// for TLS"
	if several {
		each = ", for every " + side
		urlHelp += "; repeatable: each --" + side + " is one more " + side + ", in order (given here, they replace the task file's [[" + side + "]] tables)"
	}
	urls := &urlFlag{side: side, fs: fs, several: several}
	fs.Var(urls, side, urlHelp)
	return &endpointFlags{side: side, insecure: fs.Lookup("tls-insecure").Value.(flag.Getter),
		urls:    urls,
		pwFile:  fs.String(side+"-password-file", "", "file holding the "+side+"'s password"+each+" (else $"+passwordEnv(side)+"); an ACL user goes in the URL: redis://user@host:port"),
		tlsCA:   fs.String(side+"-tls-ca", "", "PEM file of the CA(s) that sign the "+side+"'s certificate"+each+" (default: the system's)"+on),
		tlsCert: fs.String(side+"-tls-cert", "", "client certificate (PEM) for a "+side+" that requires one"+each+", with --"+side+"-tls-key"+on),
		tlsKey:  fs.String(side+"-tls-key", "", "the client certificate's private key (PEM)"+on),
		tlsName: fs.String(side+"-tls-server-name", "", "the name the "+side+"'s certificate must hold"+each+" (default: the URL's host)"+on)}
}

// urlFlag is a side's URL flag (--source, --target). A side that takes
// one endpoint refuses a second URL: it must not silently replace the
// first.
type urlFlag struct {
	values  []string
	side    string
	fs      *flag.FlagSet // its Name is the command's, for the refusal
	several bool
}

func (u *urlFlag) String() string { return strings.Join(u.values, ",") }

func (u *urlFlag) Set(s string) error {
	if len(u.values) > 0 && !u.several {
		return fmt.Errorf("given twice: %s takes one %s (run it once per %s)", u.fs.Name(), u.side, u.side)
	}
	u.values = append(u.values, s)
	return nil
}

// given tells whether the side has its endpoints, each with a URL.
func (e *endpointFlags) given() bool {
	eps := e.endpoints()
	for _, p := range eps {
		if p.url == "" {
			return false
		}
	}
	return len(eps) > 0
}

// endpoints returns the side's endpoints, in order: the task file's
// tables (merged with the flags), else one for each URL on the command
// line, with the flags' settings. Among several, each is numbered.
func (e *endpointFlags) endpoints() []endpoint {
	eps := slices.Clone(e.tables)
	if eps == nil {
		for _, u := range e.urls.values {
			p := e.flagEndpoint()
			p.url = u
			eps = append(eps, p)
		}
	}
	if len(eps) > 1 {
		for i := range eps {
			eps[i].num = i + 1
		}
	}
	return eps
}

// flagEndpoint is an endpoint with the flags' settings and no URL yet.
func (e *endpointFlags) flagEndpoint() endpoint {
	return endpoint{side: e.side, pwFile: *e.pwFile, tlsCA: *e.tlsCA, tlsCert: *e.tlsCert, tlsKey: *e.tlsKey,
		tlsName: *e.tlsName, insecure: e.insecure.Get().(bool)}
}

// options builds the dialer options of the side's one endpoint: the
// source, or the target of a command that takes one.
func (e *endpointFlags) options(log *slog.Logger) (dialer.Options, error) {
	eps := e.endpoints()
	if len(eps) != 1 {
		return dialer.Options{}, fmt.Errorf("%d %ss given: want one", len(eps), e.side)
	}
	return eps[0].options(log)
}

// allOptions builds the dialer options of each of the side's endpoints,
// in order. Two at one address are refused: one server written twice
// by one task would hold each write twice over, and the task's
// checkpoint and lock keys would clash.
func (e *endpointFlags) allOptions(log *slog.Logger) ([]dialer.Options, error) {
	var out []dialer.Options
	first := map[string]int{} // address → its endpoint's number
	for i, p := range e.endpoints() {
		o, err := p.options(log)
		if err != nil {
			return nil, err
		}
		addr := strings.ToLower(o.Addr) // host names ignore case
		if j, dup := first[addr]; dup {
			return nil, fmt.Errorf("--%s %s given twice (%ss %d and %d): give each %s once", e.side, o.Addr, e.side, j, i+1, e.side)
		}
		first[addr] = i + 1
		out = append(out, o)
	}
	return out, nil
}

// endpoint is one endpoint's settings as given, before options reads
// and checks them.
type endpoint struct {
	side string // "source" or "target": the flags that set it
	num  int    // its place among several (1, 2, …), 0 when the side has one
	url  string
	// urlFromFile: the URL is a table's, so its password draws no
	// process-list warning.
	urlFromFile bool
	pwFile      string
	// password is a table's password key (no flag has it: the process
	// list would show it); table names that table for errors.
	password, table                 string
	tlsCA, tlsCert, tlsKey, tlsName string
	insecure                        bool
}

// name is how messages call the endpoint: "source", "target", or
// "target 2" among several.
func (p endpoint) name() string {
	if p.num == 0 {
		return p.side
	}
	return p.side + " " + strconv.Itoa(p.num)
}

// errorf is an error about the endpoint; among several, it says which.
func (p endpoint) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if p.num == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", p.name(), err)
}

// passwordEnv is the environment variable that may hold a side's password.
func passwordEnv(side string) string { return "RESYNC_" + strings.ToUpper(side) + "_PASSWORD" }

// options builds the dialer options: the URL; its password from, in
// order, a password file, the environment, the URL, the task file's
// table; and TLS, checked (its files are read now, so that a mistake is
// a usage error).
func (p endpoint) options(log *slog.Logger) (dialer.Options, error) {
	o, err := dialer.ParseURL(p.url)
	if err != nil {
		return o, p.errorf("--%s: %w", p.side, err)
	}
	env := passwordEnv(p.side)
	if o.Password != "" && !p.urlFromFile {
		log.Warn("a password in a URL on the command line shows in the process list: use --" + p.side + "-password-file or $" + env)
	}
	if o.Password != "" && p.password != "" && p.urlFromFile {
		return o, p.errorf("%s: the url holds a password and so does password: give it once", p.table)
	}
	switch {
	case p.pwFile != "":
		b, err := os.ReadFile(p.pwFile)
		if err != nil {
			return o, p.errorf("--%s-password-file: %w", p.side, err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
		if o.Password == "" {
			return o, p.errorf("--%s-password-file %s is empty", p.side, p.pwFile)
		}
	case os.Getenv(env) != "":
		o.Password = os.Getenv(env)
	case o.Password == "":
		o.Password = p.password
	}

	if p.tlsCA != "" || p.tlsCert != "" || p.tlsKey != "" || p.tlsName != "" {
		if o.TLS == nil {
			o.TLS = &dialer.TLS{}
		}
		o.TLS.CAFile, o.TLS.CertFile, o.TLS.KeyFile, o.TLS.ServerName = p.tlsCA, p.tlsCert, p.tlsKey, p.tlsName
	}
	if o.TLS == nil {
		return o, nil
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		return o, p.errorf("--%s-tls-cert and --%s-tls-key go together", p.side, p.side)
	}
	o.TLS.InsecureSkipVerify = p.insecure
	if _, err := o.TLS.Config(o.Addr); err != nil {
		return o, fmt.Errorf("%s: %w", p.name(), err)
	}
	if p.insecure {
		log.Warn("TLS certificate verification is off for the " + p.name() + " (--tls-insecure): anyone on the network path can pose as it")
	}
	return o, nil
}
