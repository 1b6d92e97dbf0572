package rdb_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redistest"
)

// fixtureDir is the shared RDB fixtures' directory.
func fixtureDir(t testing.TB) string { return redistest.RDBFixtures(t) }

type fixtureIndex struct {
	RDB []struct {
		Path         string   `json:"path"`
		Expect       string   `json:"expect"`
		ExpectWhy    string   `json:"expect_why"`
		Expectations []string `json:"expectations"`
		Oracle       *struct {
			Status string `json:"status"`
			Path   string `json:"path"`
		} `json:"oracle"`
	} `json:"rdb"`
}

func readIndex(t testing.TB) (string, *fixtureIndex) {
	dir := fixtureDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx fixtureIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(idx.RDB) == 0 {
		t.Fatal("index.json lists no RDB files")
	}
	return dir, &idx
}

// TestFixtures decodes every fixture: the ones expected to load decode
// without error and equal their expectation (the generated JSON, or what
// redis-server 7.0.15 held after loading them); the others fail with an
// *rdb.Error, never a panic.
func TestFixtures(t *testing.T) {
	dir, idx := readIndex(t)
	for _, f := range idx.RDB {
		t.Run(f.Path, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeFile(data)
			if f.Expect == "error" {
				var re *rdb.Error
				if !errors.As(err, &re) {
					t.Fatalf("want an *rdb.Error (%s), got %v", f.ExpectWhy, err)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var exp string
			switch {
			case strings.HasPrefix(f.Path, "generated/"):
				exp = strings.TrimSuffix(f.Path, ".rdb") + ".json"
			case f.Oracle != nil && f.Oracle.Status == "loaded":
				exp = f.Oracle.Path
			default:
				// The origins' own JSON is compared by TestFixtureOrigins.
				return
			}
			want, err := readExpectation(filepath.Join(dir, exp))
			if err != nil {
				t.Fatalf("%s: %v", exp, err)
			}
			compareWithExpectation(t, got, want)
		})
	}
}

// expectation is the generated JSON format (generated/*.json and the
// oracle-redis-7.0.15 files).
type expectation struct {
	Aux                map[string]string `json:"aux"`
	AuxVaries          []string          `json:"aux_varies_between_runs"`
	KeysExpiredOnLoad  *int              `json:"keys_expired_on_load"`
	EmptyKeysSkipped   *int              `json:"empty_keys_skipped"`
	KeysTotal          *int              `json:"keys_total"`
	KeysTruncatedTo    *int              `json:"keys_truncated_to"`
	Functions          []json.RawMessage `json:"functions"`
	Keys               []expectedKey     `json:"keys"`
	keys               []*kv
	functionCode       []string
	loadedByOracle     bool
	wholeValueChecksum map[string]valueSum
}

type expectedKey struct {
	DB              int              `json:"db"`
	Key             json.RawMessage  `json:"key"`
	KeyB64          string           `json:"key_b64"`
	Type            string           `json:"type"`
	ExpireAtMs      *int64           `json:"expire_at_ms"`
	Value           json.RawMessage  `json:"value"`
	ValueB64        json.RawMessage  `json:"value_b64"`
	ValueLen        *int             `json:"value_len"`
	ValueSHA256     string           `json:"value_sha256"`
	FieldExpireAtMs map[string]int64 `json:"field_expire_at_ms"`
}

type valueSum struct {
	len int
	sum string
}

func readExpectation(path string) (*expectation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e expectation
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	e.loadedByOracle = e.KeysExpiredOnLoad != nil
	e.wholeValueChecksum = map[string]valueSum{}
	for _, raw := range e.Functions {
		var f struct {
			Code string `json:"code"`
		}
		if err := json.Unmarshal(raw, &f); err == nil && f.Code != "" {
			e.functionCode = append(e.functionCode, f.Code)
		}
	}
	for i, ek := range e.Keys {
		k, err := ek.model()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if ek.ValueLen != nil {
			e.wholeValueChecksum[k.id()] = valueSum{*ek.ValueLen, ek.ValueSHA256}
		}
		e.keys = append(e.keys, k)
	}
	return &e, nil
}

// jstr reads a JSON string, or {"b64": ...}; b64 says every string is
// base64 (value_b64).
func jstr(raw json.RawMessage, b64 bool) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if b64 {
			d, err := base64.StdEncoding.DecodeString(s)
			return string(d), err
		}
		return s, nil
	}
	var o struct {
		B64 *string `json:"b64"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.B64 == nil {
		return "", fmt.Errorf("not a string: %.80s", raw)
	}
	d, err := base64.StdEncoding.DecodeString(*o.B64)
	return string(d), err
}

func (ek *expectedKey) model() (*kv, error) {
	k := &kv{DB: ek.DB, Kind: ek.Type}
	var err error
	if ek.KeyB64 != "" {
		var b []byte
		b, err = base64.StdEncoding.DecodeString(ek.KeyB64)
		k.Key = string(b)
	} else {
		k.Key, err = jstr(ek.Key, false)
	}
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if ek.ExpireAtMs != nil {
		k.ExpireMs = *ek.ExpireAtMs
	}
	raw, b64 := ek.Value, false
	if len(ek.ValueB64) > 0 {
		raw, b64 = ek.ValueB64, true
	}
	if ek.ValueLen != nil {
		return k, nil // a big string: compared by length and SHA-256
	}
	if err := fillValue(k, raw, b64); err != nil {
		return nil, fmt.Errorf("%s: %w", k.id(), err)
	}
	if len(ek.FieldExpireAtMs) > 0 {
		k.FieldExpire = ek.FieldExpireAtMs
	}
	k.normalize()
	return k, nil
}

func fillValue(k *kv, raw json.RawMessage, b64 bool) error {
	var err error
	switch k.Kind {
	case "string":
		k.Str, err = jstr(raw, b64)
	case "list", "set":
		var items []json.RawMessage
		if err = json.Unmarshal(raw, &items); err != nil {
			return err
		}
		k.List = []string{}
		for _, it := range items {
			s, err := jstr(it, b64)
			if err != nil {
				return err
			}
			k.List = append(k.List, s)
		}
	case "zset":
		var items [][2]json.RawMessage
		if err = json.Unmarshal(raw, &items); err != nil {
			return err
		}
		for _, it := range items {
			m, err := jstr(it[0], b64)
			if err != nil {
				return err
			}
			score, err := jsonScore(it[1])
			if err != nil {
				return err
			}
			k.ZSet = append(k.ZSet, member{m, score})
		}
	case "hash":
		var obj map[string]json.RawMessage
		if err = json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		k.Hash = map[string]string{}
		for f, v := range obj {
			if b64 {
				d, err := base64.StdEncoding.DecodeString(f)
				if err != nil {
					return err
				}
				f = string(d)
			}
			s, err := jstr(v, b64)
			if err != nil {
				return err
			}
			k.Hash[f] = s
		}
	case "stream":
		k.Stream, err = streamFromJSON(raw)
	default:
		return fmt.Errorf("type %q", k.Kind)
	}
	return err
}

func jsonScore(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var f float64
		err := json.Unmarshal(raw, &f)
		return f, err
	}
	return strconv.ParseFloat(s, 64)
}

func streamFromJSON(raw json.RawMessage) (*streamModel, error) {
	var v struct {
		Length       uint64  `json:"length"`
		LastID       string  `json:"last_generated_id"`
		MaxDeletedID *string `json:"max_deleted_entry_id"`
		EntriesAdded *uint64 `json:"entries_added"`
		FirstID      *string `json:"recorded_first_entry_id"`
		Entries      []struct {
			ID     string              `json:"id"`
			Fields [][]json.RawMessage `json:"fields"`
		} `json:"entries"`
		Groups []struct {
			Name        json.RawMessage `json:"name"`
			LastID      string          `json:"last_delivered_id"`
			EntriesRead *int64          `json:"entries_read"`
			PEL         []struct {
				ID            string          `json:"id"`
				Consumer      json.RawMessage `json:"consumer"`
				DeliveryCount uint64          `json:"delivery_count"`
			} `json:"pel"`
			Consumers []struct {
				Name    json.RawMessage `json:"name"`
				PEL     []string        `json:"pel"`
				Pending *int            `json:"pending"`
			} `json:"consumers"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	// Servers before 7.0 do not report the first ID, the maximal deleted
	// ID and the entries added: those are then not compared.
	s := &streamModel{Length: v.Length, LastID: v.LastID, MaxDeletedID: "?", FirstID: "?"}
	if v.MaxDeletedID != nil && v.FirstID != nil && v.EntriesAdded != nil {
		s.MaxDeletedID, s.FirstID, s.EntriesAdded = *v.MaxDeletedID, *v.FirstID, *v.EntriesAdded
	}
	for _, e := range v.Entries {
		em := entryModel{ID: e.ID}
		for _, fv := range e.Fields {
			for _, x := range fv {
				str, err := jstr(x, false)
				if err != nil {
					return nil, err
				}
				em.Fields = append(em.Fields, str)
			}
		}
		s.Entries = append(s.Entries, em)
	}
	for _, g := range v.Groups {
		name, err := jstr(g.Name, false)
		if err != nil {
			return nil, err
		}
		gm := groupModel{Name: name, LastDeliveredID: g.LastID, EntriesRead: g.EntriesRead}
		for _, p := range g.PEL {
			c, err := jstr(p.Consumer, false)
			if err != nil {
				return nil, err
			}
			gm.PEL = append(gm.PEL, pelModel{p.ID, c, p.DeliveryCount})
		}
		for _, c := range g.Consumers {
			name, err := jstr(c.Name, false)
			if err != nil {
				return nil, err
			}
			cm := consumerModel{name, append([]string{}, c.PEL...)}
			if c.PEL == nil && c.Pending != nil {
				// Only a count: the IDs are the group's entries it owns.
				for _, p := range gm.PEL {
					if p.Consumer == name {
						cm.PEL = append(cm.PEL, p.ID)
					}
				}
				if len(cm.PEL) != *c.Pending {
					return nil, fmt.Errorf("consumer %q: %d pending, its group lists %d", name, *c.Pending, len(cm.PEL))
				}
			}
			gm.Consumers = append(gm.Consumers, cm)
		}
		s.Groups = append(s.Groups, gm)
	}
	return s, nil
}

