package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/resync/resync/internal/dialer"
)

// A task file (--config task.toml) holds a command's options: every flag
// of resync sync has its twin, named with underscores for dashes; a
// repeatable flag takes an array. How to reach each side is a table:
// [source] and [[target]] take the keys of endpointKeys; each [[target]]
// is one target of resync sync, in file order. Flags given on the
// command line win, key by key, except that --target on the command line
// replaces the [[target]] tables as a whole (taskFile.apply).
// resync.example.toml documents every setting.
//
//	name = "orders"
//	buffer_bytes = "64MiB"
//	block_key_prefix = ["tmp:", "cache:"]
//
//	[source]
//	url = "rediss://resync@10.0.0.1:6379"
//	password_file = "/etc/resync/source.pw"
//	tls_ca = "/etc/resync/ca.pem"
//
//	[[target]]
//	url = "redis://10.0.0.2:6379"
type taskFile struct {
	path     string
	settings []setting // top-level, in file order
	source   *endpointIn
	targets  []endpointIn
	// warnings are for the log, once the command has one.
	warnings []string
	// errs are the mistakes found in its shape, reported with those in
	// its settings (apply).
	errs lineErrors
}

// setting is one key of the file, with the line it is on (0 when the
// scanner could not find it).
type setting struct {
	key   string
	value any
	line  int
}

// endpointIn is a [source] or [[target]] table.
type endpointIn struct {
	table    string // "[source]", "[[target]]"
	line     int
	settings []setting
}

// endpointKeys are the keys of a [source] or [[target]] table. Each but
// password and tls_insecure is the twin of the flag --SIDE-KEY (url of
// --SIDE). password has no flag (the process list would show it);
// tls_insecure overrides the top-level tls_insecure for that side.
var endpointKeys = []string{"url", "password_file", "password", "tls_ca", "tls_cert", "tls_key", "tls_server_name", "tls_insecure"}

// endpointFlag names the flag a table key of side stands for ("" for
// none).
func endpointFlag(side, key string) string {
	switch key {
	case "url":
		return side
	case "password", "tls_insecure":
		return ""
	}
	return side + "-" + strings.ReplaceAll(key, "_", "-")
}

// endpointKeyOf tells whether a flag is one side's connection flag, and
// which table key is its twin.
func endpointKeyOf(name string) (side, key string, ok bool) {
	for _, side := range []string{"source", "target"} {
		for _, key := range endpointKeys {
			if f := endpointFlag(side, key); f != "" && f == name {
				return side, key, true
			}
		}
	}
	return "", "", false
}

// readTaskFile reads and checks a task file's shape; apply checks its
// settings against a command's flags.
func readTaskFile(path string) (*taskFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(b), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("--config %s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	lines := keyLines(string(b))
	f := &taskFile{path: path}
	var errs lineErrors
	for k, v := range raw {
		line := lines.find(k)
		switch k {
		case "source":
			t, ok := v.(map[string]any)
			if !ok {
				errs.add(line, "source must be a table: [source] with url = \"redis://…\"")
				continue
			}
			f.source = readEndpoint("[source]", "source", t, lines, &errs)
		case "target":
			switch t := v.(type) {
			case []map[string]any:
				for i, t := range t {
					f.targets = append(f.targets, *readEndpoint("[[target]]", fmt.Sprintf("target[%d]", i+1), t, lines, &errs))
				}
			case map[string]any: // [target]: one target, as good as [[target]]
				f.targets = append(f.targets, *readEndpoint("[target]", "target", t, lines, &errs))
			default:
				errs.add(line, "target must be a table: [[target]] with url = \"redis://…\"")
			}
		default:
			f.settings = append(f.settings, setting{key: k, value: v, line: line})
		}
	}
	f.errs = errs
	slices.SortFunc(f.settings, func(a, b setting) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.key, b.key))
	})
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 && f.holdsSecret() {
		f.warnings = append(f.warnings, fmt.Sprintf("--config %s holds a password or token and other users may read it (mode %04o): chmod 600 %s",
			path, st.Mode().Perm(), path))
	}
	return f, nil
}

