package filter

import (
	"bytes"
	"fmt"
	"github.com/resync/resync/internal/keyname"
	"slices"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/command"
)

// Stream follows one source's command stream: its current database, which
// SELECT changes. It is not safe for concurrent use.
type Stream struct {
	f      *Filter
	db     int  // the source's current database
	target int  // its target database, when selected
	ok     bool // whether it is selected

	keys []command.KeyArg // Apply's keys, reused
	out  [][][]byte       // Apply's commands, reused
}

// NewStream starts following a stream; its current database is 0 until a
// SELECT (or SetDB).
func (f *Filter) NewStream() *Stream {
	s := &Stream{f: f}
	s.SetDB(0)
	return s
}

// DB returns the source's current database.
func (s *Stream) DB() int { return s.db }

// SetDB sets the source's current database, to resume a stream. The
// target connection must then be on the target of db (Filter.DB), if it
// is selected: Apply sends a SELECT only for a SELECT of the stream.
func (s *Stream) SetDB(db int) {
	s.db = db
	s.target, s.ok = s.f.DB(db)
}

// Result is what Apply makes of one source command.
type Result struct {
	// Cmds are the commands to send to the target, in order; none when
	// the command is left out. They may alias Apply's argument and
	// are valid until the next Apply.
	Cmds [][][]byte
	// Skipped is set when the Skip policy dropped a partial command:
	// why, naming the command (for a warning and a counter).
	Skipped string
	// Dropped says the rules left the command, or part of it, out on
	// purpose (keys filtered out, a database not selected, a command
	// refused, PUBLISH, PING). It is false when Skipped is set.
	Dropped bool
}

// Error is a command the rules can only partly apply to, under the Fail
// policy.
type Error struct {
	// Command is the command's name in upper case ("MSETNX",
	// "XGROUP CREATE").
	Command string
	// Keys are the command's first keys (up to 10, each cut at 128
	// bytes), for the message; none for FLUSHALL, FLUSHDB, SWAPDB.
	Keys []string
	// Reason says why the rules cannot apply.
	Reason string
	// Style says how Error shows Keys.
	Style keyname.Style
}

// The bounds of what an Error quotes of a command: a DEL can have a
// million keys, and a key 512 MB.
const (
	maxErrorKeys = 10
	maxErrorKey  = 128
)

// Error names the command, its keys and why, and says how to go on.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("filter: cannot apply ")
	b.WriteString(e.Command)
	if len(e.Keys) > 0 {
		b.WriteString(" (keys")
		for _, k := range e.Keys {
			b.WriteByte(' ')
			b.WriteString(e.Style.QuoteString(k))
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ": %s; to go on without such commands, use --on-partial-filter skip, or change the filter rules", e.Reason)
	return b.String()
}

// Apply returns what to send to the target for one source command, as
// the package documentation's table says. An error is an *Error (a
// partial command under the Fail policy), or a SELECT that names no
// database: the stream's database is then unknown.
func (s *Stream) Apply(args [][]byte) (Result, error) {
	s.out = s.out[:0]
	if len(args) == 0 {
		return Result{}, nil
	}
	var buf [command.MaxName]byte
	name, _ := command.AppendLower(buf[:0], args[0]) // too long: empty, no command
	switch string(name) {
	case "multi", "exec", "discard":
		return s.pass(args), nil
	case "ping", "replconf", "publish", "spublish":
		return Result{Dropped: true}, nil
	case "select":
		return s.selectDB(args)
	}
	spec, known := command.Lookup(args)
	if s.f.commandRules {
		rule := name
		if known {
			var full [command.MaxName]byte
			rule = append(full[:0], spec.Name...) // "xgroup|create"
		}
		if !s.f.command(rule) {
			return Result{Dropped: true}, nil
		}
	}
	switch string(name) {
	case "flushall":
		return s.flushAll(args)
	case "flushdb":
		return s.flushDB(args)
	case "swapdb":
		return s.swapDB(args)
	case "move":
		return s.move(args)
	case "copy":
		return s.copy(args)
	}
	return s.keyed(args, name, spec, known)
}

// pass sends the command as it is.
func (s *Stream) pass(args [][]byte) Result {
	s.out = append(s.out, args)
	return Result{Cmds: s.out}
}

