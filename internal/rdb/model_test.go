package rdb_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/rdb"
)

// kv is a key in a form every source of truth can be brought to: the
// decoder, a live server read back by commands, and the fixtures' JSON.
type kv struct {
	DB          int
	Key         string
	Kind        string
	ExpireMs    int64
	Str         string            // string
	List        []string          // list in order; set sorted
	ZSet        []member          // in rank order
	Hash        map[string]string // hash
	FieldExpire map[string]int64  // hash fields with a TTL
	Stream      *streamModel
	Module      string
	Raw         []byte // decoder only: the DUMP payload body
}

type member struct {
	Member string
	Score  float64
}

type streamModel struct {
	Length       uint64
	LastID       string
	FirstID      string
	MaxDeletedID string
	EntriesAdded uint64
	Entries      []entryModel
	Groups       []groupModel
}

type entryModel struct {
	ID     string
	Fields []string // field, value, ...
}

type groupModel struct {
	Name            string
	LastDeliveredID string
	EntriesRead     *int64 // nil: unknown
	PEL             []pelModel
	Consumers       []consumerModel
}

type pelModel struct {
	ID            string
	Consumer      string
	DeliveryCount uint64
}

type consumerModel struct {
	Name string
	PEL  []string
}

func (k *kv) id() string { return fmt.Sprintf("db%d:%q", k.DB, k.Key) }

// empty reports a collection with no elements, which Redis skips on load.
func (k *kv) empty() bool {
	switch k.Kind {
	case "list", "set":
		return len(k.List) == 0
	case "zset":
		return len(k.ZSet) == 0
	case "hash":
		return len(k.Hash) == 0
	}
	return false
}

// normalize puts what has no order in one: sets sorted, empty maps nil.
func (k *kv) normalize() {
	if k.Kind == "set" {
		slices.Sort(k.List)
	}
	if len(k.FieldExpire) == 0 {
		k.FieldExpire = nil
	}
}

// diff describes how two keys differ, or returns "".
func (k *kv) diff(o *kv) string {
	var d []string
	add := func(what string, a, b any) {
		d = append(d, fmt.Sprintf("%s: %.300v != %.300v", what, a, b))
	}
	if k.DB != o.DB || k.Key != o.Key {
		add("name", k.id(), o.id())
	}
	if k.Kind != o.Kind {
		add("kind", k.Kind, o.Kind)
	}
	if k.ExpireMs != o.ExpireMs {
		add("expire", k.ExpireMs, o.ExpireMs)
	}
	if k.Str != o.Str {
		add("string", strconv.Quote(k.Str), strconv.Quote(o.Str))
	}
	if !slices.Equal(k.List, o.List) {
		add("elements", k.List, o.List)
	}
	if !slices.EqualFunc(k.ZSet, o.ZSet, func(a, b member) bool {
		return a.Member == b.Member && (a.Score == b.Score || math.IsNaN(a.Score) && math.IsNaN(b.Score))
	}) {
		add("zset", k.ZSet, o.ZSet)
	}
	if !maps.Equal(k.Hash, o.Hash) {
		add("hash", k.Hash, o.Hash)
	}
	if !maps.Equal(k.FieldExpire, o.FieldExpire) {
		add("field expiry", k.FieldExpire, o.FieldExpire)
	}
	if (k.Stream == nil) != (o.Stream == nil) {
		add("stream", k.Stream, o.Stream)
	} else if k.Stream != nil {
		a, b := *k.Stream, *o.Stream
		a.Entries, b.Entries, a.Groups, b.Groups = nil, nil, nil, nil
		if fmt.Sprint(a) != fmt.Sprint(b) {
			add("stream metadata", a, b)
		}
		if len(k.Stream.Entries) != len(o.Stream.Entries) {
			add("stream entry count", len(k.Stream.Entries), len(o.Stream.Entries))
		}
		for i := range min(len(k.Stream.Entries), len(o.Stream.Entries)) {
			if x, y := fmt.Sprint(k.Stream.Entries[i]), fmt.Sprint(o.Stream.Entries[i]); x != y {
				add(fmt.Sprintf("stream entry %d", i), x, y)
				break
			}
		}
		if x, y := fmt.Sprintf("%+v", groupsText(k.Stream.Groups)), fmt.Sprintf("%+v", groupsText(o.Stream.Groups)); x != y {
			add("stream groups", x, y)
		}
	}
	if k.Module != o.Module {
		add("module", k.Module, o.Module)
	}
	return strings.Join(d, "; ")
}

