// Package rdbjson writes the keys of an RDB file as JSON lines, one
// object per key, streaming: a big key's elements go out as they are
// decoded, never held whole.
package rdbjson

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/resync/resync/internal/rdb"
)

// Options narrow what is written.
type Options struct {
	// DBs, when not empty, are the only databases written.
	DBs []int
	// AllowKeyPrefixes, when not empty, are the prefixes a key must
	// start with (one of them) to be written.
	AllowKeyPrefixes []string
}

func (o *Options) wants(rec *rdb.Record) bool {
	if len(o.DBs) > 0 {
		found := false
		for _, db := range o.DBs {
			found = found || db == rec.DB
		}
		if !found {
			return false
		}
	}
	if len(o.AllowKeyPrefixes) == 0 {
		return true
	}
	for _, p := range o.AllowKeyPrefixes {
		if bytes.HasPrefix(rec.Key, []byte(p)) {
			return true
		}
	}
	return false
}

// Stats counts what Write did.
type Stats struct {
	Keys     int // written
	Filtered int // left out by the options
	Empty    int // empty collections, left out as Redis does on load
}

// Write decodes the RDB stream r and writes one line per key to w:
//
//	{"db":0,"key":"k","type":"hash","expire_ms":1735689600000,"value":{...},"field_expire_ms":{...}}
//
// expire_ms is absent when the key has none. Values: string → string;
// list and set → array; zset → array of [member, score] with the score as
// a string ("inf", "-inf"), in the file's order (rank order for the
// compact encodings; a big zset's order is the saving server's, and
// sorting it would mean holding it whole); hash → object, plus field_expire_ms for fields
// with a TTL; stream → {"length","last_id",...,"entries":[{"id","fields"}],
// "groups":[...]}; module → {"module":name,"raw_b64":...}. A string that
// is not valid UTF-8 is written as {"b64":"..."} in its place (a hash
// field, an object key, as the text of that object).
func Write(w io.Writer, r io.Reader, o Options) (Stats, error) {
	var st Stats
	d, err := rdb.NewDecoder(r)
	if err != nil {
		return st, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	e := &encoder{w: bw}
	for {
		rec, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			bw.Flush()
			return st, err
		}
		if !o.wants(rec) {
			st.Filtered++
			continue
		}
		written, err := e.key(d, rec)
		if err != nil {
			bw.Flush()
			return st, err
		}
		if written {
			st.Keys++
		} else {
			st.Empty++
		}
	}
	return st, bw.Flush()
}

type encoder struct {
	w   *bufio.Writer
	buf []byte

	// State of the key being written.
	rec     *rdb.Record
	started bool // the line's head and the value's opening are out
	n       int  // elements written
	expires [][]byte
	groups  int
}

// key writes one key's line; a collection with no elements writes
// nothing (written false).
func (e *encoder) key(d *rdb.Decoder, rec *rdb.Record) (written bool, err error) {
	e.rec, e.started, e.n, e.expires, e.groups = rec, false, 0, e.expires[:0], 0
	if rec.Kind == rdb.KindModule {
		raw, err := d.Raw()
		if err != nil {
			return false, err
		}
		e.head()
		e.buf = append(e.buf, `{"module":`...)
		e.buf = appendString(e.buf, []byte(rec.Module))
		e.buf = append(e.buf, `,"raw_b64":"`...)
		e.buf = base64.StdEncoding.AppendEncode(e.buf, raw)
		e.buf = append(e.buf, "\"}}\n"...)
		return true, e.flush()
	}
	if _, err := d.ReadValue(0, e.element); err != nil {
		return false, err
	}
	if !e.started {
		// No element: an empty collection (a stream always has its
		// metadata element, so an empty stream is still written).
		return false, nil
	}
	e.close()
	return true, e.flush()
}

