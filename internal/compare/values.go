package compare

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/resync/resync/internal/resp"
)

// collections compares the batch's keys that are not strings: one read
// of each on both sides, pipelined; a key that does not fit in that read
// is left in w.big, to be compared in chunks.
func (w *worker) collections(j job) error {
	if len(w.keys) == 0 {
		return nil
	}
	for _, ks := range w.keys {
		for _, x := range [2]*side{w.s, w.t} {
			sendFirst(x, ks)
		}
	}
	sv, tv, err := w.exchange()
	if err != nil {
		return err
	}
	i := 0
	// Hashes equal in their first read: their fields' TTLs next, in one
	// more exchange.
	type hashTTLs struct {
		ks     keyState
		fields []resp.Value
	}
	var hashes []hashTTLs
	for _, ks := range w.keys {
		n := firstReplies(ks.typ)
		d, complete := firstDiff(ks.typ, sv[i:i+n], tv[i:i+n])
		i += n
		switch {
		case d != "":
			w.diff(j, ks.key, Value, d)
		case !complete:
			w.big = append(w.big, ks)
		case ks.typ == "hash":
			if fields := hashFields(sv[i-1].Elems[1].Elems); w.sendFieldTTLs(ks.key, fields) {
				hashes = append(hashes, hashTTLs{ks, fields})
				continue
			}
			w.ttl(j, ks)
		default:
			w.ttl(j, ks)
		}
	}
	if len(hashes) == 0 {
		return nil
	}
	sv, tv, err = w.exchange()
	if err != nil {
		return err
	}
	for i, h := range hashes {
		if d := w.fieldTTLDiff(h.fields, sv[i], tv[i]); d != "" {
			w.diff(j, h.ks.key, TTL, d)
			continue
		}
		w.ttl(j, h.ks)
	}
	return nil
}

// sendFirst sends the first read of a collection.
func sendFirst(x *side, ks keyState) {
	k := ks.key
	switch ks.typ {
	case "list":
		x.send(cmdLRANGE, k, zero, firstElemsEnd)
	case "zset":
		x.send(cmdZRANGE, k, zero, firstElemsEnd, argScores)
	case "hash":
		x.send(cmdHSCAN, k, zero, cmdCOUNT, firstElemsArg)
	case "set":
		x.send(cmdSSCAN, k, zero, cmdCOUNT, firstElemsArg)
	case "stream":
		x.send(cmdXINFO, cmdSTREAM, k)
		x.send(cmdXINFO, cmdGROUPS, k)
		x.send(cmdXRANGE, k, minusID, plusID, cmdCOUNT, firstElemsArg)
	default:
		// A module's type: its serialized form is all there is to compare.
		x.send(cmdDUMP, k)
	}
}

func firstReplies(typ string) int {
	if typ == "stream" {
		return 3
	}
	return 1
}

// firstDiff compares the first reads of a collection; complete is false
// when the value did not fit in them (and no difference showed yet).
func firstDiff(typ string, a, b []resp.Value) (detail string, complete bool) {
	for i := range a {
		if d := readError(a[i], b[i]); d != "" {
			return d, true
		}
	}
	switch typ {
	case "list":
		return diffPrefix(a[0].Elems, b[0].Elems, 1, firstElems, diffList)
	case "zset":
		return diffPrefix(a[0].Elems, b[0].Elems, 2, firstElems, diffZset)
	case "hash", "set":
		ac, bc := scanReply(a[0]), scanReply(b[0])
		if ac == nil || bc == nil {
			return fmt.Sprintf("unexpected scan replies: source %v, target %v", a[0], b[0]), true
		}
		if !bytes.Equal(ac, zero) || !bytes.Equal(bc, zero) {
			return "", false
		}
		if typ == "hash" {
			return diffHash(a[0].Elems[1].Elems, b[0].Elems[1].Elems), true
		}
		return diffSet(a[0].Elems[1].Elems, b[0].Elems[1].Elems), true
	case "stream":
		if d := diffStreamMeta(a[0], b[0]); d != "" {
			return d, true
		}
		if d := diffGroups(a[1], b[1]); d != "" {
			return d, true
		}
		return diffPrefix(a[2].Elems, b[2].Elems, 1, firstElems, diffEntries)
	}
	pa, pb := a[0].Str, b[0].Str
	if len(pa) < 10 || len(pb) < 10 || !bytes.Equal(pa[:len(pa)-10], pb[:len(pb)-10]) {
		return fmt.Sprintf("type %s: DUMP payloads differ (%d and %d bytes)", typ, len(pa), len(pb)), true
	}
	return "", true
}

