// Package transform rewrites commands of the replication stream for the
// target. Its functions are pure: an entry in, the entries to apply out.
package transform

import (
	"bytes"
	"strconv"
)

// AbsoluteTTL rewrites a command that sets a relative expiry into one that
// sets it absolute, execMs being when the source executed it (Unix ms).
// Sources before 7.0 replicate EXPIRE, SETEX, SET ... EX and their kin as
// they were typed; applied later (after a full sync, or a backlog), a
// relative TTL would end later on the target than on the source. It
// returns nil when the command needs no rewrite. pxat says whether the
// target knows SET ... PXAT (6.2+); without it SET loses its expiry
// option and a PEXPIREAT follows. abs says whether it knows RESTORE ...
// ABSTTL (5.0+).
func AbsoluteTTL(args [][]byte, execMs int64, pxat, abs bool) [][][]byte {
	if len(args) < 3 {
		return nil
	}
	at := func(ms int64) []byte { return strconv.AppendInt(nil, ms, 10) }
	rel := func(b []byte, unit int64) (int64, bool) {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return 0, false
		}
		return execMs + n*unit, true
	}
	name := string(bytes.ToUpper(args[0]))
	switch name {
	case "EXPIRE", "PEXPIRE":
		unit := int64(1000)
		if name == "PEXPIRE" {
			unit = 1
		}
		ms, ok := rel(args[2], unit)
		if !ok {
			return nil
		}
		out := [][]byte{[]byte("PEXPIREAT"), args[1], at(ms)}
		return [][][]byte{append(out, args[3:]...)} // NX/XX/GT/LT of 7.0 stay
	case "SETEX", "PSETEX":
		if len(args) != 4 {
			return nil
		}
		unit := int64(1000)
		if name == "PSETEX" {
			unit = 1
		}
		ms, ok := rel(args[2], unit)
		if !ok {
			return nil
		}
		if pxat {
			return [][][]byte{{[]byte("SET"), args[1], args[3], []byte("PXAT"), at(ms)}}
		}
		return [][][]byte{{[]byte("SET"), args[1], args[3]}, {[]byte("PEXPIREAT"), args[1], at(ms)}}
	case "SET":
		for i := 3; i+1 < len(args); i++ {
			opt := string(bytes.ToUpper(args[i]))
			if opt != "EX" && opt != "PX" {
				continue
			}
			unit := int64(1000)
			if opt == "PX" {
				unit = 1
			}
			ms, ok := rel(args[i+1], unit)
			if !ok {
				return nil
			}
			if pxat {
				out := append([][]byte(nil), args...)
				out[i], out[i+1] = []byte("PXAT"), at(ms)
				return [][][]byte{out}
			}
			out := append(append([][]byte(nil), args[:i]...), args[i+2:]...)
			return [][][]byte{out, {[]byte("PEXPIREAT"), args[1], at(ms)}}
		}
	case "RESTORE":
		if len(args) < 4 || string(args[2]) == "0" {
			return nil
		}
		for _, a := range args[4:] {
			if bytes.EqualFold(a, []byte("ABSTTL")) {
				return nil
			}
		}
		ms, ok := rel(args[2], 1)
		if !ok {
			return nil
		}
		if abs {
			out := append([][]byte(nil), args...)
			out[2] = at(ms)
			return [][][]byte{append(out, []byte("ABSTTL"))}
		}
		out := append([][]byte(nil), args...)
		out[2] = []byte("0")
		return [][][]byte{out, {[]byte("PEXPIREAT"), args[1], at(ms)}}
	}
	return nil
}
