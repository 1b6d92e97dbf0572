package compare

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/resync/resync/internal/resp"
)

// bigValue compares a value too big for one read, chunk by chunk, so it
// is never held whole. It returns the first difference found.
func (w *worker) bigValue(ks keyState) (string, error) {
	switch ks.typ {
	case "string":
		return w.bigString(ks.key)
	case "list":
		return w.bigRanked(ks.key, cmdLLEN, cmdLRANGE, nil, 1, diffList)
	case "zset":
		return w.bigRanked(ks.key, cmdZCARD, cmdZRANGE, argScores, 2, diffZset)
	case "hash":
		return w.bigHash(ks.key)
	case "set":
		return w.bigSet(ks.key)
	case "stream":
		return w.bigStream(ks.key)
	}
	return "", fmt.Errorf("key %q: no chunked comparison for type %s", ks.key, ks.typ)
}

// one sends a command to one side and returns its reply.
func (w *worker) one(x *side, args ...[]byte) (resp.Value, error) {
	x.send(args...)
	if err := x.flush(); err != nil {
		return resp.Value{}, err
	}
	vs, err := x.read()
	if err != nil {
		return resp.Value{}, err
	}
	return vs[0], nil
}

// lengths compares the lengths both sides give; detail says how they
// differ.
func (w *worker) lengths(cmd, key []byte, unit string) (n int64, detail string, err error) {
	a, b, err := w.both(cmd, key)
	if err != nil {
		return 0, "", err
	}
	if d := readError(a, b); d != "" {
		return 0, d, nil
	}
	if a.Int != b.Int {
		return 0, fmt.Sprintf("length: source %d %s, target %d", a.Int, unit, b.Int), nil
	}
	return a.Int, "", nil
}