// diffPrefix compares two reads of an ordered collection that asked for
// up to limit items (of per replies each). The reads are complete when
// both came back short; then their lengths must match too.
func diffPrefix(a, b []resp.Value, per, limit int, diff func(a, b []resp.Value, base int) string) (string, bool) {
	if d := diff(a, b, 0); d != "" {
		return d, true
	}
	if len(a) == limit*per || len(b) == limit*per {
		return "", false
	}
	if len(a) != len(b) {
		return fmt.Sprintf("length: source %d, target %d", len(a)/per, len(b)/per), true
	}
	return "", true
}

// readError describes an error reply to a read, which means the key
// changed type while it was read (or the read is not allowed).
func readError(a, b resp.Value) string {
	for _, x := range [2]struct {
		side string
		v    resp.Value
	}{{"source", a}, {"target", b}} {
		if err := x.v.Err(); err != nil {
			return fmt.Sprintf("reading the %s failed (did the key change meanwhile?): %v", x.side, err)
		}
	}
	return ""
}

// scanReply returns an HSCAN/SSCAN reply's cursor; nil for a malformed reply.
func scanReply(v resp.Value) []byte {
	if len(v.Elems) != 2 {
		return nil
	}
	return v.Elems[0].Str
}

// show quotes a value for a report, shortened when long.
func show(b []byte) string {
	const most = 64
	if len(b) <= most {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(string(b[:most])), len(b))
}

// diffBytes compares two string reads that start at byte base.
func diffBytes(a, b resp.Value, base int64) string {
	if d := readError(a, b); d != "" {
		return d
	}
	x, y := a.Str, b.Str
	if bytes.Equal(x, y) {
		return ""
	}
	i := 0
	for i < len(x) && i < len(y) && x[i] == y[i] {
		i++
	}
	return fmt.Sprintf("the strings differ from byte %d: source %s, target %s", base+int64(i), show(x[i:]), show(y[i:]))
}

// diffList compares list elements at the same indexes.
func diffList(a, b []resp.Value, base int) string {
	for i := range min(len(a), len(b)) {
		if !bytes.Equal(a[i].Str, b[i].Str) {
			return fmt.Sprintf("list index %d: source %s, target %s", base+i, show(a[i].Str), show(b[i].Str))
		}
	}
	return ""
}

// diffZset compares zset members and scores at the same ranks. Scores
// are compared as numbers: servers print one double differently (7.2+
// the shortest form, older ones %.17g; -0 as 0 or -0).
func diffZset(a, b []resp.Value, base int) string {
	for i := 0; i+1 < min(len(a), len(b)); i += 2 {
		if !bytes.Equal(a[i].Str, b[i].Str) {
			return fmt.Sprintf("zset rank %d: source %s (score %s), target %s (score %s)",
				base+i/2, show(a[i].Str), a[i+1].Str, show(b[i].Str), b[i+1].Str)
		}
		if !sameScore(a[i+1].Str, b[i+1].Str) {
			return fmt.Sprintf("zset member %s: source score %s, target score %s", show(a[i].Str), a[i+1].Str, b[i+1].Str)
		}
	}
	return ""
}

func sameScore(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, err1 := strconv.ParseFloat(string(a), 64)
	y, err2 := strconv.ParseFloat(string(b), 64)
	return err1 == nil && err2 == nil && x == y
}

// diffHash compares two whole hashes, as field, value lists.
func diffHash(a, b []resp.Value) string {
	t := make(map[string][]byte, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		t[string(b[i].Str)] = b[i+1].Str
	}
	seen := 0
	for i := 0; i+1 < len(a); i += 2 {
		v, ok := t[string(a[i].Str)]
		if !ok {
			return fmt.Sprintf("hash field %s: only the source has it", show(a[i].Str))
		}
		if !bytes.Equal(v, a[i+1].Str) {
			return fmt.Sprintf("hash field %s: source %s, target %s", show(a[i].Str), show(a[i+1].Str), show(v))
		}
		seen++
	}
	if seen < len(t) {
		s := make(map[string]bool, len(a)/2)
		for i := 0; i < len(a); i += 2 {
			s[string(a[i].Str)] = true
		}
		for _, f := range slices.Sorted(maps.Keys(t)) {
			if !s[f] {
				return fmt.Sprintf("hash field %s: only the target has it", show([]byte(f)))
			}
		}
	}
	return ""
}

