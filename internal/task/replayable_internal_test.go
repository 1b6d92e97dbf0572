package task

import (
	"strings"
	"testing"

	"github.com/resync/resync/internal/receiver"
)

// Which batches go without a transaction: only commands whose replay is
// harmless at any time; one other command puts the batch in MULTI.
func TestReplayable(t *testing.T) {
	batch := func(cmds ...string) []receiver.Command {
		var out []receiver.Command
		for _, c := range cmds {
			var args [][]byte
			for _, a := range strings.Fields(c) {
				args = append(args, []byte(a))
			}
			out = append(out, receiver.Command{Args: args})
		}
		return out
	}
	for _, c := range []struct {
		cmds []string
		want bool
	}{
		{[]string{"SET k v", "set k2 v", "DEL k", "UNLINK a b", "MSET a 1 b 2", "SELECT 3", "PUBLISH ch m"}, true},
		{[]string{"SET resync:heartbeat:t 123 PXAT 99"}, true}, // never written
		{nil, true},
		{[]string{"SET k v", "SET k v PXAT 4102444800000"}, false}, // time: replayed after it, the key goes
		{[]string{"SET k v EX 10"}, false},
		{[]string{"SET k v NX"}, false},
		{[]string{"SET k v KEEPTTL"}, false},
		{[]string{"SET k v GET"}, false},
		{[]string{"PEXPIREAT k 4102444800000"}, false},
		{[]string{"PERSIST k"}, false},
		{[]string{"MSET a"}, false},
		{[]string{"SET k v", "INCR n"}, false},
		{[]string{"MULTI", "SET k v", "EXEC"}, false},
		{[]string{"FLUSHALL"}, false},
		{[]string{"SWAPDB 0 1"}, false},
	} {
		if got := replayable(batch(c.cmds...), []byte(ReservedPrefix)); got != c.want {
			t.Errorf("%q: replayable %v, want %v", c.cmds, got, c.want)
		}
	}
}
