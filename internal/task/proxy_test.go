package task_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// cutProxy forwards connections to a server; armed, it cuts the next
// connection in the middle of a transaction: right after the first
// MULTI (and a few bytes more) that the server sends. Refusing, it
// closes every connection at once, and the ones it forwards.
type cutProxy struct {
	ln     net.Listener
	to     string
	armed  atomic.Bool
	refuse atomic.Bool // close every connection at once (the source is away)
	cuts   atomic.Int64
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	if p.refuse.Load() {
		return
	}
	s, err := net.Dial("tcp", p.to)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(s, c)
		s.Close()
	}()
	buf := make([]byte, 64<<10)
	multi := []byte("MULTI\r\n")
	for {
		n, err := s.Read(buf)
		if p.refuse.Load() {
			return
		}
		chunk := buf[:n]
		if i := bytes.Index(chunk, multi); i >= 0 && p.armed.Load() {
			// Through the MULTI, a pause (resync takes what it has as
			// a batch), part of what follows, another pause, gone.
			c.Write(chunk[:i+len(multi)])
			time.Sleep(100 * time.Millisecond)
			c.Write(chunk[i+len(multi) : min(n, i+len(multi)+30)])
			time.Sleep(100 * time.Millisecond)
			p.armed.Store(false)
			p.cuts.Add(1)
			return
		}
		if _, werr := c.Write(chunk); werr != nil || err != nil {
			return
		}
	}
}

// TestLinkCutInsideTransactions cuts the source link in the middle of a
// source MULTI block five times, for both deliveries and both kinds of
// target: what was received of the block (and what came before it in
// the batch) is dropped, not applied, and comes again whole from the new
// PSYNC; exact, no full sync.
func TestLinkCutInsideTransactions(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	for _, delivery := range []string{task.DeliveryExactlyOnce, task.DeliveryAtLeastOnce} {
		for _, into := range []string{"standalone", "cluster"} {
			t.Run(delivery+"/"+into, func(t *testing.T) {
				// A backlog that outlasts the load's seconds: the test is
				// about where the link is cut, not about its size.
				src := redistest.Start(t, "repl-backlog-size 64mb")
				var dst *redisproc.Server
				var opts dialer.Options
				if into == "cluster" {
					c := redistest.StartCluster(t, 3, 0)
					dst, opts = c.Masters[0], c.Masters[0].DialOptions()
				} else {
					dst = redistest.Start(t)
					opts = dst.DialOptions()
				}
				proxy := startCutProxy(t, src.Addr)
				r := startWith(t, src, dst, func(c *task.Config) {
					c.Source.Addr = proxy.ln.Addr().String()
					c.Delivery, c.SplitTransactions = delivery, true
				})
				r.waitState(t, task.StateSynchronizing)
				load := redistest.StartLoad(t, src.DialOptions(), 200, time.Millisecond, nil)
				for i := range 5 {
					proxy.armed.Store(true)
					for deadline := time.Now().Add(5 * time.Second); proxy.cuts.Load() <= int64(i); time.Sleep(5 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatalf("cut %d never happened", i)
						}
					}
					r.waitState(t, task.StateSynchronizing)
				}
				if err := load.Stop(); err != nil {
					t.Fatal(err)
				}
				r.waitCaughtUpWithin(t, src, 10*time.Second)
				rep, err := compare.Compare(context.Background(), src.DialOptions(), opts,
					compare.Options{Reverse: true, SkipPrefix: task.ReservedPrefix})
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Equal() || rep.Keys == 0 {
					t.Fatalf("%d of %d keys differ: %v", len(rep.Diffs), rep.Keys, rep.Diffs[:min(5, len(rep.Diffs))])
				}
				if full, partial := stat(t, src, "sync_full"), stat(t, src, "sync_partial_ok"); full != 1 || partial < 5 {
					t.Fatalf("sync_full %d, sync_partial_ok %d: want 1 and 5 or more", full, partial)
				}
			})
		}
	}
}