func itoa(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

func (w *worker) bigString(k []byte) (string, error) {
	n, d, err := w.lengths(cmdSTRLEN, k, "bytes")
	if err != nil || d != "" {
		return d, err
	}
	// The first firstBytes compared equal already.
	for off := int64(firstBytes); off < n; off += chunkBytes {
		a, b, err := w.both(cmdGETRANGE, k, itoa(off), itoa(off+chunkBytes-1))
		if err != nil {
			return "", err
		}
		if d := diffBytes(a, b, off); d != "" {
			return d, nil
		}
	}
	return "", nil
}

// bigRanked compares a list or zset by rank ranges on both sides.
func (w *worker) bigRanked(k, length, rng, extra []byte, per int, diff func(a, b []resp.Value, base int) string) (string, error) {
	n, d, err := w.lengths(length, k, "elements")
	if err != nil || d != "" {
		return d, err
	}
	for start := int64(0); start < n; start += chunkElems {
		args := [][]byte{rng, k, itoa(start), itoa(start + chunkElems - 1)}
		if extra != nil {
			args = append(args, extra)
		}
		a, b, err := w.both(args...)
		if err != nil {
			return "", err
		}
		if d := readError(a, b); d != "" {
			return d, nil
		}
		if d := diff(a.Elems, b.Elems, int(start)); d != "" {
			return d, nil
		}
		if len(a.Elems) != len(b.Elems) {
			return fmt.Sprintf("the value changed while being read (from rank %d: source %d, target %d elements)",
				start, len(a.Elems)/per, len(b.Elems)/per), nil
		}
	}
	return "", nil
}

// bigHash walks the source's fields with HSCAN and looks each chunk up on
// the target with HMGET: with equal lengths, every source field present
// and equal on the target means the hashes are equal.
func (w *worker) bigHash(k []byte) (string, error) {
	_, d, err := w.lengths(cmdHLEN, k, "fields")
	if err != nil || d != "" {
		return d, err
	}
	cursor := zero
	args := [][]byte{cmdHMGET, k}
	for {
		v, err := w.one(w.s, cmdHSCAN, k, cursor, cmdCOUNT, chunkElemsArg)
		if err != nil {
			return "", err
		}
		if d := readError(v, resp.Value{}); d != "" {
			return d, nil
		}
		if cursor = scanReply(v); cursor == nil {
			return "", fmt.Errorf("source HSCAN %q: unexpected reply %v", k, v)
		}
		fv := v.Elems[1].Elems
		args = args[:2]
		for i := 0; i+1 < len(fv); i += 2 {
			args = append(args, fv[i].Str)
		}
		if len(args) > 2 {
			tv, err := w.one(w.t, args...)
			if err != nil {
				return "", err
			}
			if d := readError(resp.Value{}, tv); d != "" {
				return d, nil
			}
			for i, x := range tv.Elems {
				f, want := fv[2*i].Str, fv[2*i+1].Str
				switch {
				case x.Nil():
					return fmt.Sprintf("hash field %s: only the source has it", show(f)), nil
				case !bytes.Equal(x.Str, want):
					return fmt.Sprintf("hash field %s: source %s, target %s", show(f), show(want), show(x.Str)), nil
				}
			}
			if fields := hashFields(fv); w.sendFieldTTLs(k, fields) {
				sv, tv, err := w.exchange()
				if err != nil {
					return "", err
				}
				if d := w.fieldTTLDiff(fields, sv[0], tv[0]); d != "" {
					return d, nil
				}
			}
		}
		if bytes.Equal(cursor, zero) {
			return "", nil
		}
	}
}

// bigSet walks the source's members with SSCAN and looks each chunk up on
// the target with SISMEMBER, pipelined (SMISMEMBER needs 6.2).
func (w *worker) bigSet(k []byte) (string, error) {
	_, d, err := w.lengths(cmdSCARD, k, "members")
	if err != nil || d != "" {
		return d, err
	}
	cursor := zero
	for {
		v, err := w.one(w.s, cmdSSCAN, k, cursor, cmdCOUNT, chunkElemsArg)
		if err != nil {
			return "", err
		}
		if d := readError(v, resp.Value{}); d != "" {
			return d, nil
		}
		if cursor = scanReply(v); cursor == nil {
			return "", fmt.Errorf("source SSCAN %q: unexpected reply %v", k, v)
		}
		members := v.Elems[1].Elems
		for _, m := range members {
			w.t.send(cmdSISMEM, k, m.Str)
		}
		if len(members) > 0 {
			if err := w.t.flush(); err != nil {
				return "", err
			}
			tv, err := w.t.read()
			if err != nil {
				return "", err
			}
			for i, x := range tv {
				if d := readError(resp.Value{}, x); d != "" {
					return d, nil
				}
				if x.Int != 1 {
					return fmt.Sprintf("set member %s: only the source has it", show(members[i].Str)), nil
				}
			}
		}
		if bytes.Equal(cursor, zero) {
			return "", nil
		}
	}
}

// bigStream compares a stream's entries in XRANGE chunks (its groups and
// last id were compared with the first read).
func (w *worker) bigStream(k []byte) (string, error) {
	_, d, err := w.lengths(cmdXLEN, k, "entries")
	if err != nil || d != "" {
		return d, err
	}
	start := minusID
	base := 0
	for {
		a, b, err := w.both(cmdXRANGE, k, start, plusID, cmdCOUNT, chunkElemsArg)
		if err != nil {
			return "", err
		}
		if d := readError(a, b); d != "" {
			return d, nil
		}
		if d := diffEntries(a.Elems, b.Elems, base); d != "" {
			return d, nil
		}
		if len(a.Elems) != len(b.Elems) {
			return fmt.Sprintf("the stream changed while being read (from entry %d: source %d, target %d entries)",
				base, len(a.Elems), len(b.Elems)), nil
		}
		if len(a.Elems) < chunkElems {
			return "", nil
		}
		last := a.Elems[len(a.Elems)-1].Elems[0].Str
		if start, err = nextID(last); err != nil {
			return "", fmt.Errorf("XRANGE %q: %w", k, err)
		}
		base += len(a.Elems)
	}
}
