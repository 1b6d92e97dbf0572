package rdb_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/resync/resync/internal/rdb"
)

// TestFixtureOrigins compares the fixtures TestFixtures cannot (collected
// files that redis-server 7.0.15 did not load, so no oracle JSON holds
// their content) with the expectation files their origin repositories keep
// for them: librdb's JSON (data, struct and raw levels, filtered views, after
// a load into Redis) and RESP, HDT3213/rdb's JSON and AOF, rdb-rs's JSON,
// plain text and RESP. Each is brought to kv and compared with what the
// decoder gives for everything the format holds; what a format does not
// hold is taken from the decoded key (see origWant) and said where it is.
func TestFixtureOrigins(t *testing.T) {
	dir, idx := readIndex(t)
	formats := origFormats(t, dir)
	var bare []string
	for _, f := range idx.RDB {
		if f.Expect != "ok" || strings.HasPrefix(f.Path, "generated/") || f.Oracle != nil && f.Oracle.Status == "loaded" {
			continue // refused on purpose, or compared by TestFixtures
		}
		if len(f.Expectations) == 0 {
			bare = append(bare, f.Path)
			continue
		}
		t.Run(f.Path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeFile(data)
			if err != nil {
				t.Fatal(err)
			}
			extra, err := origExtras(data)
			if err != nil {
				t.Fatal(err)
			}
			o := &origFile{data: data, got: got, extra: extra}
			for _, e := range f.Expectations {
				format, ok := formats[e]
				if !ok {
					t.Errorf("%s: not in the top-level expectations of index.json", e)
					continue
				}
				body, err := os.ReadFile(filepath.Join(dir, e))
				if err != nil {
					t.Fatal(err)
				}
				t.Run(path.Base(e), func(t *testing.T) {
					t.Logf("%s (%s)", e, format)
					o.check(t, e, format, body)
				})
			}
		})
	}
	slices.Sort(bare)
	t.Logf("%d RDB files expected to load have neither an oracle that loaded them nor an expectation file: only \"decodes without error\" (TestFixtures) covers them:\n\t%s",
		len(bare), strings.Join(bare, "\n\t"))
}