// send sends the commands that replace the source's.
func (s *Stream) send(cmds ...[][]byte) Result {
	s.out = append(s.out, cmds...)
	return Result{Cmds: s.out}
}

func (s *Stream) selectDB(args [][]byte) (Result, error) {
	db, ok := -1, len(args) == 2
	if ok {
		db, ok = parseDB(args[1])
	}
	if !ok {
		return Result{}, fmt.Errorf("filter: malformed SELECT (%s): want SELECT and a database number; the source's current database is unknown", quoted(args))
	}
	s.SetDB(db)
	switch {
	case !s.ok:
		return Result{Dropped: true}, nil
	case s.target == db:
		return s.pass(args), nil
	}
	return s.send(selectCmd(s.target)), nil
}

func (s *Stream) flushAll(args [][]byte) (Result, error) {
	switch {
	case s.f.keyRules:
		return s.partial(args, nil, "it would also delete the target's keys that the key rules keep out of the sync")
	case s.f.dbIdentity:
		return s.pass(args), nil
	}
	for _, t := range s.f.flushTargets {
		s.out = append(s.out, selectCmd(t), append([][]byte{[]byte("FLUSHDB")}, args[1:]...))
	}
	if s.ok {
		s.out = append(s.out, selectCmd(s.target)) // where the stream goes on
	}
	return Result{Cmds: s.out}, nil
}

func (s *Stream) flushDB(args [][]byte) (Result, error) {
	switch {
	case !s.ok:
		return Result{Dropped: true}, nil
	case s.f.keyRules:
		return s.partial(args, nil, fmt.Sprintf("flushing database %d would also delete the target's keys that the key rules keep out of the sync", s.db))
	case s.f.sources[s.target] > 1:
		return s.partial(args, nil, fmt.Sprintf("target database %d also receives other source databases than %d, whose keys it would delete", s.target, s.db))
	}
	return s.pass(args), nil
}

func (s *Stream) swapDB(args [][]byte) (Result, error) {
	a, okA, b, okB := -1, false, -1, false
	if len(args) == 3 {
		a, okA = parseDB(args[1])
		b, okB = parseDB(args[2])
	}
	if !okA || !okB {
		return s.partial(args, nil, "malformed: want SWAPDB index1 index2")
	}
	ta, selA := s.f.DB(a)
	tb, selB := s.f.DB(b)
	switch {
	case !selA && !selB:
		return Result{Dropped: true}, nil
	case !selA || !selB:
		in, out := a, b
		if !selA {
			in, out = b, a
		}
		return s.partial(args, nil, fmt.Sprintf("database %d is synced but %d is not, so the target does not hold what the swap brings in", in, out))
	case s.f.sources[ta] > 1 || s.f.sources[tb] > 1:
		return s.partial(args, nil, fmt.Sprintf("target database %d or %d also receives other source databases, whose keys the swap would move", ta, tb))
	case s.f.keyRules:
		return s.partial(args, nil, "it would also swap the target's keys that the key rules keep out of the sync")
	case ta == a && tb == b:
		return s.pass(args), nil
	}
	return s.send([][]byte{args[0], itoa(ta), itoa(tb)}), nil
}

func (s *Stream) move(args [][]byte) (Result, error) {
	if len(args) != 3 {
		return s.partial(args, nil, "malformed: want MOVE key db")
	}
	if !s.f.Key(args[1]) {
		return Result{Dropped: true}, nil
	}
	db, ok := parseDB(args[2])
	if !ok {
		return s.partial(args, []int{1}, "malformed: want MOVE key db")
	}
	dt, dok := s.f.DB(db)
	switch {
	case s.ok && dok && dt == s.target:
		return Result{Dropped: true}, nil // merged databases: the key already is in dt
	case s.ok && dok && dt == db:
		return s.pass(args), nil
	case s.ok && dok:
		return s.send([][]byte{args[0], args[1], itoa(dt)}), nil
	case s.ok:
		return s.drop(s.send([][]byte{[]byte("DEL"), args[1]})), nil // the key leaves the synced databases
	case dok:
		return s.partial(args, []int{1}, fmt.Sprintf("it moves the key into database %d, which is synced, from %d, which is not: its value is not on the target", db, s.db))
	}
	return Result{Dropped: true}, nil
}

