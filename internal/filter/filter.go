// Package filter decides what of a source reaches the target: which
// databases (and under which numbers), which keys, which commands. Its
// functions are pure functions of an entry: the full sync asks DB and Key
// for each key of the RDB; the incremental sync gives each command of the
// stream to a Stream, which follows the source's current database.
//
// A key passes when it is not under the reserved prefix, matches one allow
// rule (prefix or regular expression) when there is any, and matches no
// block rule. Regular expressions use Go's syntax and match anywhere in
// the key, as grep does: anchor them (^user:) to match a prefix only.
//
// Stream.Apply treats each command as follows, the first row that matches
// deciding. "Partial" means the rules can apply only to part of the
// command: under the Fail policy Apply returns an *Error, under Skip it
// drops the command and says why (Result.Skipped).
//
//	command                       what is sent to the target
//	MULTI, EXEC, DISCARD          the command: a transaction keeps its shape, even emptied
//	PING, REPLCONF                nothing: they belong to the link, not the data
//	PUBLISH, SPUBLISH             nothing: messages are never replayed
//	SELECT n                      SELECT <target of n> when n is selected, else nothing;
//	                              either way n becomes the current db
//	a command the command rules   nothing (rules name commands in any case; a rule on
//	  refuse                        "xgroup" covers "xgroup|create"; a block wins)
//	FLUSHALL [ASYNC|SYNC]         with key rules: partial (the target may hold keys the
//	                              rules keep out); every db selected under its own number:
//	                              the command; else SELECT t, FLUSHDB for each target db t,
//	                              then SELECT <target of the current db> if it is selected
//	FLUSHDB [ASYNC|SYNC]          current db not selected: nothing; key rules, or a target
//	                              db that other source dbs also write: partial; else the
//	                              command
//	SWAPDB a b                    neither selected: nothing; one selected, a target db that
//	                              other source dbs also write, or key rules: partial; else
//	                              SWAPDB <target of a> <target of b>
//	MOVE key db                   key refused: nothing; current db and db selected: MOVE
//	                              key <target of db>, or nothing when both have the same
//	                              target db (the key already is there); only the current db
//	                              selected: DEL key (the key leaves the synced set); only
//	                              db selected: partial (the value is not on the target);
//	                              neither: nothing
//	COPY src dst [DB n] [REPLACE] dst refused, or destination db not selected: nothing; src
//	                              refused, or current db not selected: partial; else the
//	                              command, its DB rewritten to the target db
//	other commands, current db    nothing if the command takes keys (EVAL does, even with
//	  not selected                  none); else (FUNCTION, SCRIPT: not per db) the command
//	other commands                the keys come from package command; an unknown
//	                              command's key is its first argument (after the
//	                              subcommand, for a container such as XGROUP). Keys the
//	                              command only reads count only when a key it writes
//	                              passes. No keys, or every key passes: the command; no
//	                              written key passes: nothing (ZUNIONSTORE into a key the
//	                              rules keep out); the written keys pass but a read one
//	                              does not: partial (the result needs a value the target
//	                              lacks); some written keys pass: DEL, UNLINK, EXISTS,
//	                              TOUCH (keys) and MSET, MSETNX (pairs) keep those, any
//	                              other command (RENAME, EVAL, FCALL, LMOVE...) is partial.
//	                              With key rules, a SORT whose BY or GET pattern reads
//	                              keys is partial.
//
// Keys under the reserved prefix fail the key rules whatever they are, so
// "MSET resync:x 1 a 2" becomes "MSET a 2" even without rules.
package filter

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/resync/resync/internal/keyname"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/command"
)

// Policy is what to do with a command the rules can only partly apply to.
type Policy int

// The policies for partial commands.
const (
	// Fail stops the sync with an *Error naming the command.
	Fail Policy = iota
	// Skip drops the command, with a reason to warn about and count.
	Skip
)

// ParsePolicy reads a policy as the command line gives it: "fail" or
// "skip", in any case.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(s) {
	case "fail":
		return Fail, nil
	case "skip":
		return Skip, nil
	}
	return Fail, fmt.Errorf("partial-filter policy %q: want fail or skip", s)
}