func origFormats(t *testing.T, dir string) map[string]string {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Expectations []struct {
			Path   string `json:"path"`
			Format string `json:"format"`
		} `json:"expectations"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	m := map[string]string{}
	for _, e := range idx.Expectations {
		m[e.Path] = e.Format
	}
	return m
}

// origFile is one RDB file as the decoder saw it.
type origFile struct {
	data  []byte
	got   *decoded
	extra map[string]*origExtra
}

// origExtra is what decodeFile leaves out of kv and some expectations
// hold: the RDB type byte (the encoding) and the times of stream groups.
type origExtra struct {
	typ        byte
	idle, freq int64
	groups     []rdb.StreamGroup
}

func origExtras(data []byte) (map[string]*origExtra, error) {
	d, err := rdb.NewDecoder(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out := map[string]*origExtra{}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		x := &origExtra{typ: rec.Type, idle: rec.Idle, freq: int64(rec.Freq)}
		out[(&kv{DB: rec.DB, Key: string(rec.Key)}).id()] = x
		if rec.Kind != rdb.KindStream {
			continue // Next skips the value
		}
		_, err = d.ReadValue(0, func(e *rdb.Element) error {
			if e.Group == nil {
				return nil
			}
			g := *e.Group
			g.Name = bytes.Clone(g.Name)
			g.Pending = slices.Clone(g.Pending)
			g.Consumers = nil
			for _, c := range e.Group.Consumers {
				c.Name = bytes.Clone(c.Name)
				c.Pending = slices.Clone(c.Pending)
				g.Consumers = append(g.Consumers, c)
			}
			x.groups = append(x.groups, g)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
}

// dbOrder lists the databases holding keys, in the order of the file.
func (o *origFile) dbOrder() []int {
	var dbs []int
	for _, k := range o.got.keys {
		if !slices.Contains(dbs, k.DB) {
			dbs = append(dbs, k.DB)
		}
	}
	return dbs
}

func (o *origFile) check(t *testing.T, name, format string, body []byte) {
	switch {
	case strings.HasPrefix(format, "librdb JSON"):
		o.librdbJSON(t, name, format, body)
	case strings.HasPrefix(format, "RESP that librdb emits"),
		strings.HasPrefix(format, "RESP command stream (AOF) that HDT3213"),
		strings.HasPrefix(format, "rdb-rs RESP protocol"):
		o.resp(t, body)
	case strings.HasPrefix(format, "hdt3213-json"):
		o.hdtJSON(t, format, body)
	case strings.HasPrefix(format, "rdb-rs JSON"):
		o.rdbrsJSON(t, body)
	case strings.HasPrefix(format, "rdb-rs plain text"):
		o.rdbrsPlain(t, body)
	default:
		t.Errorf("%s: no reader for the format %q", name, format)
	}
}

// origWant is a key as an expectation file describes it. The no* fields
// say what the format does not hold: compare takes that part from the
// decoded key, so only what the file says is compared.
type origWant struct {
	k kv
	// val is the value as JSON whose kind the format leaves to the reader
	// (librdb and rdb-rs JSON: an array is a list or a set, an object a
	// hash, a zset or a stream); it is read once the decoded key is known,
	// and a shape that fits no decoded kind is a difference. blobs: val is
	// librdb's struct level (the listpacks/intsets of the key).
	val   *origJSON
	blobs bool

	noDB, noTTL, noFieldTTL bool
	noValue                 bool // only raw is known (librdb raw level)
	stream                  origStreamGaps

	raw        []byte // the DUMP payload body (type byte + value), nil: not given
	typeBytes  []byte // RDB type bytes the format's encoding name stands for
	typeName   string
	idle, freq *int64 // LRU idle seconds, LFU counter, when given
	moduleSize int    // librdb: serialized module value size; -1: not given

	times          []string // stream PEL delivery (and consumer) times
	hasTimes       bool
	timesConsumers bool
}

type origStreamGaps struct {
	meta          bool // only the entries: no length, IDs, counters, groups
	firstID       bool // no first entry ID
	v7            bool // no maximal deleted ID nor entries added
	entriesRead   bool // no group entries-read
	idleConsumers bool // consumers without pending entries are not listed
	fieldOrder    bool // entry fields as a map: their order is not known
}

type origCheck struct {
	covers    func(*kv) bool // the decoded keys the file describes; nil: all
	afterLoad bool           // read back from a server after loading the file
}

func (o *origFile) find(t *testing.T, w *origWant, c origCheck) *kv {
	t.Helper()
	if !w.noDB {
		for _, g := range o.got.keys {
			if g.DB == w.k.DB && g.Key == w.k.Key {
				return g
			}
		}
		t.Errorf("%s: in the expectation, not decoded", w.k.id())
		return nil
	}
	var found []*kv
	for _, g := range o.got.keys {
		if g.Key == w.k.Key && (c.covers == nil || c.covers(g)) {
			found = append(found, g)
		}
	}
	switch len(found) {
	case 1:
		return found[0]
	case 0:
		t.Errorf("%q: in the expectation, not decoded", w.k.Key)
	default:
		t.Errorf("%q: the expectation has no db number and the key is in %d dbs", w.k.Key, len(found))
	}
	return nil
}

// compare asserts every key of the expectation is decoded with the same
// content and that every decoded key the expectation covers is in it.
func (o *origFile) compare(t *testing.T, wants []*origWant, c origCheck) {
	t.Helper()
	now := time.Now().UnixMilli()
	matched := map[*kv]bool{}
	for _, w := range wants {
		g := o.find(t, w, c)
		if g == nil {
			continue
		}
		if matched[g] {
			t.Errorf("%s: listed twice", g.id())
		}
		matched[g] = true
		if c.covers != nil && !c.covers(g) {
			t.Errorf("%s: in the expectation, but outside what it covers", g.id())
		}
		x := o.extra[g.id()]
		if x == nil {
			x = &origExtra{idle: -1, freq: -1}
		}
		gc, wc := *g, w.k
		if w.noDB {
			wc.DB = gc.DB
		}
		if w.noTTL {
			wc.ExpireMs = gc.ExpireMs
		}
		if w.val != nil && !w.noValue {
			if err := origFill(w, &wc, gc.Kind, x.typ); err != nil {
				t.Errorf("%s: %v", g.id(), err)
				continue
			}
		}
		if w.noFieldTTL {
			wc.FieldExpire = gc.FieldExpire
		}
		if w.noValue {
			wc.Kind, wc.Str, wc.List, wc.ZSet, wc.Hash, wc.FieldExpire, wc.Stream, wc.Module =
				gc.Kind, gc.Str, gc.List, gc.ZSet, gc.Hash, gc.FieldExpire, gc.Stream, gc.Module
		}
		if gc.Stream != nil && wc.Stream != nil {
			gc.Stream, wc.Stream = origMaskStream(*gc.Stream, *wc.Stream, w.stream)
		}
		if d := origDiff(&gc, &wc); d != "" {
			t.Errorf("%s differs (decoded != expected): %s", g.id(), d)
		}
		if w.raw != nil && !bytes.Equal(g.Raw, w.raw) {
			t.Errorf("%s: raw payload differs (decoded != expected): %.300q != %.300q", g.id(), g.Raw, w.raw)
		}
		if w.typeBytes != nil && !slices.Contains(w.typeBytes, x.typ) {
			t.Errorf("%s: RDB type %d, the expectation says encoding %q (type %v)", g.id(), x.typ, w.typeName, w.typeBytes)
		}
		if w.idle != nil && *w.idle != x.idle {
			t.Errorf("%s: LRU idle %d, the expectation says %d", g.id(), x.idle, *w.idle)
		}
		if w.freq != nil && *w.freq != x.freq {
			t.Errorf("%s: LFU counter %d, the expectation says %d", g.id(), x.freq, *w.freq)
		}
		if w.moduleSize >= 0 && len(g.Raw)-1 != w.moduleSize {
			// The size counts from the module ID to the EOF opcode: the
			// payload without its type byte.
			t.Errorf("%s: module value of %d bytes, the expectation says %d", g.id(), len(g.Raw)-1, w.moduleSize)
		}
		if w.hasTimes {
			if gt := origTimesOf(x.groups, w.timesConsumers); !slices.Equal(gt, w.times) {
				t.Errorf("%s: stream times differ (decoded != expected):\n\t%s\n!=\n\t%s", g.id(), strings.Join(gt, "\n\t"), strings.Join(w.times, "\n\t"))
			}
		}
		if c.afterLoad && g.ExpireMs != 0 && g.ExpireMs <= now {
			// The origin's test loads the file into a server each time it
			// runs: a key it still holds has not expired by now.
			t.Errorf("%s: held by the server that loaded the file, but decoded as expired at %d", g.id(), g.ExpireMs)
		}
	}
	var dropped int
	for _, g := range o.got.keys {
		if matched[g] || c.covers != nil && !c.covers(g) {
			continue
		}
		if c.afterLoad && g.ExpireMs != 0 && g.ExpireMs < now {
			dropped++ // expired: the loading server dropped it
			continue
		}
		t.Errorf("%s: decoded, but not in the expectation (decoded: kind %s, expire %d)", g.id(), g.Kind, g.ExpireMs)
	}
	t.Logf("%d keys compared, %d decoded keys not covered by this view, %d expired ones dropped on load", len(matched), len(o.got.keys)-len(matched)-dropped, dropped)
}

// origDiff is kv.diff with TTLs, elements, hashes and field TTLs spelled
// out one by one and quoted (the values can be binary).
func origDiff(g, w *kv) string {
	var d []string
	if g.ExpireMs != w.ExpireMs {
		d = append(d, fmt.Sprintf("expire: %d != %d", g.ExpireMs, w.ExpireMs))
	}
	if !slices.Equal(g.List, w.List) {
		d = append(d, fmt.Sprintf("elements: %.2000q != %.2000q", g.List, w.List))
	}
	if !slices.Equal(g.ZSet, w.ZSet) {
		q := func(z []member) string {
			var s []string
			for _, m := range z {
				s = append(s, fmt.Sprintf("%q:%v", m.Member, m.Score))
			}
			return "[" + strings.Join(s, " ") + "]"
		}
		if x, y := q(g.ZSet), q(w.ZSet); x != y {
			d = append(d, fmt.Sprintf("zset: %.2000s != %.2000s", x, y))
		}
	}
	for _, f := range origUnion(g.Hash, w.Hash) {
		a, inG := g.Hash[f]
		b, inW := w.Hash[f]
		if a != b || inG != inW {
			d = append(d, fmt.Sprintf("hash field %q: %s != %s", f, origMaybe(inG, strconv.Quote(a)), origMaybe(inW, strconv.Quote(b))))
		}
	}
	for _, f := range origUnion(g.FieldExpire, w.FieldExpire) {
		a, inG := g.FieldExpire[f]
		b, inW := w.FieldExpire[f]
		if a != b || inG != inW {
			d = append(d, fmt.Sprintf("field %q expiry: %s != %s", f, origMaybe(inG, strconv.FormatInt(a, 10)), origMaybe(inW, strconv.FormatInt(b, 10))))
		}
	}
	gc, wc := *g, *w
	wc.ExpireMs, wc.List, wc.ZSet, wc.Hash, wc.FieldExpire = gc.ExpireMs, gc.List, gc.ZSet, gc.Hash, gc.FieldExpire
	if gc.Stream != nil && wc.Stream != nil {
		gs, ws := *gc.Stream, *wc.Stream
		type meta struct {
			Length                        uint64
			LastID, FirstID, MaxDeletedID string
			EntriesAdded                  uint64
		}
		if a, b := (meta{gs.Length, gs.LastID, gs.FirstID, gs.MaxDeletedID, gs.EntriesAdded}), (meta{ws.Length, ws.LastID, ws.FirstID, ws.MaxDeletedID, ws.EntriesAdded}); a != b {
			d = append(d, fmt.Sprintf("stream metadata: %+v != %+v", a, b))
		}
		ws.Length, ws.LastID, ws.FirstID, ws.MaxDeletedID, ws.EntriesAdded = gs.Length, gs.LastID, gs.FirstID, gs.MaxDeletedID, gs.EntriesAdded
		wc.Stream = &ws
	}
	if rest := gc.diff(&wc); rest != "" {
		d = append(d, rest)
	}
	return strings.Join(d, "; ")
}

func origUnion[V any](a, b map[string]V) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func origMaybe(ok bool, s string) string {
	if !ok {
		return "(none)"
	}
	return s
}

// origMaskStream returns copies of both streams where what the format
// does not hold is the decoded value.
func origMaskStream(g, w streamModel, gaps origStreamGaps) (*streamModel, *streamModel) {
	g.Groups = slices.Clone(g.Groups)
	w.Groups = slices.Clone(w.Groups)
	if gaps.meta {
		w.Length, w.LastID, w.FirstID, w.MaxDeletedID, w.EntriesAdded, w.Groups = g.Length, g.LastID, g.FirstID, g.MaxDeletedID, g.EntriesAdded, g.Groups
	}
	if gaps.firstID {
		w.FirstID = g.FirstID
	}
	if gaps.v7 {
		w.MaxDeletedID, w.EntriesAdded = g.MaxDeletedID, g.EntriesAdded
	}
	if gaps.entriesRead {
		for i := range min(len(g.Groups), len(w.Groups)) {
			w.Groups[i].EntriesRead = g.Groups[i].EntriesRead
		}
	}
	if gaps.idleConsumers {
		for i := range g.Groups {
			g.Groups[i].Consumers = slices.DeleteFunc(slices.Clone(g.Groups[i].Consumers), func(c consumerModel) bool { return len(c.PEL) == 0 })
		}
	}
	if gaps.fieldOrder {
		g.Entries, w.Entries = origSortFields(g.Entries), origSortFields(w.Entries)
	}
	return &g, &w
}

func origSortFields(es []entryModel) []entryModel {
	out := make([]entryModel, len(es))
	for i, e := range es {
		var pairs [][2]string
		for j := 0; j+1 < len(e.Fields); j += 2 {
			pairs = append(pairs, [2]string{e.Fields[j], e.Fields[j+1]})
		}
		slices.SortStableFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		out[i].ID = e.ID
		for _, p := range pairs {
			out[i].Fields = append(out[i].Fields, p[0], p[1])
		}
	}
	return out
}

func origPELTime(group, id string, ms int64) string {
	return fmt.Sprintf("group %q: %s delivered at %d", group, id, ms)
}

func origConsumerTime(group, name string, seen, active int64) string {
	s := fmt.Sprintf("group %q consumer %q: seen at %d", group, name, seen)
	if active >= 0 {
		s += fmt.Sprintf(", active at %d", active)
	}
	return s
}

func origTimesOf(groups []rdb.StreamGroup, consumers bool) []string {
	out := []string{}
	for _, g := range groups {
		for _, p := range g.Pending {
			out = append(out, origPELTime(string(g.Name), p.ID.String(), p.DeliveryMs))
		}
		if consumers {
			for _, c := range g.Consumers {
				out = append(out, origConsumerTime(string(g.Name), string(c.Name), c.SeenMs, c.ActiveMs))
			}
		}
	}
	slices.Sort(out)
	return out
}

func (o *origFile) checkAux(t *testing.T, key, value string) {
	t.Helper()
	var vals []string
	for _, a := range o.got.aux {
		if a.Key == key {
			if a.Value == value {
				return
			}
			vals = append(vals, a.Value)
		}
	}
	t.Errorf("AUX %s: decoded %q, the expectation says %q", key, vals, value)
}

func (o *origFile) checkFunctions(t *testing.T, want []string) {
	t.Helper()
	var code []string
	for _, f := range o.got.functions {
		code = append(code, f.Code)
	}
	slices.Sort(code)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(code, want) {
		t.Errorf("functions differ (decoded != expected): %q != %q", code, want)
	}
}

// --- librdb JSON -------------------------------------------------------

// librdb's rdb-to-json test outputs (redis/librdb test/dumps). Strings are
// bytes: librdb writes a byte that is not printable as \u00XX. Flattened
// output (the default) has no db numbers; "flatten = 0" writes one object
// per db, in file order. No level writes TTLs nor LRU/LFU data, so those
// are not compared; field TTLs neither (the 7.4 data level lists the
// fields only).
func (o *origFile) librdbJSON(t *testing.T, name, format string, body []byte) {
	level := "data"
	switch {
	case strings.Contains(format, "raw level"):
		level = "raw"
	case strings.Contains(format, "struct level"):
		level = "struct"
	}
	// "Data after load": librdb loaded the file into a live Redis (RESP),
	// saved it and wrote that file's JSON; keys expired by then are gone.
	c := origCheck{afterLoad: strings.Contains(format, "after")}
	switch {
	case strings.Contains(format, "subset (string keys)"):
		// test_main.c test_mixed_levels_registration: strings handled at
		// the raw level, lists at the data level, each to its own file.
		c.covers = func(k *kv) bool { return k.Kind == "string" }
	case strings.Contains(format, "subset (list keys)"):
		c.covers = func(k *kv) bool { return k.Kind == "list" }
	case strings.Contains(format, "two filters"):
		// test_main.c test_createHandlersRdbToJson_and_2_FilterKey: key
		// filters ".*i.*" then "mylist.*" (regexec: unanchored).
		a, b := regexp.MustCompile(".*i.*"), regexp.MustCompile("mylist.*")
		c.covers = func(k *kv) bool { return a.MatchString(k.Key) && b.MatchString(k.Key) }
	}
	text := bytes.TrimSpace(body)
	var dbs []*origJSON
	perDB := len(text) > 0 && text[0] == '['
	if perDB {
		v, err := origParseJSON(text)
		if err != nil || v.t != 'a' {
			t.Fatalf("%s: not a JSON array: %v", name, err)
		}
		dbs = v.arr
	} else {
		v, err := origParseJSON(slices.Concat([]byte("{"), text, []byte("}")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dbs = []*origJSON{v}
	}
	order := o.dbOrder()
	if perDB && len(dbs) != len(order) {
		t.Fatalf("%d databases in the expectation, %d decoded (%v)", len(dbs), len(order), order)
	}
	var wants []*origWant
	for i, obj := range dbs {
		if obj.t != 'o' {
			t.Fatalf("%s: database %d is not an object", name, i)
		}
		for j, key := range obj.keys {
			v := obj.vals[j]
			switch key {
			case "__aux__":
				for n, k := range v.keys {
					o.checkAux(t, k, v.vals[n].s)
				}
				continue
			case "__func__":
				o.checkFunctions(t, origStrings(v.vals))
				continue
			case "__dbsize__":
				db := -1
				if perDB {
					db = order[i]
				} else if len(order) == 1 {
					db = order[0]
				}
				o.checkDBSize(t, v, db)
				continue
			case "__slotinfo__":
				t.Logf("__slotinfo__ (%s) not compared: the decoder does not report SLOT_INFO", strings.Join(origPairs(v), ", "))
				continue
			}
			w := &origWant{k: kv{Key: key}, noTTL: true, noFieldTTL: true, moduleSize: -1}
			if perDB {
				w.k.DB = order[i]
			} else {
				w.noDB = true
			}
			switch {
			case level == "raw" && v.t == 's':
				w.raw, w.noValue = []byte(v.s), true
			case level == "raw":
				// librdb's raw level leaves sets (intset, listpack) to the
				// struct level: the same blobs as the *_struct.json file.
				w.val, w.blobs = v, true
			case level == "struct":
				w.val, w.blobs = v, true
			default:
				w.val = v
			}
			wants = append(wants, w)
		}
	}
	o.compare(t, wants, c)
}

// checkDBSize compares librdb's __dbsize__ (the RESIZEDB opcode: keys and
// keys with a TTL, which for a SAVE are the real counts) with the keys
// decoded in db.
func (o *origFile) checkDBSize(t *testing.T, v *origJSON, db int) {
	t.Helper()
	if db < 0 {
		t.Logf("__dbsize__ not compared: flattened output of several dbs")
		return
	}
	var size, expires int64
	for _, k := range o.got.keys {
		if k.DB == db {
			size++
			if k.ExpireMs != 0 {
				expires++
			}
		}
	}
	if ws, we := v.get("size").int(), v.get("expires").int(); ws != size || we != expires {
		t.Errorf("db %d: %d keys, %d with a TTL decoded; __dbsize__ says %d and %d", db, size, expires, ws, we)
	}
}

var origModuleText = regexp.MustCompile(`^<Content of Module '(.*)'\. Occupies a serialized size of (\d+) bytes>$`)

// origFill reads w.val as the value of a decoded key of that kind (and RDB
// type, for struct-level blobs).
func origFill(w *origWant, k *kv, kind string, typ byte) error {
	v := w.val
	k.Kind = kind
	if w.blobs && origBlobType(typ) {
		els, err := origBlobElements(typ, v)
		if err != nil {
			return err
		}
		return origFillElements(k, els)
	}
	switch {
	case kind == "string" && v.t == 's':
		k.Str = v.s
	case kind == "module" && v.t == 's':
		m := origModuleText.FindStringSubmatch(v.s)
		if m == nil {
			return fmt.Errorf("module value %q: not librdb's module text", v.s)
		}
		k.Module = m[1]
		w.moduleSize, _ = strconv.Atoi(m[2])
	case (kind == "list" || kind == "set") && v.t == 'a':
		k.List = []string{}
		for _, x := range v.arr {
			if x.t != 's' {
				return fmt.Errorf("element %s is not a string", x)
			}
			k.List = append(k.List, x.s)
		}
	case kind == "zset" && v.t == 'o':
		for i, m := range v.keys {
			s, err := strconv.ParseFloat(v.vals[i].s, 64)
			if err != nil {
				return fmt.Errorf("score of %q: %v", m, err)
			}
			k.ZSet = append(k.ZSet, member{m, s})
		}
		sortZSet(k.ZSet)
	case kind == "hash" && v.t == 'o':
		k.Hash = map[string]string{}
		for i, f := range v.keys {
			if v.vals[i].t != 's' {
				return fmt.Errorf("field %q: value %s is not a string", f, v.vals[i])
			}
			k.Hash[f] = v.vals[i].s
		}
	case kind == "stream" && v.t == 'o':
		s, err := origLibrdbStream(w, v)
		if err != nil {
			return err
		}
		k.Stream = s
	default:
		return fmt.Errorf("kind: decoded a %s, the expectation holds %s", kind, v.shape())
	}
	k.normalize()
	return nil
}

// origBlobType reports the types librdb's struct level writes as blobs
// (ziplists, listpacks, intsets) rather than as elements.
func origBlobType(typ byte) bool {
	switch typ {
	case rdb.TypeHashZipmap, rdb.TypeListZiplist, rdb.TypeSetIntset, rdb.TypeZSetZiplist, rdb.TypeHashZiplist,
		rdb.TypeListQuicklist, rdb.TypeHashListpack, rdb.TypeZSetListpack, rdb.TypeListQuicklist2,
		rdb.TypeSetListpack, rdb.TypeHashListpackExPreGA, rdb.TypeHashListpackEx:
		return true
	}
	return false
}

func origBlobElements(typ byte, v *origJSON) ([]string, error) {
	if v.t != 'a' {
		return nil, fmt.Errorf("struct level: want an array of blobs, the expectation holds %s", v.shape())
	}
	var out []string
	for i, b := range v.arr {
		if b.t != 's' {
			return nil, fmt.Errorf("struct level: blob %d is %s", i, b.shape())
		}
		var els []string
		var err error
		switch typ {
		case rdb.TypeSetIntset:
			els, err = origIntset([]byte(b.s))
		case rdb.TypeHashListpack, rdb.TypeZSetListpack, rdb.TypeListQuicklist2, rdb.TypeSetListpack:
			els, err = origListpack([]byte(b.s))
		default:
			return nil, fmt.Errorf("struct level: no reader here for the blobs of RDB type %d", typ)
		}
		if err != nil {
			return nil, fmt.Errorf("struct level: blob %d: %v", i, err)
		}
		out = append(out, els...)
	}
	return out, nil
}

func origFillElements(k *kv, els []string) error {
	switch k.Kind {
	case "list", "set":
		k.List = els
	case "hash", "zset":
		if len(els)%2 != 0 {
			return fmt.Errorf("struct level: %d elements for a %s", len(els), k.Kind)
		}
		if k.Kind == "hash" {
			k.Hash = map[string]string{}
		}
		for i := 0; i < len(els); i += 2 {
			if k.Kind == "hash" {
				k.Hash[els[i]] = els[i+1]
				continue
			}
			s, err := strconv.ParseFloat(els[i+1], 64)
			if err != nil {
				return fmt.Errorf("struct level: score of %q: %v", els[i], err)
			}
			k.ZSet = append(k.ZSet, member{els[i], s})
		}
		sortZSet(k.ZSet)
	default:
		return fmt.Errorf("struct level: blobs for a %s", k.Kind)
	}
	k.normalize()
	return nil
}

// origListpack reads the entries of a listpack, integers in decimal.
func origListpack(b []byte) ([]string, error) {
	if len(b) < 7 || int(binary.LittleEndian.Uint32(b)) != len(b) {
		return nil, fmt.Errorf("listpack: bad header")
	}
	count := int(binary.LittleEndian.Uint16(b[4:]))
	var out []string
	p := 6
	for {
		if p >= len(b) {
			return nil, fmt.Errorf("listpack: no end byte")
		}
		c := b[p]
		if c == 0xFF {
			if p != len(b)-1 {
				return nil, fmt.Errorf("listpack: %d bytes after the end", len(b)-1-p)
			}
			break
		}
		var n, hdr int // entry size without backlen, header size
		var iv int64
		isInt := true
		switch {
		case c&0x80 == 0:
			iv, n = int64(c), 1
		case c&0xC0 == 0x80:
			hdr, n, isInt = 1, 1+int(c&0x3F), false
		case c&0xE0 == 0xC0:
			if p+1 >= len(b) {
				return nil, fmt.Errorf("listpack: truncated")
			}
			iv, n = int64(c&0x1F)<<8|int64(b[p+1]), 2
			if iv >= 1<<12 {
				iv -= 1 << 13
			}
		case c&0xF0 == 0xE0:
			if p+1 >= len(b) {
				return nil, fmt.Errorf("listpack: truncated")
			}
			hdr, isInt = 2, false
			n = 2 + (int(c&0x0F)<<8 | int(b[p+1]))
		case c == 0xF0:
			if p+5 > len(b) {
				return nil, fmt.Errorf("listpack: truncated")
			}
			hdr, isInt = 5, false
			n = 5 + int(binary.LittleEndian.Uint32(b[p+1:]))
		case c >= 0xF1 && c <= 0xF4:
			w := map[byte]int{0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[c]
			if p+1+w > len(b) {
				return nil, fmt.Errorf("listpack: truncated")
			}
			var u uint64
			for i := w - 1; i >= 0; i-- {
				u = u<<8 | uint64(b[p+1+i])
			}
			iv, n = int64(u<<(64-8*w))>>(64-8*w), 1+w
		default:
			return nil, fmt.Errorf("listpack: bad encoding byte %#x", c)
		}
		if p+n > len(b) {
			return nil, fmt.Errorf("listpack: truncated")
		}
		if isInt {
			out = append(out, strconv.FormatInt(iv, 10))
		} else {
			out = append(out, string(b[p+hdr:p+n]))
		}
		back := 5
		for i, lim := range []int{127, 16382, 2097150, 268435454} {
			if n <= lim {
				back = i + 1
				break
			}
		}
		p += n + back
	}
	if count != 65535 && count != len(out) {
		return nil, fmt.Errorf("listpack: header counts %d entries, %d read", count, len(out))
	}
	return out, nil
}

func origIntset(b []byte) ([]string, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("intset: bad header")
	}
	enc, n := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
	if enc != 2 && enc != 4 && enc != 8 || len(b) != 8+enc*n {
		return nil, fmt.Errorf("intset: encoding %d, %d entries in %d bytes", enc, n, len(b))
	}
	var out []string
	for i := range n {
		p := b[8+i*enc:]
		var v int64
		switch enc {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(p)))
		default:
			v = int64(binary.LittleEndian.Uint64(p))
		}
		out = append(out, strconv.FormatInt(v, 10))
	}
	return out, nil
}

// origLibrdbStream reads librdb's stream: the entries, and with
// includeStreamMeta the length, IDs, counters and groups.
func origLibrdbStream(w *origWant, v *origJSON) (*streamModel, error) {
	s := &streamModel{}
	for _, e := range v.get("entries").list() {
		em := entryModel{ID: e.get("id").s}
		items := e.get("items")
		for i, f := range items.keys {
			em.Fields = append(em.Fields, f, items.vals[i].s)
		}
		s.Entries = append(s.Entries, em)
	}
	if v.get("length") == nil {
		// stream_data.json: entries only (includeStreamMeta = 0).
		w.stream.meta = true
		return s, nil
	}
	s.Length = uint64(v.get("length").int())
	s.EntriesAdded = uint64(v.get("entriesAdded").int())
	s.FirstID, s.LastID, s.MaxDeletedID = v.get("firstID").s, v.get("lastID").s, v.get("maxDelEntryID").s
	w.hasTimes, w.timesConsumers, w.times = true, true, []string{}
	for _, g := range v.get("groups").list() {
		name := g.get("name").s
		gm := groupModel{Name: name, LastDeliveredID: g.get("lastid").s}
		if er := g.get("entriesRead"); er != nil {
			n := er.int()
			gm.EntriesRead = &n
		} else {
			w.stream.entriesRead = true
		}
		owner := map[string]string{}
		for _, c := range g.get("consumers").list() {
			cm := consumerModel{Name: c.get("name").s, PEL: []string{}}
			for _, p := range c.get("pending").list() {
				cm.PEL = append(cm.PEL, p.get("id").s)
				owner[p.get("id").s] = cm.Name
			}
			active := int64(-1)
			if a := c.get("activeTime"); a != nil {
				active = a.int()
			}
			w.times = append(w.times, origConsumerTime(name, cm.Name, c.get("seenTime").int(), active))
			gm.Consumers = append(gm.Consumers, cm)
		}
		for _, p := range g.get("pending").list() {
			id := p.get("id").s
			gm.PEL = append(gm.PEL, pelModel{id, owner[id], uint64(p.get("count").int())})
			w.times = append(w.times, origPELTime(name, id, p.get("sent").int()))
		}
		s.Groups = append(s.Groups, gm)
	}
	slices.Sort(w.times)
	return s, nil
}

// --- RESP --------------------------------------------------------------

// resp replays the commands of a RESP file (librdb's RDB-to-RESP, HDT3213's
// AOF, rdb-rs's protocol output) into keys. The commands say the kind of
// each key and every TTL (PEXPIREAT, HPEXPIREAT); the db only when there is
// a SELECT. Streams: no first entry ID (a server derives it); entries added,
// maximal deleted ID and group entries-read only with the options of Redis
// 7.0 (the 6.2 target has none); consumers only through XCLAIM, so those
// without pending entries are not there; consumer seen/active times are not
// in any command, PEL delivery times and counts are (TIME, RETRYCOUNT).
func (o *origFile) resp(t *testing.T, body []byte) {
	cmds, err := origParseRESP(body)
	if err != nil {
		t.Fatal(err)
	}
	wants, err := origFromRESP(cmds)
	if err != nil {
		t.Fatal(err)
	}
	o.compare(t, wants, origCheck{})
}

func origParseRESP(b []byte) ([][]string, error) {
	var cmds [][]string
	crlf := []byte("\r\n")
	for off := 0; off < len(b); {
		line, _, ok := bytes.Cut(b[off:], crlf)
		n, err := strconv.Atoi(strings.TrimPrefix(string(line), "*"))
		if !ok || !bytes.HasPrefix(line, []byte("*")) || err != nil || n < 1 {
			return nil, fmt.Errorf("RESP offset %d: want an array header, have %.20q", off, line)
		}
		off += len(line) + 2
		cmd := make([]string, 0, n)
		for range n {
			line, _, ok = bytes.Cut(b[off:], crlf)
			l, err := strconv.Atoi(strings.TrimPrefix(string(line), "$"))
			if !ok || !bytes.HasPrefix(line, []byte("$")) || err != nil || l < 0 {
				return nil, fmt.Errorf("RESP offset %d: want a bulk header, have %.20q", off, line)
			}
			off += len(line) + 2
			if off+l+2 > len(b) || !bytes.Equal(b[off+l:off+l+2], crlf) {
				return nil, fmt.Errorf("RESP offset %d: bulk of %d bytes not ended by CRLF", off, l)
			}
			cmd = append(cmd, string(b[off:off+l]))
			off += l + 2
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

func origFromRESP(cmds [][]string) ([]*origWant, error) {
	var wants []*origWant
	byID := map[string]*origWant{}
	db, selected := 0, false
	type streamSeen struct{ v7, entriesRead, groups int }
	seen := map[*origWant]*streamSeen{}
	get := func(key, kind string) (*origWant, error) {
		id := (&kv{DB: db, Key: key}).id()
		w := byID[id]
		if w == nil {
			if kind == "" {
				return nil, fmt.Errorf("%s: TTL before the value", id)
			}
			w = &origWant{k: kv{DB: db, Key: key, Kind: kind}, moduleSize: -1}
			if kind == "stream" {
				w.k.Stream = &streamModel{}
				w.hasTimes, w.times = true, []string{}
				seen[w] = &streamSeen{}
			}
			byID[id] = w
			wants = append(wants, w)
		}
		if kind != "" && w.k.Kind != kind {
			return nil, fmt.Errorf("%s: a %s command for a %s", id, kind, w.k.Kind)
		}
		return w, nil
	}
	fields := func(c []string, at int) ([]string, error) {
		// ... FIELDS numfields field ...
		if len(c) < at+2 || !strings.EqualFold(c[at], "FIELDS") {
			return nil, fmt.Errorf("%q: no FIELDS", c)
		}
		n, err := strconv.Atoi(c[at+1])
		if err != nil || len(c) != at+2+n {
			return nil, fmt.Errorf("%q: bad FIELDS count", c)
		}
		return c[at+2:], nil
	}
	for _, c := range cmds {
		name := strings.ToUpper(c[0])
		if name == "SELECT" {
			if len(c) != 2 {
				return nil, fmt.Errorf("%q", c)
			}
			n, err := strconv.Atoi(c[1])
			if err != nil {
				return nil, fmt.Errorf("%q: %v", c, err)
			}
			db, selected = n, true
			continue
		}
		if len(c) < 3 {
			return nil, fmt.Errorf("%q: too short", c)
		}
		kind := map[string]string{"SET": "string", "RPUSH": "list", "SADD": "set", "ZADD": "zset", "HSET": "hash", "HMSET": "hash",
			"HPEXPIREAT": "hash", "HPERSIST": "hash", "XADD": "stream", "XSETID": "stream", "XCLAIM": "stream"}[name]
		key := c[1]
		if name == "XGROUP" {
			kind, key = "stream", c[2]
		}
		w, err := get(key, kind)
		if err != nil {
			return nil, err
		}
		k := &w.k
		switch name {
		case "SET":
			if len(c) != 3 {
				return nil, fmt.Errorf("%q: options not read here", c)
			}
			k.Str = c[2]
		case "RPUSH", "SADD":
			k.List = append(k.List, c[2:]...)
		case "ZADD":
			if len(c)%2 != 0 {
				return nil, fmt.Errorf("%q: odd arguments", c)
			}
			for i := 2; i < len(c); i += 2 {
				s, err := strconv.ParseFloat(c[i], 64)
				if err != nil {
					return nil, fmt.Errorf("%q: %v", c, err)
				}
				k.ZSet = append(k.ZSet, member{c[i+1], s})
			}
		case "HSET", "HMSET":
			if len(c)%2 != 0 {
				return nil, fmt.Errorf("%q: odd arguments", c)
			}
			if k.Hash == nil {
				k.Hash = map[string]string{}
			}
			for i := 2; i < len(c); i += 2 {
				k.Hash[c[i]] = c[i+1]
			}
		case "PEXPIREAT", "EXPIREAT":
			ms, err := strconv.ParseInt(c[2], 10, 64)
			if err != nil || len(c) != 3 {
				return nil, fmt.Errorf("%q: %v", c, err)
			}
			if name == "EXPIREAT" {
				ms *= 1000
			}
			k.ExpireMs = ms
		case "HPEXPIREAT":
			ms, err := strconv.ParseInt(c[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", c, err)
			}
			fs, err := fields(c, 3)
			if err != nil {
				return nil, err
			}
			if k.FieldExpire == nil {
				k.FieldExpire = map[string]int64{}
			}
			for _, f := range fs {
				k.FieldExpire[f] = ms
			}
		case "HPERSIST":
			fs, err := fields(c, 2)
			if err != nil {
				return nil, err
			}
			for _, f := range fs {
				delete(k.FieldExpire, f)
			}
		case "XADD":
			if len(c)%2 != 1 || !origIsID(c[2]) {
				return nil, fmt.Errorf("%q: options not read here", c)
			}
			k.Stream.Entries = append(k.Stream.Entries, entryModel{ID: c[2], Fields: slices.Clone(c[3:])})
			k.Stream.Length++
			k.Stream.LastID = c[2]
		case "XSETID":
			k.Stream.LastID = c[2]
			var added, maxDel bool
			for i := 3; i+1 < len(c); i += 2 {
				switch strings.ToUpper(c[i]) {
				case "ENTRIESADDED":
					n, err := strconv.ParseUint(c[i+1], 10, 64)
					if err != nil {
						return nil, fmt.Errorf("%q: %v", c, err)
					}
					k.Stream.EntriesAdded, added = n, true
				case "MAXDELETEDID":
					k.Stream.MaxDeletedID, maxDel = c[i+1], true
				default:
					return nil, fmt.Errorf("%q: option %s", c, c[i])
				}
			}
			if len(c)%2 == 0 {
				return nil, fmt.Errorf("%q: odd options", c)
			}
			if added && maxDel {
				seen[w].v7++
			}
		case "XGROUP":
			if !strings.EqualFold(c[1], "CREATE") || len(c) < 5 {
				return nil, fmt.Errorf("%q: not read here", c)
			}
			g := groupModel{Name: c[3], LastDeliveredID: c[4]}
			for i := 5; i < len(c); i++ {
				switch strings.ToUpper(c[i]) {
				case "MKSTREAM":
				case "ENTRIESREAD":
					if i+1 >= len(c) {
						return nil, fmt.Errorf("%q", c)
					}
					n, err := strconv.ParseInt(c[i+1], 10, 64)
					if err != nil {
						return nil, fmt.Errorf("%q: %v", c, err)
					}
					g.EntriesRead = &n
					seen[w].entriesRead++
					i++
				default:
					return nil, fmt.Errorf("%q: option %s", c, c[i])
				}
			}
			seen[w].groups++
			k.Stream.Groups = append(k.Stream.Groups, g)
		case "XCLAIM":
			// XCLAIM key group consumer min-idle id... [TIME ms] [RETRYCOUNT n] [FORCE] [JUSTID]
			if len(c) < 6 {
				return nil, fmt.Errorf("%q", c)
			}
			gi := slices.IndexFunc(k.Stream.Groups, func(g groupModel) bool { return g.Name == c[2] })
			if gi < 0 {
				return nil, fmt.Errorf("%q: no such group", c)
			}
			g := &k.Stream.Groups[gi]
			var ids []string
			i := 5
			for ; i < len(c) && origIsID(c[i]); i++ {
				ids = append(ids, c[i])
			}
			when, count := int64(-1), int64(-1)
			for ; i < len(c); i++ {
				switch strings.ToUpper(c[i]) {
				case "FORCE", "JUSTID":
				case "TIME", "RETRYCOUNT":
					if i+1 >= len(c) {
						return nil, fmt.Errorf("%q", c)
					}
					n, err := strconv.ParseInt(c[i+1], 10, 64)
					if err != nil {
						return nil, fmt.Errorf("%q: %v", c, err)
					}
					if strings.EqualFold(c[i], "TIME") {
						when = n
					} else {
						count = n
					}
					i++
				default:
					return nil, fmt.Errorf("%q: option %s", c, c[i])
				}
			}
			if when < 0 || count < 0 {
				return nil, fmt.Errorf("%q: no TIME or RETRYCOUNT", c)
			}
			ci := slices.IndexFunc(g.Consumers, func(x consumerModel) bool { return x.Name == c[3] })
			if ci < 0 {
				g.Consumers = append(g.Consumers, consumerModel{Name: c[3], PEL: []string{}})
				ci = len(g.Consumers) - 1
			}
			for _, id := range ids {
				g.PEL = append(g.PEL, pelModel{id, c[3], uint64(count)})
				g.Consumers[ci].PEL = append(g.Consumers[ci].PEL, id)
				w.times = append(w.times, origPELTime(g.Name, id, when))
			}
		default:
			return nil, fmt.Errorf("%q: command not read here", c)
		}
	}
	for _, w := range wants {
		w.noDB = !selected
		if w.k.Kind == "zset" {
			sortZSet(w.k.ZSet)
		}
		if s := w.k.Stream; s != nil {
			ss := seen[w]
			w.stream = origStreamGaps{firstID: true, v7: ss.v7 == 0, entriesRead: ss.entriesRead < ss.groups, idleConsumers: true}
			// A server keeps PELs and consumers by ID and name.
			for i := range s.Groups {
				g := &s.Groups[i]
				slices.SortFunc(g.PEL, func(a, b pelModel) int { return origCmpID(a.ID, b.ID) })
				slices.SortFunc(g.Consumers, func(a, b consumerModel) int { return strings.Compare(a.Name, b.Name) })
				for j := range g.Consumers {
					slices.SortFunc(g.Consumers[j].PEL, origCmpID)
				}
			}
			slices.Sort(w.times)
		}
		w.k.normalize()
	}
	return wants, nil
}

var origIDPattern = regexp.MustCompile(`^\d+-\d+$`)

func origIsID(s string) bool { return origIDPattern.MatchString(s) }

func origCmpID(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		if x < y {
			return -1
		}
		return 1
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// --- HDT3213/rdb JSON ----------------------------------------------------

// origHDTEncodings maps HDT3213's "type/encoding" to the RDB type bytes.
var origHDTEncodings = map[string][]byte{
	"string/string": {rdb.TypeString},
	"list/list":     {rdb.TypeList}, "list/ziplist": {rdb.TypeListZiplist},
	"list/quicklist": {rdb.TypeListQuicklist}, "list/quicklist2": {rdb.TypeListQuicklist2},
	"set/set": {rdb.TypeSet}, "set/intset": {rdb.TypeSetIntset}, "set/listpack": {rdb.TypeSetListpack},
	"zset/zset": {rdb.TypeZSet}, "zset/zset2": {rdb.TypeZSet2}, "zset/ziplist": {rdb.TypeZSetZiplist},
	"zset/listpack": {rdb.TypeZSetListpack},
	"hash/hash":     {rdb.TypeHash}, "hash/zipmap": {rdb.TypeHashZipmap}, "hash/ziplist": {rdb.TypeHashZiplist},
	"hash/listpack":   {rdb.TypeHashListpack},
	"hash/hashex":     {rdb.TypeHashMetadataPreGA, rdb.TypeHashMetadata},
	"hash/listpackex": {rdb.TypeHashListpackExPreGA, rdb.TypeHashListpackEx},
	"stream/":         {rdb.TypeStreamListpacks, rdb.TypeStreamListpacks2, rdb.TypeStreamListpacks3},
	"stream/listpack": {rdb.TypeStreamListpacks, rdb.TypeStreamListpacks2, rdb.TypeStreamListpacks3},
}

// hdtJSON reads HDT3213/rdb's JSON: an array of objects with db, key,
// type, encoding (compared with the RDB type byte), the value, field TTLs
// ("expire", 0: none), the key's TTL ("expiration", RFC 3339 with an
// offset; absent: none), "lru"/"lfu" when the file has them; "aux" and
// "functions" objects when the run was asked for them (so their absence
// says nothing). "size" is HDT3213's memory estimate, not a property of
// the file: not compared. HDT3213 is Go: a hash and the fields of a stream
// entry are maps, written sorted by key, so field order in entries is not
// compared; a stream's layout in listpack nodes (firstMsgId, master
// fields, deleted entries) is not a decoder output: only live entries are
// compared. Go's encoding/json writes invalid UTF-8 as U+FFFD: a binary
// value would show as a difference (no file read here has one).
func (o *origFile) hdtJSON(t *testing.T, format string, body []byte) {
	v, err := origParseJSON(body)
	if err != nil || v.t != 'a' {
		t.Fatalf("not a JSON array: %v", err)
	}
	var c origCheck
	if m := regexp.MustCompile(`only keys matching regex (\S+)`).FindStringSubmatch(format); m != nil {
		re := regexp.MustCompile(m[1])
		c.covers = func(k *kv) bool { return re.MatchString(k.Key) }
	}
	var wants []*origWant
	var funcs []string
	hasFuncs := false
	for _, x := range v.arr {
		switch x.get("type").str() {
		case "aux":
			o.checkAux(t, x.get("key").str(), x.get("value").str())
		case "functions":
			funcs, hasFuncs = append(funcs, x.get("functionsLua").str()), true
		default:
			w, err := origHDTKey(x)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			wants = append(wants, w)
		}
	}
	if hasFuncs {
		o.checkFunctions(t, funcs)
	}
	o.compare(t, wants, c)
}

func origHDTKey(x *origJSON) (*origWant, error) {
	typ, enc := x.get("type").str(), x.get("encoding").str()
	w := &origWant{k: kv{DB: int(x.get("db").int()), Key: x.get("key").str(), Kind: typ}, moduleSize: -1}
	w.typeName = typ + "/" + enc
	w.typeBytes = origHDTEncodings[w.typeName]
	if w.typeBytes == nil {
		return nil, fmt.Errorf("%s: unknown HDT3213 encoding %q", w.k.id(), w.typeName)
	}
	if typ == "stream" {
		if ver := x.get("version"); ver != nil {
			w.typeBytes = []byte{map[int64]byte{1: rdb.TypeStreamListpacks, 2: rdb.TypeStreamListpacks2, 3: rdb.TypeStreamListpacks3}[ver.int()]}
		} else if b := x.get("isV2"); b != nil && b.t == 't' {
			w.typeBytes = []byte{rdb.TypeStreamListpacks2}
		}
	}
	if v := x.get("lru"); v != nil {
		n := v.int()
		w.idle = &n
	}
	if v := x.get("lfu"); v != nil {
		n := v.int()
		w.freq = &n
	}
	if e := x.get("expiration"); e != nil {
		tm, err := time.Parse(time.RFC3339Nano, e.str())
		if err != nil {
			return nil, fmt.Errorf("%s: expiration: %v", w.k.id(), err)
		}
		w.k.ExpireMs = tm.UnixMilli()
	}
	k := &w.k
	switch typ {
	case "string":
		k.Str = x.get("value").str()
	case "list", "set":
		name := map[string]string{"list": "values", "set": "members"}[typ]
		k.List = origStrings(x.get(name).list())
	case "zset":
		for _, e := range x.get("entries").list() {
			k.ZSet = append(k.ZSet, member{e.get("member").str(), e.get("score").float()})
		}
		sortZSet(k.ZSet)
	case "hash":
		h := x.get("hash")
		k.Hash = map[string]string{}
		for i, f := range h.keys {
			k.Hash[f] = h.vals[i].str()
		}
		if ex := x.get("expire"); ex != nil {
			k.FieldExpire = map[string]int64{}
			for i, f := range ex.keys {
				if ms := ex.vals[i].int(); ms != 0 {
					k.FieldExpire[f] = ms
				}
			}
		}
	case "stream":
		k.Stream = origHDTStream(w, x)
	default:
		return nil, fmt.Errorf("%s: HDT3213 type %q not read here", k.id(), typ)
	}
	k.normalize()
	return w, nil
}

// origHDTStream reads HDT3213's stream. Its model (model/stream.go) writes
// entries-read, entries added (uint64) and a consumer's pending IDs with
// omitempty: absent is 0 (none) for streams of type 2 and 3, which save
// them; entries-read of a type 1 stream is not in the file. activeTime is
// always written, 0 before type 3, which alone saves it.
func origHDTStream(w *origWant, x *origJSON) *streamModel {
	s := &streamModel{Length: uint64(x.get("len").int()), LastID: x.get("lastId").str()}
	version := x.get("version").int()
	if b := x.get("isV2"); b != nil && b.t == 't' {
		version = 2
	}
	w.stream.fieldOrder = true
	if version >= 2 {
		s.FirstID, s.MaxDeletedID = x.get("firstId").str(), x.get("maxDeletedId").str()
		s.EntriesAdded = uint64(x.get("addedEntriesCount").int())
	} else {
		w.stream.firstID, w.stream.v7, w.stream.entriesRead = true, true, true
	}
	for _, node := range x.get("entries").list() {
		for _, m := range node.get("msgs").list() {
			if d := m.get("deleted"); d != nil && d.t == 't' {
				continue
			}
			em := entryModel{ID: m.get("id").str()}
			f := m.get("fields")
			for i, name := range f.keys {
				em.Fields = append(em.Fields, name, f.vals[i].str())
			}
			s.Entries = append(s.Entries, em)
		}
	}
	w.hasTimes, w.timesConsumers, w.times = true, true, []string{}
	for _, g := range x.get("groups").list() {
		name := g.get("name").str()
		gm := groupModel{Name: name, LastDeliveredID: g.get("lastId").str()}
		if version >= 2 {
			n := int64(0)
			if er := g.get("entriesRead"); er != nil {
				n = er.int()
			}
			if er := g.get("entriesRead"); er == nil || er.s != "18446744073709551615" {
				// (-1 read as a uint64: not known, as the decoder's nil)
				gm.EntriesRead = &n
			}
		}
		owner := map[string]string{}
		for _, c := range g.get("consumers").list() {
			cm := consumerModel{Name: c.get("name").str(), PEL: origStrings(c.get("pending").list())}
			for _, id := range cm.PEL {
				owner[id] = cm.Name
			}
			active := int64(-1)
			if version >= 3 {
				active = c.get("activeTime").int()
			}
			w.times = append(w.times, origConsumerTime(name, cm.Name, c.get("seenTime").int(), active))
			gm.Consumers = append(gm.Consumers, cm)
		}
		for _, p := range g.get("pending").list() {
			id := p.get("id").str()
			gm.PEL = append(gm.PEL, pelModel{id, owner[id], uint64(p.get("deliveryCount").int())})
			w.times = append(w.times, origPELTime(name, id, p.get("deliveryTime").int()))
		}
		s.Groups = append(s.Groups, gm)
	}
	slices.Sort(w.times)
	return s
}

// --- rdb-rs ------------------------------------------------------------

// rdbrsJSON reads rdb-rs's JSON: one object per database in file order
// (no db numbers: the n-th is the n-th decoded db), key to value; no TTLs.
// Strings are bytes: invalid UTF-8 is written byte by byte as \u00XX. The
// kind is left to the JSON shape (an object is a hash or a zset with
// scores as strings), read as for librdb.
func (o *origFile) rdbrsJSON(t *testing.T, body []byte) {
	v, err := origParseJSON(body)
	if err != nil || v.t != 'a' {
		t.Fatalf("not a JSON array: %v", err)
	}
	order := o.dbOrder()
	if len(v.arr) != len(order) {
		t.Fatalf("%d databases in the expectation, %d decoded (%v)", len(v.arr), len(order), order)
	}
	var wants []*origWant
	for i, obj := range v.arr {
		for j, key := range obj.keys {
			wants = append(wants, &origWant{k: kv{DB: order[i], Key: key}, val: obj.vals[j], noTTL: true, noFieldTTL: true, moduleSize: -1})
		}
	}
	o.compare(t, wants, origCheck{})
}

var (
	origPlainSet  = regexp.MustCompile(`(?s)^(.*?) \{ (.*) \} $`)
	origPlainZSet = regexp.MustCompile(`(?s)^(.*?)\[(\d+)\] -> \{(.*), score=([^,]*)\}$`)
	origPlainList = regexp.MustCompile(`(?s)^(.*?)\[(\d+)\] -> (.*)$`)
	origPlainHash = regexp.MustCompile(`(?s)^(.*?) \. (.*?) -> (.*)$`)
	origPlainStr  = regexp.MustCompile(`(?s)^(.*?) -> (.*)$`)
)

// rdbrsPlain reads rdb-rs's plain text: "aux k -> v", "db=N key -> value"
// (string), "key . field -> value" (hash), "key[i] -> value" (list),
// "key[i] -> {member, score=s}" (zset), "key { member } " (set) and the
// file's "checksum". Raw bytes, one element per line, no TTLs. The line
// syntax is ambiguous for keys holding " . ", " -> " or "[": a key that
// reads wrong shows up as a difference.
func (o *origFile) rdbrsPlain(t *testing.T, body []byte) {
	byID := map[string]*origWant{}
	var wants []*origWant
	get := func(db int, key, kind string) *origWant {
		id := (&kv{DB: db, Key: key}).id()
		w := byID[id]
		if w == nil {
			w = &origWant{k: kv{DB: db, Key: key, Kind: kind}, noTTL: true, noFieldTTL: true, moduleSize: -1}
			byID[id] = w
			wants = append(wants, w)
		}
		if w.k.Kind != kind {
			t.Errorf("%s: lines of a %s and of a %s", id, w.k.Kind, kind)
		}
		return w
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "aux "):
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "aux "), " -> ")
			if !ok {
				t.Errorf("line %q: not read", line)
				continue
			}
			o.checkAux(t, k, v)
			continue
		case strings.HasPrefix(line, "checksum "):
			// The decoder verifies the checksum itself; this only says the
			// expectation describes these bytes.
			if sum := strings.TrimPrefix(line, "checksum "); len(o.data) < 8 || sum != hex.EncodeToString(o.data[len(o.data)-8:]) {
				t.Errorf("checksum %s: not the file's", sum)
			}
			continue
		case !strings.HasPrefix(line, "db="):
			t.Errorf("line %q: not read", line)
			continue
		}
		dbText, rest, _ := strings.Cut(strings.TrimPrefix(line, "db="), " ")
		db, err := strconv.Atoi(dbText)
		if err != nil {
			t.Errorf("line %q: %v", line, err)
			continue
		}
		if m := origPlainSet.FindStringSubmatch(rest); m != nil {
			w := get(db, m[1], "set")
			w.k.List = append(w.k.List, m[2])
		} else if m := origPlainZSet.FindStringSubmatch(rest); m != nil {
			w := get(db, m[1], "zset")
			s, err := strconv.ParseFloat(m[4], 64)
			if i, _ := strconv.Atoi(m[2]); err != nil || i != len(w.k.ZSet) {
				t.Errorf("line %q: score %v, index %d", line, err, i)
			}
			w.k.ZSet = append(w.k.ZSet, member{m[3], s})
		} else if m := origPlainList.FindStringSubmatch(rest); m != nil {
			w := get(db, m[1], "list")
			if i, _ := strconv.Atoi(m[2]); i != len(w.k.List) {
				t.Errorf("line %q: index %d after %d elements", line, i, len(w.k.List))
			}
			w.k.List = append(w.k.List, m[3])
		} else if m := origPlainHash.FindStringSubmatch(rest); m != nil {
			w := get(db, m[1], "hash")
			if w.k.Hash == nil {
				w.k.Hash = map[string]string{}
			}
			if _, dup := w.k.Hash[m[2]]; dup {
				t.Errorf("line %q: field listed twice", line)
			}
			w.k.Hash[m[2]] = m[3]
		} else if m := origPlainStr.FindStringSubmatch(rest); m != nil {
			get(db, m[1], "string").k.Str = m[2]
		} else {
			t.Errorf("line %q: not read", line)
		}
	}
	for _, w := range wants {
		sortZSet(w.k.ZSet)
		w.k.normalize()
	}
	o.compare(t, wants, origCheck{})
}

// --- JSON keeping bytes ------------------------------------------------

// origJSON is a JSON value read byte for byte: \u00XX is the byte XX (how
// librdb and rdb-rs write a byte that is not printable; other writers use
// it only below 0x20, where byte and character agree), raw bytes are kept
// as they are, and objects keep their order and repeated keys.
type origJSON struct {
	t    byte // 's' string, 'n' number, 'o' object, 'a' array, 't' true, 'f' false, '0' null
	s    string
	arr  []*origJSON
	keys []string
	vals []*origJSON
}

func (v *origJSON) get(key string) *origJSON {
	if v == nil || v.t != 'o' {
		return nil
	}
	for i, k := range v.keys {
		if k == key {
			return v.vals[i]
		}
	}
	return nil
}

func (v *origJSON) list() []*origJSON {
	if v == nil {
		return nil
	}
	return v.arr
}

func (v *origJSON) str() string {
	if v == nil {
		return ""
	}
	return v.s
}

func (v *origJSON) int() int64 {
	if v == nil {
		return 0
	}
	n, err := strconv.ParseInt(v.s, 10, 64)
	if err != nil {
		return -1 << 63 // shows as a difference
	}
	return n
}

func (v *origJSON) float() float64 {
	if v == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(v.s, 64)
	return f
}

func (v *origJSON) shape() string {
	return map[byte]string{'s': "a string", 'n': "a number", 'o': "an object", 'a': "an array", 't': "true", 'f': "false", '0': "null"}[v.t]
}

func (v *origJSON) String() string {
	if v.t == 's' || v.t == 'n' {
		return strconv.Quote(v.s)
	}
	return v.shape()
}

func origStrings(vs []*origJSON) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.s)
	}
	return out
}

func origPairs(v *origJSON) []string {
	var out []string
	for i, k := range v.keys {
		out = append(out, k+"="+v.vals[i].s)
	}
	return out
}

type origJSONReader struct {
	b []byte
	p int
}

func origParseJSON(b []byte) (*origJSON, error) {
	r := &origJSONReader{b: b}
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	r.ws()
	if r.p != len(b) {
		return nil, r.errf("data after the value")
	}
	return v, nil
}

func (r *origJSONReader) errf(f string, a ...any) error {
	return fmt.Errorf("JSON offset %d: %s", r.p, fmt.Sprintf(f, a...))
}

func (r *origJSONReader) ws() {
	for r.p < len(r.b) && strings.IndexByte(" \t\r\n", r.b[r.p]) >= 0 {
		r.p++
	}
}

// next consumes c when it comes next.
func (r *origJSONReader) next(c byte) bool {
	r.ws()
	if r.p < len(r.b) && r.b[r.p] == c {
		r.p++
		return true
	}
	return false
}

func (r *origJSONReader) value() (*origJSON, error) {
	r.ws()
	if r.p >= len(r.b) {
		return nil, r.errf("unexpected end")
	}
	switch c := r.b[r.p]; c {
	case '"':
		s, err := r.str()
		return &origJSON{t: 's', s: s}, err
	case '{':
		r.p++
		v := &origJSON{t: 'o'}
		if r.next('}') {
			return v, nil
		}
		for {
			r.ws()
			if r.p >= len(r.b) || r.b[r.p] != '"' {
				return nil, r.errf("want a key")
			}
			k, err := r.str()
			if err != nil {
				return nil, err
			}
			if !r.next(':') {
				return nil, r.errf("want ':'")
			}
			x, err := r.value()
			if err != nil {
				return nil, err
			}
			v.keys, v.vals = append(v.keys, k), append(v.vals, x)
			if r.next(',') {
				continue
			}
			if r.next('}') {
				return v, nil
			}
			return nil, r.errf("want ',' or '}'")
		}
	case '[':
		r.p++
		v := &origJSON{t: 'a'}
		if r.next(']') {
			return v, nil
		}
		for {
			x, err := r.value()
			if err != nil {
				return nil, err
			}
			v.arr = append(v.arr, x)
			if r.next(',') {
				continue
			}
			if r.next(']') {
				return v, nil
			}
			return nil, r.errf("want ',' or ']'")
		}
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(r.b[r.p:], []byte(lit)) {
			r.p += len(lit)
			return &origJSON{t: map[string]byte{"true": 't', "false": 'f', "null": '0'}[lit]}, nil
		}
	}
	start := r.p
	for r.p < len(r.b) && strings.IndexByte("+-0123456789.eE", r.b[r.p]) >= 0 {
		r.p++
	}
	if r.p == start {
		return nil, r.errf("unexpected %q", r.b[r.p])
	}
	return &origJSON{t: 'n', s: string(r.b[start:r.p])}, nil
}

func (r *origJSONReader) str() (string, error) {
	r.p++ // the opening quote
	var out []byte
	for {
		if r.p >= len(r.b) {
			return "", r.errf("unterminated string")
		}
		c := r.b[r.p]
		r.p++
		if c == '"' {
			return string(out), nil
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if r.p >= len(r.b) {
			return "", r.errf("unterminated string")
		}
		e := r.b[r.p]
		r.p++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			u, err := r.hex4()
			if err != nil {
				return "", err
			}
			if u < 0x100 {
				out = append(out, byte(u))
				continue
			}
			if utf16.IsSurrogate(u) && bytes.HasPrefix(r.b[r.p:], []byte(`\u`)) {
				r.p += 2
				lo, err := r.hex4()
				if err != nil {
					return "", err
				}
				u = utf16.DecodeRune(u, lo)
			}
			out = utf8.AppendRune(out, u)
		default:
			return "", r.errf("bad escape \\%c", e)
		}
	}
}

func (r *origJSONReader) hex4() (rune, error) {
	if r.p+4 > len(r.b) {
		return 0, r.errf("short \\u escape")
	}
	n, err := strconv.ParseUint(string(r.b[r.p:r.p+4]), 16, 16)
	if err != nil {
		return 0, r.errf("bad \\u escape: %v", err)
	}
	r.p += 4
	return rune(n), nil
}