// compareWithExpectation asserts the decoded file equals the expectation,
// key by key. A server that loaded the file dropped keys already expired
// and empty collections: exactly those may be missing from it.
func compareWithExpectation(t *testing.T, got *decoded, want *expectation) {
	t.Helper()
	byID := map[string]*kv{}
	for _, k := range got.keys {
		byID[k.id()] = k
	}
	seen := map[string]bool{}
	for _, w := range want.keys {
		g, ok := byID[w.id()]
		if !ok {
			t.Errorf("%s: missing from the decoded keys", w.id())
			continue
		}
		seen[w.id()] = true
		if sum, ok := want.wholeValueChecksum[w.id()]; ok {
			h := sha256.Sum256([]byte(g.Str))
			if len(g.Str) != sum.len || hex.EncodeToString(h[:]) != sum.sum {
				t.Errorf("%s: %d bytes with SHA-256 %x, want %d bytes with %s", w.id(), len(g.Str), h, sum.len, sum.sum)
			}
			w.Str = g.Str
		}
		if d := diffLoaded(g, w); d != "" {
			t.Errorf("%s differs: %s", w.id(), d)
		}
	}
	var dropped, expired, empty, unlisted int
	truncated := want.KeysTruncatedTo != nil
	for _, g := range got.keys {
		if seen[g.id()] {
			continue
		}
		switch {
		case truncated && (!want.loadedByOracle || (!g.empty() && (g.ExpireMs == 0 || g.ExpireMs > 1.7e12))):
			// A big file's expectation lists only its first keys.
			unlisted++
			continue
		case want.loadedByOracle && g.empty():
			empty++
		case want.loadedByOracle && g.ExpireMs != 0:
			expired++
		default:
			t.Errorf("%s: decoded, but not in the expectation", g.id())
		}
		dropped++
	}
	if truncated && (want.KeysTotal == nil || len(want.keys)+unlisted != *want.KeysTotal) {
		t.Errorf("%d keys listed and %d not, the expectation counts %v", len(want.keys), unlisted, want.KeysTotal)
	}
	if want.loadedByOracle {
		if expired != *want.KeysExpiredOnLoad || empty != *want.EmptyKeysSkipped {
			t.Errorf("keys not in the expectation: %d with an expiry, %d empty; the server dropped %d expired and %d empty",
				expired, empty, *want.KeysExpiredOnLoad, *want.EmptyKeysSkipped)
		}
	}
	for k, v := range want.Aux {
		if slices.Contains(want.AuxVaries, k) {
			continue
		}
		found := false
		for _, a := range got.aux {
			found = found || a.Key == k && a.Value == v
		}
		if !found {
			t.Errorf("AUX %s=%q not decoded", k, v)
		}
	}
	var code []string
	for _, f := range got.functions {
		code = append(code, f.Code)
	}
	slices.Sort(code)
	slices.Sort(want.functionCode)
	if len(want.functionCode) > 0 && !slices.Equal(code, want.functionCode) {
		t.Errorf("functions: %q, want %q", code, want.functionCode)
	}
	t.Logf("%d keys equal, %d dropped by the loading server", len(want.keys), dropped)
}

// diffLoaded compares a decoded key with what a server that loaded it
// holds (see normalizeStreamLikeRedis).
func diffLoaded(decoded, loaded *kv) string {
	g, w := *decoded, *loaded
	if g.Stream != nil && w.Stream != nil {
		gs, ws := *g.Stream, *w.Stream
		g.Stream, w.Stream = &gs, &ws
		normalizeStreamLikeRedis(&gs, &ws)
	}
	return g.diff(&w)
}

// normalizeStreamLikeRedis fills what a server derives when it loads a
// stream saved before Redis 7.0 (type 15 holds no first ID and no group
// entries-read): the first ID is the first entry's; a group's entries-read
// is the server's estimate, not the file's, and is not compared.
func normalizeStreamLikeRedis(got, want *streamModel) {
	if want.FirstID == "?" {
		got.FirstID, got.MaxDeletedID, got.EntriesAdded = "?", "?", 0
	}
	if got.FirstID == "0-0" && len(got.Entries) > 0 {
		got.FirstID = got.Entries[0].ID
	}
	want.Groups = slices.Clone(want.Groups)
	for i := range got.Groups {
		if got.Groups[i].EntriesRead == nil && i < len(want.Groups) {
			want.Groups[i].EntriesRead = nil
		}
	}
}
