// Package command knows Redis's commands: which arguments of a command are
// keys, whether it writes, its arity. The facts are Redis 7.4's own (the
// key specs of src/commands/*.json, see table.go); the code that reads
// them is ours. Command arguments come from the network, so nothing here
// trusts them: a malformed command yields the keys that can be found
// safely, never a panic.
//
// A key spec says where the search for keys begins (a fixed index, or
// just after a keyword) and how the keys are found from there (a range,
// or a count of keys given by an argument):
//
//	SET k v                  at(1): one key at 1
//	MSET k v k v             rangeAt(1, -1, 2, 0): from 1 to the end, every second
//	EVAL s 2 k k a           keynumAt(2, 0, 1, 1): the count at 2, the keys after it
//	XREAD STREAMS k k 0 0    afterKeyword("STREAMS", 1, -1, 1, 2): the first half after STREAMS
//
// SORT (its STORE destination) and MIGRATE (its KEYS list) have parsers
// of their own, as in Redis, whose specs for them are incomplete.
// AppendKeyArgs also says which keys a command only reads (Redis's RO
// flag): ZUNIONSTORE reads its sources and writes its destination.
package command

// Spec describes one command or subcommand. Specs come from a read-only
// table: do not modify one.
type Spec struct {
	// Name is the command's name in lower case; a subcommand's is
	// "container|sub", such as "xgroup|create".
	Name string
	// Arity is Redis's: the number of arguments including the name;
	// negative means at least -Arity.
	Arity int
	// Write is Redis's WRITE flag: the command may modify the data set.
	Write bool
	// Container says the command is only a container of subcommands,
	// named by its second argument (XGROUP CREATE, OBJECT ENCODING).
	Container bool
	// Keys are the command's key specs, in Redis's order.
	Keys []KeySpec

	// find replaces the key specs for the commands whose keys they
	// cannot find.
	find func(args [][]byte, dst []KeyArg) []KeyArg
}

// KeyArg is one key among a command's arguments.
type KeyArg struct {
	// Index is the key's index in the arguments.
	Index int
	// ReadOnly says the command only reads the key (Redis's RO flag):
	// ZUNIONSTORE's sources, not its destination.
	ReadOnly bool
}

// Begin is where the search for a key spec's keys begins.
type Begin uint8

// The kinds of begin_search of Redis's key specs.
const (
	// BeginUnknown: the keys cannot be found from the arguments alone
	// (SORT's BY and GET patterns).
	BeginUnknown Begin = iota
	// BeginIndex: at a fixed index (Index).
	BeginIndex
	// BeginKeyword: just after the first Keyword searched from
	// StartFrom, forward when StartFrom is positive, else backward from
	// len(args)+StartFrom.
	BeginKeyword
)

// Find is how a key spec's keys are found from where the search begins.
type Find uint8

// The kinds of find_keys of Redis's key specs.
const (
	// FindUnknown: the keys cannot be found from the arguments alone.
	FindUnknown Find = iota
	// FindRange: from the begin index to LastKey (relative to it; when
	// negative, relative to the end of the arguments), every Step;
	// with a negative LastKey and a Limit above 1, only the first
	// 1/Limit of the arguments left (XREAD's keys, then as many IDs).
	FindRange
	// FindKeyNum: the argument at KeyNumIdx (relative to the begin
	// index) counts the keys, which start at FirstKey (relative to it),
	// every Step.
	FindKeyNum
)

// KeySpec is one of a command's key specs, as Redis declares it.
type KeySpec struct {
	Begin     Begin
	Index     int    // BeginIndex: the index
	Keyword   string // BeginKeyword: the keyword, in upper case
	StartFrom int    // BeginKeyword: where the search starts

	Find      Find
	LastKey   int // FindRange
	Step      int // FindRange and FindKeyNum
	Limit     int // FindRange
	KeyNumIdx int // FindKeyNum
	FirstKey  int // FindKeyNum

	// ReadOnly is Redis's RO flag: the command only reads these keys.
	ReadOnly bool
	// Incomplete is Redis's INCOMPLETE flag: the spec may miss keys, or
	// take a non-key for one; the command has a parser of its own.
	Incomplete bool
	// NotKey is Redis's NOT_KEY flag: the argument is a shard channel,
	// not a key (SPUBLISH); Keys leaves it out.
	NotKey bool
}

// MaxName bounds the names Lookup considers: the longest, a container and
// its subcommand, is well below it; a longer argument is no command.
const MaxName = 64

