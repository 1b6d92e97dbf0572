package rdb

import (
	"fmt"
	"math"
	"strconv"
)

// Value types: the RDB type byte before each key. Several encodings of
// one kind of value each have their own byte.
const (
	TypeString              = 0
	TypeList                = 1 // linked list: each element a string
	TypeSet                 = 2
	TypeZSet                = 3 // scores as text
	TypeHash                = 4
	TypeZSet2               = 5 // scores as binary doubles
	TypeModulePreGA         = 6 // 4.0 release candidates: cannot be skipped
	TypeModule2             = 7
	TypeHashZipmap          = 9
	TypeListZiplist         = 10
	TypeSetIntset           = 11
	TypeZSetZiplist         = 12
	TypeHashZiplist         = 13
	TypeListQuicklist       = 14 // nodes are ziplists
	TypeStreamListpacks     = 15
	TypeHashListpack        = 16
	TypeZSetListpack        = 17
	TypeListQuicklist2      = 18 // nodes are listpacks or plain elements
	TypeStreamListpacks2    = 19
	TypeSetListpack         = 20
	TypeStreamListpacks3    = 21
	TypeHashMetadataPreGA   = 22 // 7.4 release candidates: absolute field TTLs
	TypeHashListpackExPreGA = 23
	TypeHashMetadata        = 24 // field TTLs relative to a minimum
	TypeHashListpackEx      = 25
)

// Kind is what a value is, whatever its encoding.
type Kind uint8

// The kinds of value.
const (
	KindUnknown Kind = iota
	KindString
	KindList
	KindSet
	KindZSet
	KindHash
	KindStream
	KindModule
)

var kindNames = [...]string{"unknown", "string", "list", "set", "zset", "hash", "stream", "module"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// KindOf returns the kind of value an RDB type byte holds.
func KindOf(typ byte) Kind {
	switch typ {
	case TypeString:
		return KindString
	case TypeList, TypeListZiplist, TypeListQuicklist, TypeListQuicklist2:
		return KindList
	case TypeSet, TypeSetIntset, TypeSetListpack:
		return KindSet
	case TypeZSet, TypeZSet2, TypeZSetZiplist, TypeZSetListpack:
		return KindZSet
	case TypeHash, TypeHashZipmap, TypeHashZiplist, TypeHashListpack,
		TypeHashMetadataPreGA, TypeHashListpackExPreGA, TypeHashMetadata, TypeHashListpackEx:
		return KindHash
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return KindStream
	case TypeModulePreGA, TypeModule2:
		return KindModule
	}
	return KindUnknown
}

// Element is one piece of a value, handed to the callback of
// Decoder.ReadValue. Its slices are valid only during the call.
//
//   - string: Member is the value;
//   - list and set: Member;
//   - zset: Member and Score;
//   - hash: Member is the field, Value its value, ExpireMs the field's
//     absolute expiry in Unix ms (0: none);
//   - stream: one element per entry (Entry), then one with the stream's
//     metadata (Stream), then one per consumer group (Group).
type Element struct {
	Member   []byte
	Value    []byte
	Score    float64
	ExpireMs int64
	Entry    *StreamEntry
	Stream   *StreamMeta
	Group    *StreamGroup
}

// visit receives each element of a value; nil means "only walk it".
type visit func(*Element) error

// readValue walks the value of type typ, handing each element to fn
// when fn is not nil.
func (d *Decoder) readValue(typ byte, fn visit) error {
	in := d.in
	e := &d.elem
	*e = Element{}
	switch typ {
	case TypeString:
		v, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("string value: %w", err)
		}
		if fn != nil {
			e.Member = v
			return fn(e)
		}
		return nil
	case TypeList, TypeSet:
		n, err := in.plainLength()
		if err != nil {
			return fmt.Errorf("element count: %w", err)
		}
		if err := d.declared(n); err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			v, err := in.readStr(fn != nil)
			if err != nil {
				return fmt.Errorf("element %d of %d: %w", i, n, err)
			}
			if fn != nil {
				e.Member = v
				if err := fn(e); err != nil {
					return err
				}
			}
		}
		return nil
	case TypeZSet, TypeZSet2:
		return d.readZSet(typ, fn)
	case TypeHash, TypeHashMetadata, TypeHashMetadataPreGA:
		return d.readHash(typ, fn)
	case TypeListQuicklist, TypeListQuicklist2:
		return d.readQuicklist(typ, fn)
	case TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZSetZiplist, TypeHashZiplist,
		TypeHashListpack, TypeZSetListpack, TypeSetListpack, TypeHashListpackEx, TypeHashListpackExPreGA:
		if typ == TypeHashListpackEx {
			// The hash's earliest field expiry, kept for future use by Redis.
			if _, err := in.uint64LE(); err != nil {
				return fmt.Errorf("minimum field expiry: %w", err)
			}
		}
		b, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("encoded value: %w", err)
		}
		if fn == nil {
			return nil
		}
		return d.walkBlob(typ, b, fn)
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return d.readStream(typ, fn)
	case TypeModule2:
		return d.readModule(fn)
	case TypeModulePreGA:
		id, err := in.plainLength()
		if err != nil {
			return fmt.Errorf("module id: %w", err)
		}
		return fmt.Errorf("module type %q uses the pre-release (4.0 RC) format, which has no markers to skip it by: resync cannot read past it", moduleName(id))
	}
	return fmt.Errorf("unknown value type %d", typ)
}