func (s *Stream) copy(args [][]byte) (Result, error) {
	if len(args) < 3 {
		return s.partial(args, nil, "malformed: want COPY source destination [DB db] [REPLACE]")
	}
	dbAt, dest := 0, s.db
	for i := 3; i < len(args); i++ {
		switch {
		case equalFold(args[i], "db") && i+1 < len(args):
			i++
			db, ok := parseDB(args[i])
			if !ok {
				return s.partial(args, []int{1, 2}, "malformed: want COPY source destination [DB db] [REPLACE]")
			}
			dbAt, dest = i, db
		case equalFold(args[i], "replace"):
		default:
			return s.partial(args, []int{1, 2}, "malformed: want COPY source destination [DB db] [REPLACE]")
		}
	}
	if !s.f.Key(args[2]) {
		return Result{Dropped: true}, nil
	}
	dt, dok := s.f.DB(dest)
	switch {
	case !dok:
		return Result{Dropped: true}, nil
	case !s.ok:
		return s.partial(args, []int{1, 2}, fmt.Sprintf("it copies into database %d, which is synced, from %d, which is not: the value is not on the target", dest, s.db))
	case !s.f.Key(args[1]):
		return s.partial(args, []int{1, 2}, fmt.Sprintf("the destination key passes the key rules but the source key %s, so its value is not on the target", s.fails(args[1])))
	case dest != s.db && dt == s.target && bytes.Equal(args[1], args[2]):
		return s.partial(args, []int{1, 2}, fmt.Sprintf("databases %d and %d are merged into target database %d, where a key cannot be copied onto itself", s.db, dest, dt))
	case dbAt == 0 || dt == dest:
		return s.pass(args), nil
	}
	out := slices.Clone(args)
	out[dbAt] = itoa(dt)
	return s.send(out), nil
}

// keyed applies the key rules to any other command.
func (s *Stream) keyed(args [][]byte, name []byte, spec *command.Spec, known bool) (Result, error) {
	s.keys = s.keys[:0]
	perDB := false // whether it acts on the current database's keys
	switch {
	case known:
		s.keys = spec.AppendKeyArgs(args, s.keys)
		perDB = len(spec.Keys) > 0
	case len(args) > 1:
		// Unknown: a module's command, or a later release's; its key is
		// most likely its first argument, or for a subcommand the one
		// after it.
		perDB = true
		at := 1
		if command.IsContainer(args[0]) {
			at = 2
		}
		if at < len(args) {
			s.keys = append(s.keys, command.KeyArg{Index: at})
		}
	}
	if !s.ok {
		if perDB {
			return Result{Dropped: true}, nil
		}
		return s.pass(args), nil
	}
	if len(s.keys) == 0 {
		return s.pass(args), nil
	}
	// The keys a command only reads (ZUNIONSTORE's sources) matter only
	// when a key it writes is kept: it is then computed from them.
	writes := false
	for _, k := range s.keys {
		writes = writes || !k.ReadOnly
	}
	var wPass, wFail, rFail int
	var readOut []byte
	for _, k := range s.keys {
		ok := s.f.Key(args[k.Index])
		switch {
		case k.ReadOnly && writes && !ok:
			rFail++
			readOut = firstOf(readOut, args[k.Index])
		case k.ReadOnly && writes:
		case ok:
			wPass++
		default:
			wFail++
		}
	}
	switch {
	case wPass == 0:
		return Result{Dropped: true}, nil // it writes nothing the target holds
	case wFail == 0 && rFail > 0:
		return s.partial(args, indexes(s.keys), fmt.Sprintf("it writes keys that pass the key rules from %s, whose value is not on the target", s.fails(readOut)))
	case wFail == 0:
		if string(name) == "sort" && s.f.keyRules && sortReadsPatterns(args) {
			return s.partial(args, indexes(s.keys), "its BY or GET pattern reads keys that the key rules cannot check")
		}
		return s.pass(args), nil
	}
	// Some of the keys it writes pass, some do not.
	switch string(name) {
	case "del", "unlink", "exists", "touch":
		return s.split(args, 1)
	case "mset", "msetnx":
		return s.split(args, 2)
	}
	return s.partial(args, indexes(s.keys), s.mixed(args))
}

// indexes returns the indexes of keys, for a message.
func indexes(keys []command.KeyArg) []int {
	out := make([]int, len(keys))
	for i, k := range keys {
		out[i] = k.Index
	}
	return out
}