// byName indexes table by name; built once, read only after.
var byName = func() map[string]*Spec {
	m := make(map[string]*Spec, len(table))
	for i := range table {
		m[table[i].Name] = &table[i]
	}
	return m
}()

// Lookup finds the spec of the command args, whose first argument is the
// command's name in any case. For a container command it is the
// subcommand's spec; a container without a known subcommand is not found.
// It does not allocate.
func Lookup(args [][]byte) (*Spec, bool) {
	if len(args) == 0 {
		return nil, false
	}
	var buf [MaxName]byte
	name, ok := AppendLower(buf[:0], args[0])
	if !ok {
		return nil, false
	}
	s, ok := byName[string(name)] // no allocation: a map index
	if !ok || !s.Container {
		return s, ok
	}
	if len(args) < 2 {
		return nil, false
	}
	name = append(name, '|')
	if name, ok = AppendLower(name, args[1]); !ok {
		return nil, false
	}
	s, ok = byName[string(name)]
	return s, ok
}

// IsContainer reports whether name, in any case, is a container command
// (XGROUP, OBJECT): its second argument names a subcommand, which Lookup
// may not know (a later release's).
func IsContainer(name []byte) bool {
	var buf [MaxName]byte
	lower, ok := AppendLower(buf[:0], name)
	s, found := byName[string(lower)]
	return ok && found && s.Container
}