// readEndpoint reads one [source] or [[target]] table; path is where the
// scanner filed its keys.
func readEndpoint(table, path string, t map[string]any, lines keyLineMap, errs *lineErrors) *endpointIn {
	e := &endpointIn{table: table, line: lines.find(path)}
	for k, v := range t {
		line := lines.find(path + "." + k)
		switch {
		case !slices.Contains(endpointKeys, k):
			hint := suggest(k, endpointKeys)
			if hint == "" && suggest(k, syncKeys(nil)) != "" {
				// Keys after a [table] header belong to the table.
				hint = " (a setting for the whole task goes before the first [table])"
			}
			errs.add(line, fmt.Sprintf("%s: unknown setting %q%s", table, k, hint))
			continue
		case k == "tls_insecure":
			if _, ok := v.(bool); !ok {
				errs.add(line, fmt.Sprintf("%s %s: %v is not true or false", table, k, tomlValue(v)))
				continue
			}
		default:
			if _, ok := v.(string); !ok {
				shown := tomlValue(v)
				if k == "password" {
					shown = "the value" // never repeat a password
				}
				errs.add(line, fmt.Sprintf("%s %s: %s is not a string", table, k, shown))
				continue
			}
		}
		e.settings = append(e.settings, setting{key: k, value: v, line: line})
	}
	if pw, _ := t["password"].(string); pw != "" {
		if pf, _ := t["password_file"].(string); pf != "" {
			errs.add(lines.find(path+".password"), table+": password and password_file: give one")
		}
	}
	return e
}

// holdsSecret tells whether the file holds a password (a password key or
// one in a URL) or the status token.
func (f *taskFile) holdsSecret() bool {
	for _, s := range f.settings {
		if s.key == "status_token" && s.value != "" {
			return true
		}
	}
	for _, e := range f.endpoints() {
		for _, s := range e.settings {
			v, _ := s.value.(string)
			if s.key == "password" && v != "" {
				return true
			}
			if o, err := dialer.ParseURL(v); s.key == "url" && err == nil && o.Password != "" {
				return true
			}
		}
	}
	return false
}

func (f *taskFile) endpoints() []endpointIn {
	var out []endpointIn
	if f.source != nil {
		out = append(out, *f.source)
	}
	return append(out, f.targets...)
}

// repeatable marks a flag that may be given several times (an array in a
// task file).
type repeatable interface{ repeatable() }

// applyConfig fills the flags the command line left unset from a task
// file (--config), and the source's and targets' endpoints (either side
// may be nil: a command without it) from its tables. It returns
// warnings for the log.
func applyConfig(fs *flag.FlagSet, path string, src, dst *endpointFlags) ([]string, error) {
	f, err := readTaskFile(path)
	if err != nil {
		return nil, err
	}
	return f.warnings, f.apply(fs, src, dst)
}

// apply sets the flags of fs that the command line left unset from the
// file's settings. A setting of resync sync that fs lacks is skipped, so
// that verify, restore and dump read a sync's task file; one that names no
// flag of resync sync is an error. It gives src and dst (nil: a command
// without that side) the endpoints of the file's tables.
func (f *taskFile) apply(fs *flag.FlagSet, src, dst *endpointFlags) error {
	sync, _ := newSyncFlags(io.Discard)
	cmdline := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { cmdline[fl.Name] = true })
	errs := slices.Clone(f.errs)
	for _, s := range f.settings {
		name := strings.ReplaceAll(s.key, "_", "-")
		if side, key, ok := endpointKeyOf(name); ok {
			errs.add(s.line, fmt.Sprintf("%s: set it in the [%s] table, as %s", s.key, side, key))
			continue
		}
		fl := fs.Lookup(name)
		if fl == nil && name != "config" && sync.Lookup(name) != nil {
			continue // a sync setting this command has no use for
		}
		if fl == nil || name == "config" {
			errs.add(s.line, fmt.Sprintf("unknown setting %q%s", s.key, suggest(s.key, syncKeys(sync))))
			continue
		}
		if cmdline[name] {
			continue
		}
		if err := setFromFile(fs, fl, s.value); err != nil {
			errs.add(s.line, fmt.Sprintf("%s: %v", s.key, err))
		}
	}
	if src != nil && f.source != nil {
		// --source and the [source] table merge key by key, the flags
		// winning, like every other setting.
		p := mergeTable(src, *f.source, cmdline)
		if cmdline[src.side] {
			p.url = src.urls.values[0]
		}
		src.tables = []endpoint{p}
	}
	// --target on the command line replaces the [[target]] tables as a
	// whole: a table's password and TLS files belong to its url (never
	// sent to another server), and several --target cannot be paired
	// with several tables. The --target-* flags apply to every target,
	// a table's or the command line's.
	if dst != nil && len(f.targets) > 0 && !cmdline[dst.side] {
		if len(f.targets) > 1 && !dst.urls.several {
			errs.add(f.targets[1].line, fmt.Sprintf("%d [[target]] tables: %s takes one target (--target URL on the command line replaces the tables)", len(f.targets), fs.Name()))
		}
		for _, in := range f.targets {
			p := mergeTable(dst, in, cmdline)
			if p.url == "" {
				errs.add(in.line, in.table+": no url")
			}
			dst.tables = append(dst.tables, p)
		}
	}
	return errs.err(f.path)
}