// diffSet compares two whole sets.
func diffSet(a, b []resp.Value) string {
	t := make(map[string]bool, len(b))
	for _, m := range b {
		t[string(m.Str)] = true
	}
	for _, m := range a {
		if !t[string(m.Str)] {
			return fmt.Sprintf("set member %s: only the source has it", show(m.Str))
		}
	}
	if len(a) != len(t) {
		s := make(map[string]bool, len(a))
		for _, m := range a {
			s[string(m.Str)] = true
		}
		for _, m := range slices.Sorted(maps.Keys(t)) {
			if !s[m] {
				return fmt.Sprintf("set member %s: only the target has it", show([]byte(m)))
			}
		}
	}
	return ""
}

// fields reads a RESP2 field, value array (as XINFO replies) into a map.
func fields(v resp.Value) map[string]resp.Value {
	m := make(map[string]resp.Value, len(v.Elems)/2)
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[v.Elems[i].Text()] = v.Elems[i+1]
	}
	return m
}

// diffStreamMeta compares what XINFO STREAM says that the entries do not:
// the last id generated (which the next XADD * builds on).
func diffStreamMeta(a, b resp.Value) string {
	x, y := fields(a)["last-generated-id"].Text(), fields(b)["last-generated-id"].Text()
	if x != y {
		return fmt.Sprintf("stream last-generated-id: source %s, target %s", x, y)
	}
	return ""
}

// diffGroups compares consumer groups: each group's last-delivered id and
// pending count. Not entries-read (a native replica of 7.x reports it
// unknown where its source counts) nor the consumers' idle times.
func diffGroups(a, b resp.Value) string {
	type group struct{ last, pending string }
	read := func(v resp.Value) map[string]group {
		m := map[string]group{}
		for _, g := range v.Elems {
			f := fields(g)
			m[f["name"].Text()] = group{f["last-delivered-id"].Text(), f["pending"].Text()}
		}
		return m
	}
	ga, gb := read(a), read(b)
	for _, name := range slices.Sorted(maps.Keys(ga)) {
		x := ga[name]
		y, ok := gb[name]
		switch {
		case !ok:
			return fmt.Sprintf("consumer group %q: only the source has it", name)
		case x.last != y.last:
			return fmt.Sprintf("consumer group %q: last-delivered-id source %s, target %s", name, x.last, y.last)
		case x.pending != y.pending:
			return fmt.Sprintf("consumer group %q: pending source %s, target %s", name, x.pending, y.pending)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(gb)) {
		if _, ok := ga[name]; !ok {
			return fmt.Sprintf("consumer group %q: only the target has it", name)
		}
	}
	return ""
}

// diffEntries compares stream entries (id, then the field list) at the
// same positions.
func diffEntries(a, b []resp.Value, base int) string {
	for i := range min(len(a), len(b)) {
		x, y := a[i].Elems, b[i].Elems
		if len(x) != 2 || len(y) != 2 {
			return fmt.Sprintf("stream entry %d: unexpected replies %v, %v", base+i, a[i], b[i])
		}
		if !bytes.Equal(x[0].Str, y[0].Str) {
			return fmt.Sprintf("stream entry %d: source id %s, target id %s", base+i, x[0].Str, y[0].Str)
		}
		if !sameElems(x[1].Elems, y[1].Elems) {
			return fmt.Sprintf("stream entry %s: source %v, target %v", x[0].Str, x[1], y[1])
		}
	}
	return ""
}

func sameElems(a, b []resp.Value) bool {
	return slices.EqualFunc(a, b, func(x, y resp.Value) bool { return bytes.Equal(x.Str, y.Str) })
}

// nextID is the stream id right after id (for an exclusive XRANGE start
// that servers before 6.2 accept).
func nextID(id []byte) ([]byte, error) {
	ms, seq, ok := bytes.Cut(id, []byte("-"))
	m, err1 := strconv.ParseUint(string(ms), 10, 64)
	s, err2 := strconv.ParseUint(string(seq), 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("stream id %q", id)
	}
	if s == 1<<64-1 {
		m, s = m+1, 0
	} else {
		s++
	}
	return fmt.Appendf(nil, "%d-%d", m, s), nil
}