// sortReadsPatterns reports whether a SORT has a BY or GET pattern that
// reads other keys: one with a '*' (a pattern without is no lookup, and
// GET # is the element itself).
func sortReadsPatterns(args [][]byte) bool {
	for i := 2; i+1 < len(args); i++ {
		switch {
		case equalFold(args[i], "by"), equalFold(args[i], "get"):
			i++
			if bytes.IndexByte(args[i], '*') >= 0 {
				return true
			}
		case equalFold(args[i], "limit"):
			i += 2
		case equalFold(args[i], "store"):
			i++
		}
	}
	return false
}

// split keeps the arguments of the keys that pass, width arguments from
// each key on.
func (s *Stream) split(args [][]byte, width int) (Result, error) {
	kept := make([][]byte, 1, len(args))
	kept[0] = args[0]
	for _, k := range s.keys {
		if k.Index+width > len(args) {
			return s.partial(args, indexes(s.keys), "malformed: a key without its value")
		}
		if s.f.Key(args[k.Index]) {
			kept = append(kept, args[k.Index:k.Index+width]...)
		}
	}
	return s.drop(s.send(kept)), nil
}

// drop marks a result as missing part of the source's command.
func (s *Stream) drop(r Result) Result {
	r.Dropped = true
	return r
}

// mixed explains a command whose keys pass and fail the key rules.
func (s *Stream) mixed(args [][]byte) string {
	writes := false
	for _, k := range s.keys {
		writes = writes || !k.ReadOnly
	}
	var in, out []byte
	for _, k := range s.keys {
		if k.ReadOnly && writes {
			continue
		}
		if s.f.Key(args[k.Index]) {
			in = firstOf(in, args[k.Index])
		} else {
			out = firstOf(out, args[k.Index])
		}
	}
	return fmt.Sprintf("key %s passes the key rules but %s, and the command cannot be split", s.show(in), s.fails(out))
}

func firstOf(have, b []byte) []byte {
	if have == nil {
		return b
	}
	return have
}

// fails says that a key fails the rules, and why when it is not obvious.
func (s *Stream) fails(key []byte) string {
	if s.f.reserved != "" && hasPrefix(key, s.f.reserved) {
		return fmt.Sprintf("%s is under the reserved prefix %q", s.show(key), s.f.reserved)
	}
	return fmt.Sprintf("%s does not", s.show(key))
}

// partial applies the policy to a command the rules can only partly
// apply to; keys are the indexes of its keys, for the message.
func (s *Stream) partial(args [][]byte, keys []int, reason string) (Result, error) {
	name := display(args)
	if s.f.policy == Skip {
		return Result{Skipped: name + ": " + reason}, nil
	}
	e := &Error{Command: name, Reason: reason, Style: s.f.keys}
	for _, i := range keys {
		if len(e.Keys) == maxErrorKeys {
			break
		}
		if i < len(args) {
			e.Keys = append(e.Keys, clip(args[i]))
		}
	}
	return Result{}, e
}

// display names a command for a message: in upper case, a subcommand
// after its container.
func display(args [][]byte) string {
	name := strings.ToUpper(clipTo(args[0], command.MaxName))
	if spec, ok := command.Lookup(args); ok && strings.Contains(spec.Name, "|") {
		name += " " + strings.ToUpper(string(args[1]))
	}
	if !printable(name) {
		return strconv.Quote(name)
	}
	return name
}

// quoted writes a command for a message, cut short.
func quoted(args [][]byte) string {
	var b strings.Builder
	for i, a := range args {
		if i == maxErrorKeys {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(clip(a)))
	}
	return b.String()
}

func clip(b []byte) string { return clipTo(b, maxErrorKey) }

// show quotes a key for a message, cut short, or redacted.
func (s *Stream) show(key []byte) string {
	if s.f.keys.Redact {
		return s.f.keys.Quote(key)
	}
	return strconv.Quote(clip(key))
}

func clipTo(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// parseDB reads a database number as Redis does: decimal, no sign, no
// leading zero, at most 2^31-1.
func parseDB(b []byte) (int, bool) { return command.ParseCount(b, 1<<31-1) }

func itoa(n int) []byte { return strconv.AppendInt(nil, int64(n), 10) }

func selectCmd(db int) [][]byte { return [][]byte{[]byte("SELECT"), itoa(db)} }

// equalFold reports whether b is s (lower-case ASCII) in any ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