func (d *Decoder) readZSet(typ byte, fn visit) error {
	in := d.in
	e := &d.elem
	n, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("member count: %w", err)
	}
	if err := d.declared(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		m, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("member %d of %d: %w", i, n, err)
		}
		// The score's read may move the buffer under m: keep a copy.
		if fn != nil {
			d.scratch = append(d.scratch[:0], m...)
		}
		var score float64
		if typ == TypeZSet2 {
			score, err = in.float64LE()
		} else {
			score, err = in.textScore()
		}
		if err != nil {
			return fmt.Errorf("score of member %d of %d: %w", i, n, err)
		}
		if fn != nil {
			e.Member, e.Score = d.scratch, score
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// textScore reads a score saved as text (zset type 3): a length byte with
// 253, 254 and 255 standing for NaN, +inf and -inf.
func (in *input) textScore() (float64, error) {
	l, err := in.readByte()
	if err != nil {
		return 0, err
	}
	switch l {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	b, err := in.next(int(l))
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("score %q is not a number", b)
	}
	return f, nil
}

func (d *Decoder) readHash(typ byte, fn visit) error {
	in := d.in
	e := &d.elem
	var minExpire uint64
	if typ == TypeHashMetadata {
		var err error
		if minExpire, err = in.uint64LE(); err != nil {
			return fmt.Errorf("minimum field expiry: %w", err)
		}
	}
	n, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("field count: %w", err)
	}
	if err := d.declared(n); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		var expire int64
		if typ != TypeHash {
			ttl, err := in.plainLength()
			if err != nil {
				return fmt.Errorf("expiry of field %d of %d: %w", i, n, err)
			}
			switch {
			case ttl == 0:
			case typ == TypeHashMetadata:
				// Relative to the minimum, plus one: 0 means "no expiry".
				expire = int64(ttl + minExpire - 1)
			default:
				expire = int64(ttl)
			}
		}
		f, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("field %d of %d: %w", i, n, err)
		}
		if fn != nil {
			d.scratch = append(d.scratch[:0], f...)
		}
		v, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("value of field %d of %d: %w", i, n, err)
		}
		if fn != nil {
			e.Member, e.Value, e.ExpireMs = d.scratch, v, expire
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Quicklist node containers (quicklist 2).
const (
	nodePlain  = 1
	nodePacked = 2
)

func (d *Decoder) readQuicklist(typ byte, fn visit) error {
	in := d.in
	n, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("node count: %w", err)
	}
	for i := uint64(0); i < n; i++ {
		container := uint64(nodePacked)
		if typ == TypeListQuicklist2 {
			if container, err = in.plainLength(); err != nil {
				return fmt.Errorf("node %d of %d: %w", i, n, err)
			}
			if container != nodePlain && container != nodePacked {
				return fmt.Errorf("node %d of %d: unknown container %d", i, n, container)
			}
		}
		b, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("node %d of %d: %w", i, n, err)
		}
		if fn == nil {
			continue
		}
		if container == nodePlain {
			d.elem.Member = b
			err = fn(&d.elem)
		} else {
			err = d.walkList(b, typ == TypeListQuicklist, fn)
		}
		if err != nil {
			return fmt.Errorf("node %d of %d: %w", i, n, err)
		}
	}
	return nil
}

// walkList hands each entry of a ziplist or listpack to fn as a member.
func (d *Decoder) walkList(b []byte, zip bool, fn visit) error {
	bl, err := openBlob(b, zip)
	if err != nil {
		return err
	}
	e := &d.elem
	var v blobEntry
	for !bl.done() {
		if err := bl.next(&v); err != nil {
			return err
		}
		e.Member = v.text(d.num[:])
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// walkBlob decodes the value of a type saved as one encoded string.
func (d *Decoder) walkBlob(typ byte, b []byte, fn visit) error {
	e := &d.elem
	switch typ {
	case TypeListZiplist:
		return d.walkList(b, true, fn)
	case TypeSetListpack:
		return d.walkList(b, false, fn)
	case TypeSetIntset:
		return walkIntset(b, func(v int64) error {
			e.Member = strconv.AppendInt(d.num[:0], v, 10)
			return fn(e)
		})
	case TypeHashZipmap:
		return walkZipmap(b, func(f, v []byte) error {
			e.Member, e.Value = f, v
			return fn(e)
		})
	}
	// Ziplists and listpacks of pairs (hash, zset) or triplets (hash with
	// field expiry: field, value, expiry).
	bl, err := openBlob(b, typ == TypeHashZiplist || typ == TypeZSetZiplist)
	if err != nil {
		return err
	}
	var a, v, t blobEntry
	for i := 0; !bl.done(); i++ {
		if err := bl.next(&a); err != nil {
			return err
		}
		if bl.done() {
			return fmt.Errorf("entry %d has no pair", i)
		}
		if err := bl.next(&v); err != nil {
			return err
		}
		e.Member = a.text(d.num[:])
		switch typ {
		case TypeZSetZiplist, TypeZSetListpack:
			if v.isInt {
				e.Score = float64(v.ival)
			} else if e.Score, err = strconv.ParseFloat(string(v.str), 64); err != nil {
				return fmt.Errorf("score of %q: %q is not a number", e.Member, v.str)
			}
		default:
			e.Value = v.text(d.num2[:])
		}
		if typ == TypeHashListpackEx || typ == TypeHashListpackExPreGA {
			if bl.done() {
				return fmt.Errorf("field %q has no expiry entry", e.Member)
			}
			if err := bl.next(&t); err != nil {
				return err
			}
			if e.ExpireMs, err = t.integer(); err != nil {
				return fmt.Errorf("expiry of field %q: %w", e.Member, err)
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