// String returns the policy's name, as ParsePolicy reads it.
func (p Policy) String() string {
	switch p {
	case Fail:
		return "fail"
	case Skip:
		return "skip"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// UnmarshalText reads a policy from a task file.
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// DefaultDatabases is Redis's default number of databases.
const DefaultDatabases = 16

// Config holds the rules. The zero Config passes everything.
type Config struct {
	// DBs are the selected source databases (--dbs); empty selects all.
	DBs []int
	// MapDB maps a selected source database to a target database
	// (--map-db); a selected database not in it keeps its number.
	MapDB map[int]int
	// AllowDBMerge lets two selected source databases write one target
	// database (--allow-db-merge); without it New refuses such a map.
	AllowDBMerge bool
	// AllowKeyPrefix and AllowKeyRegex: when any is set, a key must
	// match one of them (--allow-key-prefix, --allow-key-regex).
	AllowKeyPrefix []string
	AllowKeyRegex  []string
	// BlockKeyPrefix and BlockKeyRegex: a key must match none of them
	// (--block-key-prefix, --block-key-regex).
	BlockKeyPrefix []string
	BlockKeyRegex  []string
	// AllowCommand and BlockCommand are command names, in any case;
	// a subcommand is "xgroup|create" (or "xgroup create"). When
	// AllowCommand is set, a command must be in it (--allow-command);
	// one in BlockCommand is dropped (--block-command).
	AllowCommand []string
	BlockCommand []string
	// OnPartial is the policy for partial commands (--on-partial-filter).
	OnPartial Policy
	// ReservedPrefix is where resync keeps its own keys
	// (--reserved-prefix): no key under it ever passes.
	ReservedPrefix string
	// Databases is the number of databases of the source (its
	// "databases" setting); 0 means DefaultDatabases. When every
	// database is selected, it is what "every" means: to check MapDB
	// for merges and to turn a FLUSHALL into one FLUSHDB per target db.
	Databases int
	// Keys says how messages show key names.
	Keys keyname.Style
}

// Filter applies a Config. It is safe for concurrent use; a Stream is not.
type Filter struct {
	keys     keyname.Style
	allDBs   bool
	selected map[int]bool // when !allDBs
	mapDB    map[int]int
	// sources counts the selected source dbs each target db receives.
	sources map[int]int
	// flushTargets are the target dbs, sorted: what FLUSHALL empties.
	flushTargets []int
	// dbIdentity: every db selected, each under its own number.
	dbIdentity bool
	// databases is Config.Databases, defaulted.
	databases int

	reserved                   string
	allowPrefix, blockPrefix   []string
	allowRegex, blockRegex     []*regexp.Regexp
	keyRules                   bool
	allowCommand, blockCommand map[string]bool
	commandRules               bool

	policy Policy
}

// structural commands are never subject to command rules.
var structural = []string{"select", "multi", "exec", "discard"}

// neverPassed commands never reach the target.
var neverPassed = []string{"ping", "replconf", "publish", "spublish"}

// New checks c and returns its Filter. Its errors are usage errors: each
// names the option and the value at fault; all are reported at once.
func New(c Config) (*Filter, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	f := &Filter{
		keys:         c.Keys,
		allDBs:       len(c.DBs) == 0,
		selected:     map[int]bool{},
		mapDB:        map[int]int{},
		sources:      map[int]int{},
		reserved:     c.ReservedPrefix,
		allowPrefix:  slices.Clone(c.AllowKeyPrefix),
		blockPrefix:  slices.Clone(c.BlockKeyPrefix),
		allowCommand: map[string]bool{},
		blockCommand: map[string]bool{},
		policy:       c.OnPartial,
	}
	if c.OnPartial != Fail && c.OnPartial != Skip {
		bad("--on-partial-filter: unknown policy %d: want fail or skip", int(c.OnPartial))
	}
	databases := c.Databases
	if databases < 0 {
		bad("databases: %d is negative", databases)
	}
	if databases <= 0 {
		databases = DefaultDatabases
	}
	f.databases = databases

	// Databases: the selection, the map, and what each target receives.
	for _, db := range c.DBs {
		if db < 0 {
			bad("--dbs: database %d is negative", db)
			continue
		}
		f.selected[db] = true
	}
	for _, src := range slices.Sorted(maps.Keys(c.MapDB)) {
		dst := c.MapDB[src]
		switch {
		case src < 0 || dst < 0:
			bad("--map-db %d:%d: a database number is negative", src, dst)
		case !f.allDBs && !f.selected[src]:
			bad("--map-db %d:%d: source database %d is not selected by --dbs %s", src, dst, src, commaList(slices.Sorted(maps.Keys(f.selected))))
		default:
			f.mapDB[src] = dst
		}
	}
	universe := slices.Sorted(maps.Keys(f.selected))
	if f.allDBs {
		for db := range databases {
			universe = append(universe, db)
		}
		for src := range f.mapDB {
			if src >= databases {
				universe = append(universe, src)
			}
		}
		slices.Sort(universe)
	}
	bySource := map[int][]int{}
	for _, src := range universe {
		t, _ := f.DB(src)
		bySource[t] = append(bySource[t], src)
		f.sources[t]++
	}
	f.flushTargets = slices.Sorted(maps.Keys(bySource))
	if !c.AllowDBMerge {
		for _, t := range f.flushTargets {
			if srcs := bySource[t]; len(srcs) > 1 {
				all := "all"
				if len(srcs) == 2 {
					all = "both"
				}
				bad("source databases %s would %s be written to target database %d: map them apart with --map-db, select fewer with --dbs, or merge them knowingly with --allow-db-merge", dbList(srcs), all, t)
			}
		}
	}
	f.dbIdentity = f.allDBs
	for src, dst := range f.mapDB {
		if src != dst {
			f.dbIdentity = false
		}
	}

	// Keys.
	for _, p := range c.AllowKeyPrefix {
		switch {
		case p == "":
			bad("--allow-key-prefix: an empty prefix would match every key")
		case c.ReservedPrefix != "" && strings.HasPrefix(p, c.ReservedPrefix):
			bad("--allow-key-prefix %q: it is under the reserved prefix %q, whose keys never pass", p, c.ReservedPrefix)
		}
	}
	for _, p := range c.BlockKeyPrefix {
		if p == "" {
			bad("--block-key-prefix: an empty prefix would match every key")
		}
	}
	compile := func(flag string, patterns []string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for _, p := range patterns {
			if p == "" {
				bad("%s: an empty pattern would match every key", flag)
				continue
			}
			re, err := regexp.Compile(p)
			if err != nil {
				bad("%s %q: %v", flag, p, err)
				continue
			}
			out = append(out, re)
		}
		return out
	}
	f.allowRegex = compile("--allow-key-regex", c.AllowKeyRegex)
	f.blockRegex = compile("--block-key-regex", c.BlockKeyRegex)
	f.keyRules = len(c.AllowKeyPrefix)+len(c.AllowKeyRegex)+len(c.BlockKeyPrefix)+len(c.BlockKeyRegex) > 0

	// Commands.
	names := func(flag string, list []string, into map[string]bool) {
		for _, n := range list {
			parts := strings.Fields(strings.ReplaceAll(strings.ToLower(n), "|", " "))
			name := strings.Join(parts, "|")
			switch {
			case len(parts) == 0 || len(parts) > 2 || len(name) > command.MaxName:
				bad("%s %q: not a command name", flag, n)
			case slices.Contains(structural, name):
				bad("%s %q: %s is structural (it keeps databases and transactions in step) and no command rule applies to it", flag, n, strings.ToUpper(name))
			case flag == "--allow-command" && slices.Contains(neverPassed, name):
				bad("%s %q: %s never reaches the target", flag, n, strings.ToUpper(name))
			default:
				into[name] = true
			}
		}
	}
	names("--allow-command", c.AllowCommand, f.allowCommand)
	names("--block-command", c.BlockCommand, f.blockCommand)
	for _, name := range slices.Sorted(maps.Keys(f.allowCommand)) {
		if f.blockCommand[name] {
			bad("command %q is both allowed (--allow-command) and blocked (--block-command)", name)
		}
	}
	f.commandRules = len(f.allowCommand)+len(f.blockCommand) > 0

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// commaList writes database numbers as --dbs takes them: "0,3,5".
func commaList(dbs []int) string {
	s := make([]string, len(dbs))
	for i, db := range dbs {
		s[i] = strconv.Itoa(db)
	}
	return strings.Join(s, ",")
}

// dbList writes database numbers for a sentence: "0, 3 and 5".
func dbList(dbs []int) string {
	var b strings.Builder
	for i, db := range dbs {
		switch {
		case i == 0:
		case i == len(dbs)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(db))
	}
	return b.String()
}

// Key reports whether a key passes the key rules. It does not allocate
// unless there are regular expressions.
func (f *Filter) Key(key []byte) bool {
	if f.reserved != "" && hasPrefix(key, f.reserved) {
		return false
	}
	if len(f.allowPrefix)+len(f.allowRegex) > 0 && !f.allowed(key) {
		return false
	}
	for _, p := range f.blockPrefix {
		if hasPrefix(key, p) {
			return false
		}
	}
	for _, re := range f.blockRegex {
		if re.Match(key) {
			return false
		}
	}
	return true
}

// allowed reports whether key matches an allow rule.
func (f *Filter) allowed(key []byte) bool {
	for _, p := range f.allowPrefix {
		if hasPrefix(key, p) {
			return true
		}
	}
	for _, re := range f.allowRegex {
		if re.Match(key) {
			return true
		}
	}
	return false
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// DB reports whether a source database is selected, and its target
// database.
func (f *Filter) DB(db int) (target int, ok bool) {
	if db < 0 || !f.allDBs && !f.selected[db] {
		return 0, false
	}
	if t, ok := f.mapDB[db]; ok {
		return t, true
	}
	return db, true
}

// TargetDBs returns the target databases the sync writes, sorted and
// unique, for a source with databases 0 to sourceDBs-1; sourceDBs 0 means
// the Config's Databases.
func (f *Filter) TargetDBs(sourceDBs int) []int {
	if sourceDBs <= 0 {
		sourceDBs = f.databases
	}
	seen := map[int]bool{}
	for db := range sourceDBs {
		if t, ok := f.DB(db); ok {
			seen[t] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Command reports whether the command rules let a command through, by its
// name in any case; for a subcommand ("xgroup|create") a rule on either
// it or its container ("xgroup") applies, a block winning. Structural
// commands (SELECT, MULTI, EXEC, DISCARD) always pass.
func (f *Filter) Command(name []byte) bool {
	if !f.commandRules {
		return true
	}
	var buf [command.MaxName]byte
	lower, ok := command.AppendLower(buf[:0], name)
	if !ok {
		return len(f.allowCommand) == 0 // no rule names so long a command
	}
	if slices.Contains(structural, string(lower)) {
		return true
	}
	return f.command(lower)
}

// command applies the command rules to a lower-case name.
func (f *Filter) command(name []byte) bool {
	container := name
	if i := bytes.IndexByte(name, '|'); i >= 0 {
		container = name[:i]
	}
	if f.blockCommand[string(name)] || f.blockCommand[string(container)] {
		return false
	}
	return len(f.allowCommand) == 0 || f.allowCommand[string(name)] || f.allowCommand[string(container)]
}

// HasKeyRules reports whether any key rule is set (the reserved prefix is
// not one).
func (f *Filter) HasKeyRules() bool { return f.keyRules }

// Identity reports whether the rules keep everything as it is: every
// database under its own number, no key or command rule. The stream still
// loses what never passes (PUBLISH, PING, the reserved prefix's keys).
func (f *Filter) Identity() bool { return f.dbIdentity && !f.keyRules && !f.commandRules }