// decoded is a whole file as the decoder saw it.
type decoded struct {
	version   int
	keys      []*kv
	aux       []rdb.Aux
	functions []rdb.Function
	moduleAux []rdb.ModuleAux
}

// decodeFile decodes every key of an RDB file with its elements and raw
// value.
func decodeFile(data []byte) (*decoded, error) {
	return decodeFileWith(bytes.NewReader(data), func(d *rdb.Decoder, fn func(*rdb.Element) error) ([]byte, error) {
		return d.ReadValue(math.MaxInt, fn)
	})
}

// decodeFileWith decodes a file reading each value with read, which hands
// the elements to fn and returns the raw value (or nil).
func decodeFileWith(r io.Reader, read func(*rdb.Decoder, func(*rdb.Element) error) ([]byte, error)) (*decoded, error) {
	d, err := rdb.NewDecoder(r)
	if err != nil {
		return nil, err
	}
	out := &decoded{version: d.Version()}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			out.aux, out.functions, out.moduleAux = d.Aux(), d.Functions(), d.ModuleAux()
			return out, nil
		}
		if err != nil {
			return out, err
		}
		k := &kv{DB: rec.DB, Key: string(rec.Key), Kind: rec.Kind.String(), ExpireMs: rec.ExpireMs}
		var s *streamModel
		if rec.Kind == rdb.KindStream {
			s = &streamModel{}
			k.Stream = s
		}
		raw, err := read(d, func(e *rdb.Element) error {
			switch rec.Kind {
			case rdb.KindString:
				k.Str = string(e.Member)
			case rdb.KindList, rdb.KindSet:
				k.List = append(k.List, string(e.Member))
			case rdb.KindZSet:
				k.ZSet = append(k.ZSet, member{string(e.Member), e.Score})
			case rdb.KindHash:
				if k.Hash == nil {
					k.Hash = map[string]string{}
				}
				k.Hash[string(e.Member)] = string(e.Value)
				if e.ExpireMs != 0 {
					if k.FieldExpire == nil {
						k.FieldExpire = map[string]int64{}
					}
					k.FieldExpire[string(e.Member)] = e.ExpireMs
				}
			case rdb.KindStream:
				addStreamElement(s, e)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		k.Raw = bytes.Clone(raw)
		k.Module = rec.Module
		if rec.Kind == rdb.KindZSet {
			// The file holds a zset in rank order already, except the
			// hashtable encodings, whose order is the dict's.
			sortZSet(k.ZSet)
		}
		k.normalize()
		out.keys = append(out.keys, k)
	}
}

func sortZSet(z []member) {
	slices.SortStableFunc(z, func(a, b member) int {
		if a.Score != b.Score {
			if a.Score < b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Member, b.Member)
	})
}

func addStreamElement(s *streamModel, e *rdb.Element) {
	switch {
	case e.Entry != nil:
		em := entryModel{ID: e.Entry.ID.String()}
		for _, f := range e.Entry.Fields {
			em.Fields = append(em.Fields, string(f))
		}
		s.Entries = append(s.Entries, em)
	case e.Stream != nil:
		m := e.Stream
		s.Length, s.LastID, s.MaxDeletedID, s.EntriesAdded = m.Length, m.LastID.String(), m.MaxDeletedID.String(), m.EntriesAdded
		s.FirstID = m.FirstID.String()
	case e.Group != nil:
		g := e.Group
		gm := groupModel{Name: string(g.Name), LastDeliveredID: g.LastDeliveredID.String()}
		if g.EntriesRead >= 0 {
			v := g.EntriesRead
			gm.EntriesRead = &v
		}
		owner := map[rdb.StreamID]string{}
		for _, c := range g.Consumers {
			cm := consumerModel{Name: string(c.Name), PEL: []string{}}
			for _, id := range c.Pending {
				cm.PEL = append(cm.PEL, id.String())
				owner[id] = cm.Name
			}
			gm.Consumers = append(gm.Consumers, cm)
		}
		for _, p := range g.Pending {
			gm.PEL = append(gm.PEL, pelModel{ID: p.ID.String(), Consumer: owner[p.ID], DeliveryCount: p.DeliveryCount})
		}
		s.Groups = append(s.Groups, gm)
	}
}

func groupsText(gs []groupModel) []string {
	var out []string
	for _, g := range gs {
		er := "unknown"
		if g.EntriesRead != nil {
			er = strconv.FormatInt(*g.EntriesRead, 10)
		}
		out = append(out, fmt.Sprintf("%s last=%s read=%s pel=%v consumers=%v", g.Name, g.LastDeliveredID, er, g.PEL, g.Consumers))
	}
	return out
}