// flush writes the buffer out when it has grown: a big key streams.
func (e *encoder) flush() error {
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

func (e *encoder) head() {
	rec := e.rec
	e.buf = append(e.buf, `{"db":`...)
	e.buf = strconv.AppendInt(e.buf, int64(rec.DB), 10)
	e.buf = append(e.buf, `,"key":`...)
	e.buf = appendString(e.buf, rec.Key)
	e.buf = append(e.buf, `,"type":"`...)
	e.buf = append(e.buf, rec.Kind.String()...)
	e.buf = append(e.buf, '"')
	if rec.ExpireMs != 0 {
		e.buf = append(e.buf, `,"expire_ms":`...)
		e.buf = strconv.AppendInt(e.buf, rec.ExpireMs, 10)
	}
	e.buf = append(e.buf, `,"value":`...)
}

func (e *encoder) open() {
	e.head()
	switch e.rec.Kind {
	case rdb.KindList, rdb.KindSet, rdb.KindZSet:
		e.buf = append(e.buf, '[')
	case rdb.KindHash:
		e.buf = append(e.buf, '{')
	case rdb.KindStream:
		e.buf = append(e.buf, `{"entries":[`...)
	}
	e.started = true
}

func (e *encoder) close() {
	switch e.rec.Kind {
	case rdb.KindList, rdb.KindSet, rdb.KindZSet:
		e.buf = append(e.buf, ']')
	case rdb.KindHash:
		e.buf = append(e.buf, '}')
		if len(e.expires) > 0 {
			e.buf = append(e.buf, `,"field_expire_ms":{`...)
			for i := 0; i < len(e.expires); i += 2 {
				if i > 0 {
					e.buf = append(e.buf, ',')
				}
				e.buf = appendKey(e.buf, e.expires[i])
				e.buf = append(e.buf, ':')
				e.buf = append(e.buf, e.expires[i+1]...)
			}
			e.buf = append(e.buf, '}')
		}
	case rdb.KindStream:
		e.buf = append(e.buf, "]}"...) // the groups, the stream
	}
	e.buf = append(e.buf, "}\n"...)
}

// element writes one element of the current key.
func (e *encoder) element(el *rdb.Element) error {
	if !e.started {
		e.open()
	}
	rec := e.rec
	sep := e.n > 0
	e.n++
	switch rec.Kind {
	case rdb.KindString:
		e.buf = appendString(e.buf, el.Member)
	case rdb.KindList, rdb.KindSet:
		if sep {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, el.Member)
	case rdb.KindZSet:
		if sep {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, '[')
		e.buf = appendString(e.buf, el.Member)
		e.buf = append(e.buf, ",\""...)
		e.buf = AppendScore(e.buf, el.Score)
		e.buf = append(e.buf, "\"]"...)
	case rdb.KindHash:
		if sep {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendKey(e.buf, el.Member)
		e.buf = append(e.buf, ':')
		e.buf = appendString(e.buf, el.Value)
		if el.ExpireMs != 0 {
			e.expires = append(e.expires, bytes.Clone(el.Member), strconv.AppendInt(nil, el.ExpireMs, 10))
		}
	case rdb.KindStream:
		e.streamElement(el)
	default:
		return errors.New("rdbjson: element of a " + rec.Kind.String())
	}
	if len(e.buf) >= 64<<10 {
		return e.flush()
	}
	return nil
}

func (e *encoder) streamElement(el *rdb.Element) {
	switch {
	case el.Entry != nil:
		if e.n > 1 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, `{"id":"`...)
		e.buf = appendID(e.buf, el.Entry.ID)
		e.buf = append(e.buf, `","fields":[`...)
		for i, f := range el.Entry.Fields {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, f)
		}
		e.buf = append(e.buf, "]}"...)
	case el.Stream != nil:
		m := el.Stream
		e.buf = append(e.buf, `],"length":`...)
		e.buf = strconv.AppendUint(e.buf, m.Length, 10)
		e.buf = append(e.buf, `,"last_id":"`...)
		e.buf = appendID(e.buf, m.LastID)
		e.buf = append(e.buf, `","first_id":"`...)
		e.buf = appendID(e.buf, m.FirstID)
		e.buf = append(e.buf, `","max_deleted_id":"`...)
		e.buf = appendID(e.buf, m.MaxDeletedID)
		e.buf = append(e.buf, `","entries_added":`...)
		e.buf = strconv.AppendUint(e.buf, m.EntriesAdded, 10)
		e.buf = append(e.buf, `,"groups":[`...)
	case el.Group != nil:
		g := el.Group
		if e.groups > 0 {
			e.buf = append(e.buf, ',')
		}
		e.groups++
		e.buf = append(e.buf, `{"name":`...)
		e.buf = appendString(e.buf, g.Name)
		e.buf = append(e.buf, `,"last_delivered_id":"`...)
		e.buf = appendID(e.buf, g.LastDeliveredID)
		e.buf = append(e.buf, `","entries_read":`...)
		if g.EntriesRead < 0 {
			e.buf = append(e.buf, "null"...)
		} else {
			e.buf = strconv.AppendInt(e.buf, g.EntriesRead, 10)
		}
		e.buf = append(e.buf, `,"pending":[`...)
		for i, p := range g.Pending {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = append(e.buf, `{"id":"`...)
			e.buf = appendID(e.buf, p.ID)
			e.buf = append(e.buf, `","delivery_ms":`...)
			e.buf = strconv.AppendInt(e.buf, p.DeliveryMs, 10)
			e.buf = append(e.buf, `,"delivery_count":`...)
			e.buf = strconv.AppendUint(e.buf, p.DeliveryCount, 10)
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, `],"consumers":[`...)
		for i, c := range g.Consumers {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = append(e.buf, `{"name":`...)
			e.buf = appendString(e.buf, c.Name)
			e.buf = append(e.buf, `,"seen_ms":`...)
			e.buf = strconv.AppendInt(e.buf, c.SeenMs, 10)
			if c.ActiveMs >= 0 {
				e.buf = append(e.buf, `,"active_ms":`...)
				e.buf = strconv.AppendInt(e.buf, c.ActiveMs, 10)
			}
			e.buf = append(e.buf, `,"pending":[`...)
			for j, id := range c.Pending {
				if j > 0 {
					e.buf = append(e.buf, ',')
				}
				e.buf = append(e.buf, '"')
				e.buf = appendID(e.buf, id)
				e.buf = append(e.buf, '"')
			}
			e.buf = append(e.buf, "]}"...)
		}
		e.buf = append(e.buf, "]}"...)
	}
}

func appendID(b []byte, id rdb.StreamID) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// AppendScore appends a zset score as text: the shortest form that reads
// back as the same double, "inf" and "-inf" as Redis writes them.
func AppendScore(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case math.IsNaN(f):
		return append(b, "nan"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendKey appends a hash field as an object key. A field that is not
// valid UTF-8 cannot be an object of its own there: the key is then the
// text of its {"b64":"..."} form.
func appendKey(b, s []byte) []byte {
	if utf8.Valid(s) {
		return appendString(b, s)
	}
	return appendString(b, appendString(nil, s))
}

// appendString appends s as a JSON string, or as {"b64":"..."} when it is
// not valid UTF-8.
func appendString(b, s []byte) []byte {
	if !utf8.Valid(s) {
		b = append(b, `{"b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, s)
		return append(b, `"}`...)
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
