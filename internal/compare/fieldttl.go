package compare

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/resp"
)

var (
	cmdHPTTL  = []byte("HPTTL")
	cmdFIELDS = []byte("FIELDS")
)

// Whether the source keeps hash field TTLs (Redis 7.4+): unknown until
// a hash is compared, then known for good (Comparer.fieldTTLs).
const (
	fieldTTLsUnknown = iota
	fieldTTLsYes
	fieldTTLsNo
)

// sendFieldTTLs asks both sides for the TTLs of a hash's fields (HPTTL),
// unless the source is known to have none. It returns whether it sent.
func (w *worker) sendFieldTTLs(k []byte, fields []resp.Value) bool {
	if len(fields) == 0 || w.c.fieldTTLs.Load() == fieldTTLsNo {
		return false
	}
	args := [][]byte{cmdHPTTL, k, cmdFIELDS, []byte(strconv.Itoa(len(fields)))}
	for _, f := range fields {
		args = append(args, f.Str)
	}
	w.s.send(args...)
	w.t.send(args...)
	return true
}

// fieldTTLDiff compares the HPTTL replies for fields, within the TTL
// tolerance. A source that knows no HPTTL (before 7.4) turns the check
// off; a field gone from either side meanwhile (-2) is skipped.
func (w *worker) fieldTTLDiff(fields []resp.Value, a, b resp.Value) string {
	if err := a.Err(); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			w.c.fieldTTLs.Store(fieldTTLsNo)
			return ""
		}
		return fmt.Sprintf("reading the source's field TTLs failed: %v", err)
	}
	w.c.fieldTTLs.Store(fieldTTLsYes)
	if err := b.Err(); err != nil {
		for _, s := range a.Elems {
			if s.Int >= 0 {
				return fmt.Sprintf("hash field %s has a TTL; the target's field TTLs cannot be read: %v", show(fields[0].Str), err)
			}
		}
		return ""
	}
	if len(a.Elems) != len(fields) || len(b.Elems) != len(fields) {
		return fmt.Sprintf("field TTLs: %d and %d replies for %d fields", len(a.Elems), len(b.Elems), len(fields))
	}
	for i, f := range fields {
		s, t := a.Elems[i].Int, b.Elems[i].Int
		if s == -2 || t == -2 {
			continue
		}
		if d := expiryDiff("field", "HPTTL", s, t, w.c.o.TTLTolerance); d != "" {
			return fmt.Sprintf("hash field %s: %s", show(f.Str), d)
		}
	}
	return ""
}

// hashFields returns the fields of an HSCAN page (field, value, ...).
func hashFields(page []resp.Value) []resp.Value {
	out := make([]resp.Value, 0, len(page)/2)
	for i := 0; i+1 < len(page); i += 2 {
		out = append(out, page[i])
	}
	return out
}
