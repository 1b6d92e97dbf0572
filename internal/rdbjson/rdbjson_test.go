package rdbjson_test

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdbjson"
	"github.com/resync/resync/internal/redistest"
)

// line is one key as Write prints it.
type line struct {
	DB            int              `json:"db"`
	Key           any              `json:"key"`
	Type          string           `json:"type"`
	ExpireMs      *int64           `json:"expire_ms"`
	Value         any              `json:"value"`
	FieldExpireMs map[string]int64 `json:"field_expire_ms"`
}

func decode(t *testing.T, data []byte, o rdbjson.Options) ([]line, rdbjson.Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := rdbjson.Write(&out, bytes.NewReader(data), o)
	if err != nil {
		t.Fatal(err)
	}
	var lines []line
	for l := range strings.Lines(out.String()) {
		var x line
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		if err := d.Decode(&x); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, x)
	}
	return lines, st
}

// text turns a JSON string or {"b64": ...} into its bytes.
func text(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if b, ok := x["b64"].(string); ok && len(x) == 1 {
			d, err := base64.StdEncoding.DecodeString(b)
			if err != nil {
				t.Fatal(err)
			}
			return string(d)
		}
	}
	t.Fatalf("not a string: %#v", v)
	return ""
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(redistest.RDBFixtures(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canon brings a value of either JSON (ours, or the fixture's expectation)
// to one comparable form: strings as their bytes, sets sorted, scores as
// numbers, stream fields as a flat list.
func canon(t *testing.T, typ string, v any) any {
	t.Helper()
	switch typ {
	case "string":
		return text(t, v)
	case "list", "set":
		var out []string
		for _, e := range v.([]any) {
			out = append(out, text(t, e))
		}
		if typ == "set" {
			slices.Sort(out)
		}
		return out
	case "zset":
		// Members in rank order: the file holds a big zset in its own
		// order, which Write keeps so as not to hold the key whole.
		type member struct {
			m string
			f float64
		}
		var ms []member
		for _, e := range v.([]any) {
			p := e.([]any)
			f, err := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, member{text(t, p[0]), f})
		}
		slices.SortFunc(ms, func(a, b member) int {
			if c := cmp.Compare(a.f, b.f); c != 0 {
				return c
			}
			return strings.Compare(a.m, b.m)
		})
		var out []string
		for _, x := range ms {
			out = append(out, fmt.Sprintf("%q=%v", x.m, x.f))
		}
		return out
	case "hash":
		out := map[string]string{}
		for f, x := range v.(map[string]any) {
			out[f] = text(t, x)
		}
		return out
	case "stream":
		m := v.(map[string]any)
		var entries []string
		for _, e := range m["entries"].([]any) {
			em := e.(map[string]any)
			var fields []string
			for _, f := range em["fields"].([]any) {
				if pair, ok := f.([]any); ok { // the expectation's [field, value]
					fields = append(fields, text(t, pair[0]), text(t, pair[1]))
				} else {
					fields = append(fields, text(t, f))
				}
			}
			entries = append(entries, fmt.Sprintf("%s %q", em["id"], fields))
		}
		var groups []string
		for _, g := range m["groups"].([]any) {
			gm := g.(map[string]any)
			pel, _ := gm["pending"].([]any)
			if p, ok := gm["pel"].([]any); ok {
				pel = p
			}
			var ids []string
			for _, p := range pel {
				pm := p.(map[string]any)
				ids = append(ids, fmt.Sprintf("%s×%v", pm["id"], pm["delivery_count"]))
			}
			var consumers []string
			for _, c := range gm["consumers"].([]any) {
				consumers = append(consumers, text(t, c.(map[string]any)["name"]))
			}
			groups = append(groups, fmt.Sprintf("%s last=%v read=%v pel=%v consumers=%v",
				text(t, gm["name"]), gm["last_delivered_id"], gm["entries_read"], ids, consumers))
		}
		last := m["last_id"]
		if last == nil {
			last = m["last_generated_id"]
		}
		return fmt.Sprintf("length=%v last=%v entries=%v groups=%v", m["length"], last, entries, groups)
	}
	t.Fatalf("type %q", typ)
	return nil
}

// TestReleaseFixtures prints every release fixture and compares each line
// with the fixture's own JSON, read back from the server that wrote it.
func TestReleaseFixtures(t *testing.T) {
	for _, v := range []string{"2.8.24", "3.2.13", "4.0.14", "5.0.14", "6.2.14", "7.0.15", "7.2.6", "7.4.1"} {
		t.Run(v, func(t *testing.T) {
			got, st := decode(t, fixture(t, "generated/release-"+v+".rdb"), rdbjson.Options{})
			var want struct {
				Keys []struct {
					DB          int              `json:"db"`
					Key         any              `json:"key"`
					Type        string           `json:"type"`
					ExpireAtMs  *int64           `json:"expire_at_ms"`
					Value       any              `json:"value"`
					FieldExpire map[string]int64 `json:"field_expire_at_ms"`
				} `json:"keys"`
			}
			d := json.NewDecoder(bytes.NewReader(fixture(t, "generated/release-"+v+".json")))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want.Keys) || st.Keys != len(got) {
				t.Fatalf("%d lines (stats %+v), want %d keys", len(got), st, len(want.Keys))
			}
			byName := map[string]line{}
			for _, l := range got {
				byName[fmt.Sprintf("%d:%s", l.DB, text(t, l.Key))] = l
			}
			for _, w := range want.Keys {
				name := fmt.Sprintf("%d:%s", w.DB, text(t, w.Key))
				g, ok := byName[name]
				if !ok {
					t.Errorf("%s: no line", name)
					continue
				}
				if g.Type != w.Type || !reflect.DeepEqual(g.ExpireMs, w.ExpireAtMs) {
					t.Errorf("%s: type %s expire %v, want %s %v", name, g.Type, g.ExpireMs, w.Type, w.ExpireAtMs)
				}
				if a, b := canon(t, g.Type, g.Value), canon(t, w.Type, w.Value); !reflect.DeepEqual(a, b) {
					t.Errorf("%s: value\n%.500v\nwant\n%.500v", name, a, b)
				}
				if len(g.FieldExpireMs)+len(w.FieldExpire) > 0 && !reflect.DeepEqual(g.FieldExpireMs, w.FieldExpire) {
					t.Errorf("%s: field expiry %v, want %v", name, g.FieldExpireMs, w.FieldExpire)
				}
			}
		})
	}
}

func TestFilters(t *testing.T) {
	data := fixture(t, "generated/release-7.4.1.rdb")
	all, _ := decode(t, data, rdbjson.Options{})
	got, st := decode(t, data, rdbjson.Options{DBs: []int{5}, AllowKeyPrefixes: []string{"db5:h", "db5:z"}})
	var names []string
	for _, l := range got {
		names = append(names, fmt.Sprintf("%d:%s", l.DB, text(t, l.Key)))
	}
	if want := []string{"5:db5:hash", "5:db5:zset"}; !slices.Equal(names, want) {
		t.Fatalf("got %q, want %q", names, want)
	}
	if st.Keys+st.Filtered != len(all) {
		t.Fatalf("stats %+v: %d keys in all", st, len(all))
	}
}

// Empty collections (saved by servers with the #8453 bug) are left out,
// as Redis leaves them out on load.
func TestEmptyCollectionsLeftOut(t *testing.T) {
	got, st := decode(t, fixture(t, "redis-redis/corrupt_empty_keys.rdb"), rdbjson.Options{})
	if len(got) != 0 || st.Empty != 9 {
		t.Fatalf("%d lines, stats %+v; want none, 9 empty", len(got), st)
	}
}

func TestModuleValue(t *testing.T) {
	got, _ := decode(t, fixture(t, "redis-librdb/module.rdb"), rdbjson.Options{})
	if len(got) != 1 || got[0].Type != "module" {
		t.Fatalf("got %+v", got)
	}
	m := got[0].Value.(map[string]any)
	raw, err := base64.StdEncoding.DecodeString(m["raw_b64"].(string))
	if err != nil || len(raw) < 2 || raw[0] != 7 || m["module"] == "" {
		t.Fatalf("module value %v: raw %x %v", m, raw, err)
	}
	t.Logf("module %v, %d raw bytes", m["module"], len(raw))
}

func TestNonUTF8(t *testing.T) {
	s := redistest.Start(t)
	for _, cmd := range [][]string{
		{"SET", "k\xff", "v\xfe"},
		{"HSET", "h", "f\xff", "x", "plain", "quote\"\n\x01"},
		{"SAVE"},
	} {
		redistest.Do(t, s, cmd...)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := decode(t, data, rdbjson.Options{})
	seen := 0
	for _, l := range got {
		switch text(t, l.Key) {
		case "k\xff":
			if text(t, l.Value) != "v\xfe" {
				t.Errorf("string value %v", l.Value)
			}
			seen++
		case "h":
			h := l.Value.(map[string]any)
			if h[`{"b64":"Zv8="}`] != "x" || h["plain"] != "quote\"\n\x01" {
				t.Errorf("hash %#v", h)
			}
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("got %+v", got)
	}
}

func TestTruncatedFails(t *testing.T) {
	data := fixture(t, "generated/release-7.4.1.rdb")
	var out bytes.Buffer
	_, err := rdbjson.Write(&out, bytes.NewReader(data[:len(data)/2]), rdbjson.Options{})
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("got %v, want a truncation error", err)
	}
}
