package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
)

// Load is a write load of only non-idempotent commands (INCR, INCRBY,
// LPUSH, APPEND, HINCRBY, and from 5.0 XADD with explicit ids), some in
// MULTI/EXEC blocks: applied twice or skipped once, any of them leaves
// the target different from the source.
type Load struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	sent   int
	err    error
}

// StartLoad writes to the server at o (a master: on a cluster, keys whose
// hash tags the caller's keyFor routes) over keys distinct keys, in
// pipelines of 20 commands, pausing pause between pipelines; it runs
// until Stop.
func StartLoad(t testing.TB, o dialer.Options, keys int, pause time.Duration, keyFor func(kind string, i int) string) *Load {
	t.Helper()
	if keyFor == nil {
		keyFor = func(kind string, i int) string { return kind + ":" + strconv.Itoa(i) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, done: make(chan struct{})}
	c := DialWith(t, o)
	info, err := c.Do("INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	v, err := redisproc.ParseVersion(redisproc.InfoField(info.Text(), "redis_version"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := 6
	if !v.AtLeast(5, 0) {
		kinds = 5 // no streams
	}
	go func() {
		defer close(l.done)
		rng := rand.New(rand.NewPCG(1, 2))
		// Stream ids grow across loads too: a later load on the same
		// keys must not go back.
		id := time.Now().UnixMicro()
		for round := 0; ctx.Err() == nil; round++ {
			var cmds [][]string
			tx := round%10 == 0
			if tx {
				cmds = append(cmds, []string{"MULTI"})
			}
			for range 20 {
				i := rng.IntN(keys)
				id++
				n := strconv.FormatInt(id, 10)
				switch rng.IntN(kinds) {
				case 0:
					cmds = append(cmds, []string{"INCR", keyFor("c", i)})
				case 1:
					cmds = append(cmds, []string{"INCRBY", keyFor("c", i), "7"})
				case 2:
					cmds = append(cmds, []string{"LPUSH", keyFor("l", i), "v" + n})
				case 3:
					cmds = append(cmds, []string{"APPEND", keyFor("s", i), "x" + n + ","})
				case 4:
					cmds = append(cmds, []string{"HINCRBY", keyFor("h", i), "f" + strconv.Itoa(i%3), "3"})
				default:
					cmds = append(cmds, []string{"XADD", keyFor("x", i), "1-" + n, "f", n})
				}
			}
			if tx {
				cmds = append(cmds, []string{"EXEC"})
			}
			for _, cmd := range cmds {
				c.Writer().WriteCommandStrings(cmd...)
			}
			err := c.Writer().Flush()
			for i := 0; err == nil && i < len(cmds); i++ {
				_, err = c.Receive(cmds[i][0])
			}
			if err != nil {
				l.mu.Lock()
				l.err = fmt.Errorf("load: %w", err)
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			l.sent += len(cmds)
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}()
	t.Cleanup(func() { l.Stop() })
	return l
}

// Sent counts the commands the server confirmed so far.
func (l *Load) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// Stop ends the load and returns the first error it met.
func (l *Load) Stop() error {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// HoldPort keeps s's port taken while s is down (killed), so that no
// other server of a test running meanwhile takes it: connections are
// accepted and closed at once, as a server that is going away would.
// release gives the port back, for s to restart on it.
func HoldPort(t testing.TB, s *redisproc.Server) (release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatalf("holding %s: %v", s.Addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			ln.Close()
			<-done
		})
	}
	t.Cleanup(release)
	return release
}
