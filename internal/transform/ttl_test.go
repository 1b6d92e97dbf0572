package transform

import (
	"strings"
	"testing"
)

func TestAbsoluteTTL(t *testing.T) {
	const now = 1_000_000
	for _, c := range []struct {
		in        string
		pxat, abs bool
		want      string // commands joined by " | "; "" for no rewrite
	}{
		{"EXPIRE k 10", true, true, "PEXPIREAT k 1010000"},
		{"PEXPIRE k 250", true, true, "PEXPIREAT k 1000250"},
		{"EXPIRE k 10 NX", true, true, "PEXPIREAT k 1010000 NX"},
		{"SETEX k 10 v", true, true, "SET k v PXAT 1010000"},
		{"SETEX k 10 v", false, true, "SET k v | PEXPIREAT k 1010000"},
		{"PSETEX k 5 v", true, true, "SET k v PXAT 1000005"},
		{"SET k v EX 10", true, true, "SET k v PXAT 1010000"},
		{"SET k v NX PX 7 GET", true, true, "SET k v NX PXAT 1000007 GET"},
		{"SET k v NX PX 7", false, true, "SET k v NX | PEXPIREAT k 1000007"},
		{"RESTORE k 500 payload REPLACE", true, true, "RESTORE k 1000500 payload REPLACE ABSTTL"},
		{"RESTORE k 500 payload", true, false, "RESTORE k 0 payload | PEXPIREAT k 1000500"},
		{"RESTORE k 0 payload", true, true, ""},
		{"RESTORE k 1000500 payload ABSTTL", true, true, ""},
		{"PEXPIREAT k 5", true, true, ""},
		{"SET k v", true, true, ""},
		{"SET k v KEEPTTL", true, true, ""},
		{"EXPIRE k notanumber", true, true, ""},
		{"GET k", true, true, ""},
	} {
		var args [][]byte
		for _, f := range strings.Fields(c.in) {
			args = append(args, []byte(f))
		}
		var got []string
		for _, cmd := range AbsoluteTTL(args, now, c.pxat, c.abs) {
			var parts []string
			for _, a := range cmd {
				parts = append(parts, string(a))
			}
			got = append(got, strings.Join(parts, " "))
		}
		if g := strings.Join(got, " | "); g != c.want {
			t.Errorf("%s (pxat %v, abs %v): %q, want %q", c.in, c.pxat, c.abs, g, c.want)
		}
	}
}