// mergeTable is the endpoint a [source] or [[target]] table gives: each
// of its keys, unless the command line gave that key's flag; the flags'
// settings for the keys it lacks. Its url is left "" when the command
// line gave the side's URL (the caller decides what that means).
func mergeTable(e *endpointFlags, in endpointIn, cmdline map[string]bool) endpoint {
	p := e.flagEndpoint()
	p.table = in.table
	for _, s := range in.settings {
		switch s.key {
		case "password":
			p.password = s.value.(string) // no flag: the process list would show it
			continue
		case "tls_insecure":
			if !cmdline["tls-insecure"] {
				p.insecure = s.value.(bool)
			}
			continue
		}
		if cmdline[endpointFlag(e.side, s.key)] {
			continue
		}
		v := s.value.(string) // readEndpoint checked the type
		switch s.key {
		case "url":
			p.url, p.urlFromFile = v, true
		case "password_file":
			p.pwFile = v
		case "tls_ca":
			p.tlsCA = v
		case "tls_cert":
			p.tlsCert = v
		case "tls_key":
			p.tlsKey = v
		case "tls_server_name":
			p.tlsName = v
		}
	}
	return p
}

// setFromFile sets a flag from a TOML value: one value, or an array for a
// repeatable flag.
func setFromFile(fs *flag.FlagSet, fl *flag.Flag, v any) error {
	values := []any{v}
	if list, ok := v.([]any); ok {
		if _, ok := fl.Value.(repeatable); !ok {
			return errors.New("takes one value, not a list")
		}
		values = list
	}
	for _, v := range values {
		switch v.(type) {
		case string, int64, bool, float64:
		default:
			return fmt.Errorf("%v is not a string, number or boolean", tomlValue(v))
		}
		if err := fs.Set(fl.Name, fmt.Sprint(v)); err != nil {
			// The flag package says only "parse error" for its own types.
			var def any
			if g, ok := fl.Value.(flag.Getter); ok {
				def = g.Get()
			}
			switch def.(type) {
			case time.Duration:
				return fmt.Errorf("%v is not a duration (e.g. 500ms, 10s, 5m)", tomlValue(v))
			case bool:
				return fmt.Errorf("%v is not true or false", tomlValue(v))
			case int, int64, uint, uint64:
				return fmt.Errorf("%v is not a whole number", tomlValue(v))
			}
			return err
		}
	}
	return nil
}

// tomlValue shows a value as it was written: strings quoted.
func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// syncKeys are the top-level keys of a sync task file; fs is resync
// sync's flags (nil: made here).
func syncKeys(fs *flag.FlagSet) []string {
	if fs == nil {
		fs, _ = newSyncFlags(io.Discard)
	}
	keys := []string{"source", "target"}
	fs.VisitAll(func(fl *flag.Flag) {
		if _, _, ok := endpointKeyOf(fl.Name); !ok && fl.Name != "config" {
			keys = append(keys, strings.ReplaceAll(fl.Name, "-", "_"))
		}
	})
	return keys
}

