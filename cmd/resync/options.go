package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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

func (b *byteSize) String() string { return strconv.Itoa(int(*b)) }
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
	fs.Var(&l.bigBytes, "big-key-threshold", "write a key bigger than this (payload bytes, e.g. 64MiB) in chunks")
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

// endpointFlags are one side's URL and password file.
type endpointFlags struct {
	side        string // "source" or "target"
	url, pwFile *string
}

func addEndpointFlags(fs *flag.FlagSet, side string) *endpointFlags {
	env := "RESYNC_" + strings.ToUpper(side) + "_PASSWORD"
	return &endpointFlags{side: side,
		url:    fs.String(side, "", side+" URL: redis://[user[:password]@]host:port"),
		pwFile: fs.String(side+"-password-file", "", "file holding the "+side+"'s password (else $"+env+")")}
}

// options reads the URL and its password (see endpoint).
func (e *endpointFlags) options(log *slog.Logger) (dialer.Options, error) {
	return endpoint(e.side, *e.url, *e.pwFile, "RESYNC_"+strings.ToUpper(e.side)+"_PASSWORD", log)
}

// applyConfig fills the flags the command line left unset from a task
// file (--config), the source and target from its tables.
func applyConfig(fs *flag.FlagSet, path string, src, dst *endpointFlags) error {
	f, err := readTaskFile(path)
	if err != nil {
		return err
	}
	if err := f.apply(fs, path); err != nil {
		return err
	}
	fill := func(e *endpointFlags, in endpointIn) {
		if e != nil && *e.url == "" {
			*e.url, *e.pwFile = in.URL, cmp.Or(*e.pwFile, in.PasswordFile)
		}
	}
	fill(src, f.Source)
	if len(f.Target) == 1 {
		fill(dst, f.Target[0])
	}
	return nil
}
