package redistest

import (
	"net"
	"testing"
)

// ScriptedPeer listens on a loopback port and runs serve on each
// connection (closing it after), for protocol corner cases no installed
// server produces on demand. It returns the address; the listener closes
// when the test ends.
func ScriptedPeer(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return l.Addr().String()
}