// suggest names the known key closest to a misspelt one, if one is close.
func suggest(key string, known []string) string {
	best, bestD := "", 3 // more than two edits away is no suggestion
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lineErrors gathers a file's mistakes, to report them all at once in
// file order.
type lineErrors []lineError

// lineError is one mistake, on a line (0: unknown).
type lineError struct {
	line int
	msg  string
}

func (e *lineErrors) add(line int, msg string) { *e = append(*e, lineError{line, msg}) }

func (e lineErrors) err(path string) error {
	if len(e) == 0 {
		return nil
	}
	slices.SortStableFunc(e, func(a, b lineError) int {
		return cmp.Or(cmp.Compare(a.line, b.line), strings.Compare(a.msg, b.msg))
	})
	var msgs []string
	for _, x := range e {
		where := ""
		if x.line > 0 {
			where = fmt.Sprintf("line %d: ", x.line)
		}
		msgs = append(msgs, fmt.Sprintf("--config %s: %s%s", path, where, x.msg))
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// keyLineMap maps a key's path to the line that sets it: "buffer_bytes",
// "source", "source.url", "target[1].tls_ca" (the first [[target]]).
type keyLineMap map[string]int

// find returns the line of path, else of the nearest table or key that
// holds it (an inline table's keys are not filed), else 0.
func (m keyLineMap) find(path string) int {
	for {
		if n, ok := m[path]; ok {
			return n
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// keyLines finds the line of each key and table header of a TOML
// document. BurntSushi/toml does not tell where a key is, so this reads
// the common forms itself: [table] and [[array]] headers, bare, quoted
// and dotted keys, and values that span lines (multi-line strings and
// arrays), so that a line inside them is not taken for a key. What it
// cannot read is left out, and an error about it goes without a line.
func keyLines(doc string) keyLineMap {
	m := keyLineMap{}
	var (
		table  []string           // the current table's path
		counts = map[string]int{} // [[array]] tables seen, by path
		sc     valueScanner
	)
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		if sc.open() {
			sc.scan(line)
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
		case strings.HasPrefix(t, "[["):
			path, rest, ok := parseKey(t[2:])
			if !ok || !strings.HasPrefix(strings.TrimSpace(rest), "]]") {
				table = nil // unreadable: file nothing under it
				continue
			}
			name := strings.Join(path, ".")
			counts[name]++
			path[len(path)-1] += "[" + strconv.Itoa(counts[name]) + "]"
			table = path
			setOnce(m, strings.Join(table, "."), n)
		case t[0] == '[':
			path, rest, ok := parseKey(t[1:])
			if !ok || !strings.HasPrefix(strings.TrimSpace(rest), "]") {
				table = nil
				continue
			}
			table = path
			setOnce(m, strings.Join(table, "."), n)
		default:
			path, rest, ok := parseKey(t)
			rest = strings.TrimSpace(rest)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			full := append(slices.Clone(table), path...)
			// Each prefix of a dotted key is a table it defines.
			for j := len(table) + 1; j <= len(full); j++ {
				setOnce(m, strings.Join(full[:j], "."), n)
			}
			sc.scan(rest[1:])
		}
	}
	return m
}

func setOnce(m keyLineMap, k string, line int) {
	if _, ok := m[k]; !ok {
		m[k] = line
	}
}

// parseKey reads a key — bare, "quoted" or 'literal' parts joined by
// dots — from the start of s, and returns its parts and what follows.
func parseKey(s string) (path []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				u = s[1:end] // a TOML escape Go does not know: near enough
			}
			part, s = u, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
			})
			if end == 0 {
				return nil, "", false
			}
			if end < 0 {
				end = len(s)
			}
			part, s = s[:end], s[end:]
		}
		path = append(path, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return path, s, true
		}
		s = s[1:]
	}
}

// valueScanner follows a value across lines: whether a multi-line string
// or an array (or inline table) is still open at the end of a line.
type valueScanner struct {
	quote string // the open multi-line string's delimiter, if any
	depth int    // open [ and {
}

func (v *valueScanner) open() bool { return v.quote != "" || v.depth > 0 }

func (v *valueScanner) scan(s string) {
	for len(s) > 0 {
		if v.quote != "" {
			i := strings.Index(s, v.quote)
			if i < 0 {
				return
			}
			s, v.quote = s[i+3:], ""
			continue
		}
		switch {
		case strings.HasPrefix(s, `"""`), strings.HasPrefix(s, `'''`):
			v.quote, s = s[:3], s[3:]
			continue
		case s[0] == '"':
			i := 1
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			s = s[min(i+1, len(s)):]
			continue
		case s[0] == '\'':
			i := strings.IndexByte(s[1:], '\'')
			if i < 0 {
				return
			}
			s = s[i+2:]
			continue
		case s[0] == '#':
			return
		case s[0] == '[' || s[0] == '{':
			v.depth++
		case s[0] == ']' || s[0] == '}':
			v.depth = max(v.depth-1, 0)
		}
		s = s[1:]
	}
}