// AppendLower appends b in ASCII lower case to dst, a buffer of MaxName
// bytes, reporting false when it does not fit: a command name without an
// allocation.
func AppendLower(dst, b []byte) ([]byte, bool) {
	if len(dst)+len(b) > MaxName {
		return dst, false
	}
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// Keys appends to dst the indexes in args of the arguments that are keys,
// in the order of the command's key specs, and reports whether the
// command is known. An unknown command (a module's, a later release's)
// yields dst unchanged and false: callers decide what to do with it.
func Keys(args [][]byte, dst []int) ([]int, bool) {
	s, ok := Lookup(args)
	if !ok {
		return dst, false
	}
	return s.AppendKeys(args, dst), true
}

// AppendKeys appends to dst the indexes in args of the arguments that are
// keys, for args a command of this spec. A key spec that does not fit the
// arguments (a key count that is not a number, or larger than what
// follows it) contributes no keys; the others still do. It allocates
// nothing but dst's growth, except for SORT and MIGRATE.
func (s *Spec) AppendKeys(args [][]byte, dst []int) []int {
	if s.find != nil {
		for _, k := range s.find(args, nil) {
			dst = append(dst, k.Index)
		}
		return dst
	}
	for i := range s.Keys {
		if first, last, step, ok := s.Keys[i].bounds(args); ok {
			for j := first; j <= last; j += step {
				dst = append(dst, j)
			}
		}
	}
	return dst
}

// AppendKeyArgs is AppendKeys with whether the command only reads each
// key.
func (s *Spec) AppendKeyArgs(args [][]byte, dst []KeyArg) []KeyArg {
	if s.find != nil {
		return s.find(args, dst)
	}
	for i := range s.Keys {
		k := &s.Keys[i]
		if first, last, step, ok := k.bounds(args); ok {
			for j := first; j <= last; j += step {
				dst = append(dst, KeyArg{Index: j, ReadOnly: k.ReadOnly})
			}
		}
	}
	return dst
}

// bounds applies one key spec to args, as Redis's getKeysUsingKeySpecs
// does: its keys are from first to last, every step; ok is false when it
// has none, or does not fit the arguments.
func (k *KeySpec) bounds(args [][]byte) (first, last, step int, ok bool) {
	if k.NotKey {
		return 0, 0, 0, false
	}
	argc := len(args)
	switch k.Begin {
	case BeginIndex:
		first = k.Index
	case BeginKeyword:
		first = k.afterKeyword(args)
	default:
		return 0, 0, 0, false
	}
	if first < 1 || first >= argc {
		return 0, 0, 0, false
	}
	step = max(k.Step, 1)
	switch k.Find {
	case FindRange:
		switch {
		case k.LastKey >= 0:
			last = first + k.LastKey
		case k.Limit <= 1:
			last = argc + k.LastKey
		default:
			last = first + (argc-first)/k.Limit + k.LastKey
		}
	case FindKeyNum:
		at := first + k.KeyNumIdx
		if at < 0 || at >= argc {
			return 0, 0, 0, false
		}
		n, ok := ParseCount(args[at], argc)
		if !ok || n == 0 {
			return 0, 0, 0, false
		}
		first += k.FirstKey
		last = first + (n-1)*step
	default:
		return 0, 0, 0, false
	}
	if first < 1 || last < first || last >= argc {
		return 0, 0, 0, false
	}
	return first, last, step, true
}

// afterKeyword returns the index just after the spec's keyword, or 0. The
// last argument is not searched: no key could follow it.
func (k *KeySpec) afterKeyword(args [][]byte) int {
	argc := len(args)
	if k.StartFrom > 0 {
		for i := k.StartFrom; i < argc-1; i++ {
			if equalFold(args[i], k.Keyword) {
				return i + 1
			}
		}
		return 0
	}
	for i := argc + k.StartFrom; i > 1; i-- {
		if i < argc-1 && equalFold(args[i], k.Keyword) {
			return i + 1
		}
	}
	return 0
}

// ParseCount parses a key count the way Redis does (decimal, no sign, no
// leading zero), reporting false when it is not one or exceeds limit, so
// that no arithmetic on it can overflow.
func ParseCount(b []byte, limit int) (int, bool) {
	if len(b) == 0 || len(b) > 10 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= limit
}

// equalFold reports whether b is s (upper case ASCII) in any ASCII case;
// unlike bytes.EqualFold it folds no Unicode, as strcasecmp does not.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// sortKeys finds SORT's keys: the sorted key, then the destination of the
// last STORE, parsing the options as SORT does; it stops at one SORT
// would refuse. (The keys that BY and GET patterns read derive from the
// sorted values: nobody can name them beforehand.)
func sortKeys(args [][]byte, dst []KeyArg) []KeyArg {
	if len(args) < 2 {
		return dst
	}
	dst = append(dst, KeyArg{Index: 1, ReadOnly: true})
	store := 0
	for i := 2; i < len(args); i++ {
		left := len(args) - i - 1
		switch a := args[i]; {
		case equalFold(a, "ASC"), equalFold(a, "DESC"), equalFold(a, "ALPHA"):
		case equalFold(a, "LIMIT") && left >= 2:
			i += 2
		case equalFold(a, "STORE") && left >= 1:
			i++
			store = i
		case (equalFold(a, "BY") || equalFold(a, "GET")) && left >= 1:
			i++
		default:
			i = len(args) // a syntax error: SORT fails
		}
	}
	if store > 0 {
		dst = append(dst, KeyArg{Index: store})
	}
	return dst
}

// migrateKeys finds MIGRATE's keys: the key at 3, or, when a KEYS option
// follows the fixed arguments and the key at 3 is empty, the keys after
// KEYS. Options are skipped by their arguments so that an AUTH password
// spelled "keys" is not taken for the option.
func migrateKeys(args [][]byte, dst []KeyArg) []KeyArg {
	if len(args) < 4 {
		return dst
	}
	for i := 6; i < len(args); i++ {
		switch a := args[i]; {
		case equalFold(a, "KEYS"):
			if len(args[3]) > 0 {
				return dst // MIGRATE refuses a key and KEYS both
			}
			for j := i + 1; j < len(args); j++ {
				dst = append(dst, KeyArg{Index: j})
			}
			return dst
		case equalFold(a, "AUTH"):
			i++
		case equalFold(a, "AUTH2"):
			i += 2
		}
	}
	return append(dst, KeyArg{Index: 3})
}

// The constructors of table's key specs.

func keys(k ...KeySpec) []KeySpec { return k }

// at is the common spec: one key at pos.
func at(pos int) KeySpec { return rangeAt(pos, 0, 1, 0) }

func rangeAt(pos, last, step, limit int) KeySpec {
	return KeySpec{Begin: BeginIndex, Index: pos, Find: FindRange, LastKey: last, Step: step, Limit: limit}
}

func keynumAt(pos, keyNumIdx, firstKey, step int) KeySpec {
	return KeySpec{Begin: BeginIndex, Index: pos, Find: FindKeyNum, KeyNumIdx: keyNumIdx, FirstKey: firstKey, Step: step}
}

func afterKeyword(keyword string, startFrom, last, step, limit int) KeySpec {
	return KeySpec{Begin: BeginKeyword, Keyword: keyword, StartFrom: startFrom, Find: FindRange, LastKey: last, Step: step, Limit: limit}
}

func unknown() KeySpec { return KeySpec{} }

func (k KeySpec) ro() KeySpec { k.ReadOnly = true; return k }

func (k KeySpec) incomplete() KeySpec { k.Incomplete = true; return k }

func (k KeySpec) notKey() KeySpec { k.NotKey = true; return k }
