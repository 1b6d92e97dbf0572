package dialer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

// pw is distinctive so that a leak into any message is found.
const pw = "Pa55-w0rd-never-print-me"

func dial(o dialer.Options) (*dialer.Conn, error) {
	o.ConnectTimeout = 2 * time.Second
	return dialer.Dial(context.Background(), o)
}

// expectFail dials and checks the failure's reason, that its text names the
// address and says the given words, and that it hides the password.
func expectFail(t *testing.T, o dialer.Options, reason error, words ...string) {
	t.Helper()
	c, err := dial(o)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded, want %v", o, reason)
	}
	msg := err.Error()
	t.Logf("%s: %s", o, msg)
	if !errors.Is(err, reason) {
		t.Errorf("got %q, want reason %q", msg, reason)
	}
	if !strings.Contains(msg, o.Addr) {
		t.Errorf("error %q does not name the address %s", msg, o.Addr)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	for _, s := range []string{msg, fmt.Sprintf("%+v %#v", err, err)} {
		if o.Password != "" && strings.Contains(s, o.Password) {
			t.Errorf("error shows the password: %s", s)
		}
	}
}

// mustDial connects and checks that the server answers PING.
func mustDial(t *testing.T, o dialer.Options) *dialer.Conn {
	t.Helper()
	c, err := dial(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if v, err := c.Do("PING"); err != nil || v.Text() != "PONG" {
		t.Fatalf("PING: %v %v", v, err)
	}
	return c
}

// silent reads what the client sends and never answers, until it hangs up.
func silent(c net.Conn) { io.Copy(io.Discard, c) }

func TestRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	expectFail(t, dialer.Options{Addr: addr, Password: pw}, dialer.ErrRefused, "connection refused")
}

func TestTimeoutWhenNobodyAnswers(t *testing.T) {
	addr := redistest.ScriptedPeer(t, silent)
	o := dialer.Options{Addr: addr, Password: pw, ConnectTimeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := dialer.Dial(context.Background(), o)
	if !errors.Is(err, dialer.ErrTimeout) || strings.Contains(err.Error(), pw) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the connect timeout of 300ms took %s", d)
	}
}

func TestUnresolvableHost(t *testing.T) {
	expectFail(t, dialer.Options{Addr: "no-such-host.invalid:6379", Password: pw}, dialer.ErrUnreachable, "cannot resolve host")
}

func TestPassword(t *testing.T) {
	o := redistest.Options(t)
	o.Password = pw
	s := redistest.StartWith(t, o)

	t.Run("right", func(t *testing.T) { mustDial(t, s.DialOptions()) })
	t.Run("wrong", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr, Password: pw + "x"}, dialer.ErrWrongPassword, "wrong password")
	})
	t.Run("missing", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr}, dialer.ErrPasswordRequired, "requires a password")
	})
}

func TestPasswordToServerWithout(t *testing.T) {
	s := redistest.Start(t)
	expectFail(t, dialer.Options{Addr: s.Addr, Password: pw}, dialer.ErrNoPasswordSet, "none set")
}

func TestACLUser(t *testing.T) {
	redistest.RequireVersion(t, 6, 0, "introduced ACL users")
	s := redistest.Start(t,
		"user default off",
		"user bob on >"+pw+" ~* +@all",
		"user carol off >"+pw+" ~* +@all")

	t.Run("right", func(t *testing.T) {
		c := mustDial(t, dialer.Options{Addr: s.Addr, Username: "bob", Password: pw})
		if v, err := c.Do("ACL", "WHOAMI"); err != nil || v.Text() != "bob" {
			t.Fatalf("ACL WHOAMI = %v %v", v, err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr, Username: "bob", Password: pw + "x"}, dialer.ErrUserAuth, `user "bob"`, "wrong password")
	})
	t.Run("unknown user", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr, Username: "mallory", Password: pw}, dialer.ErrUserAuth, `user "mallory"`, "no such user")
	})
	t.Run("disabled user", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr, Username: "carol", Password: pw}, dialer.ErrUserAuth, `user "carol"`, "disabled")
	})
	t.Run("default user off", func(t *testing.T) {
		expectFail(t, dialer.Options{Addr: s.Addr}, dialer.ErrPasswordRequired, "NOAUTH")
	})
}

func TestACLUserOnServerWithoutACL(t *testing.T) {
	if redistest.Version(t).AtLeast(6, 0) {
		t.Skip("redis-server 6.0 and later have ACL users; this checks the message of older servers")
	}
	o := redistest.Options(t)
	o.Password = pw
	s := redistest.StartWith(t, o)
	expectFail(t, dialer.Options{Addr: s.Addr, Username: "bob", Password: pw}, dialer.ErrNoACL, "ACL")
}

func TestServerEchoingThePasswordIsRedacted(t *testing.T) {
	// With AUTH renamed away, the server's unknown-command error quotes
	// the arguments it was given: the password.
	s := redistest.Start(t, `rename-command AUTH ""`)
	expectFail(t, dialer.Options{Addr: s.Addr, Password: pw}, dialer.ErrRefusedByServer, "AUTH failed")
}

func TestServerEchoingALongPasswordIsCut(t *testing.T) {
	// Redis quotes only the first 128 characters of the arguments.
	long := strings.Repeat("0123456789", 20)
	s := redistest.Start(t, `rename-command AUTH ""`)
	_, err := dial(dialer.Options{Addr: s.Addr, Password: long})
	if err == nil || strings.Contains(err.Error(), long[:16]) {
		t.Fatalf("got %v, want an error without any of the password", err)
	}
}

func TestConnNeverPrintsPassword(t *testing.T) {
	o := redistest.Options(t)
	o.Password = pw
	s := redistest.StartWith(t, o)
	c := redistest.Dial(t, s)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("connected", "conn", c)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logged.String(), fmt.Sprintf("%+v", s)} {
		if strings.Contains(out, pw) {
			t.Errorf("printed the password: %s", out)
		}
	}
}

func TestLoadingServerIsNotReady(t *testing.T) {
	// A server still loading its data set answers LOADING.
	addr := redistest.ScriptedPeer(t, func(c net.Conn) {
		c.Read(make([]byte, 1024))
		c.Write([]byte("-LOADING Redis is loading the dataset in memory\r\n"))
		silent(c)
	})
	expectFail(t, dialer.Options{Addr: addr}, dialer.ErrNotReady, "not ready", "LOADING")
}

func TestCancelDuringLogin(t *testing.T) {
	addr := redistest.ScriptedPeer(t, silent)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := dialer.Dial(ctx, dialer.Options{Addr: addr, ConnectTimeout: 10 * time.Second})
	if !errors.Is(err, dialer.ErrCanceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %s to take effect", d)
	}
}

func TestSelectDB(t *testing.T) {
	s := redistest.Start(t)
	o := s.DialOptions()
	o.DB = 3
	c := redistest.DialWith(t, o)
	if _, err := c.Do("SET", "in-db-3", "1"); err != nil {
		t.Fatal(err)
	}
	if got := redistest.Do(t, s, "EXISTS", "in-db-3"); got != "0" {
		t.Fatalf("the key landed in db 0")
	}
	o.DB = 5000
	expectFail(t, o, dialer.ErrRefusedByServer, "SELECT failed") // "out of range", "invalid DB index" before 4.0
}

func TestIOTimeout(t *testing.T) {
	s := redistest.Start(t)
	o := s.DialOptions()
	o.IOTimeout = 200 * time.Millisecond
	c := redistest.DialWith(t, o)
	_, err := c.Do("DEBUG", "SLEEP", "2")
	if !errors.Is(err, dialer.ErrTimeout) || !strings.Contains(err.Error(), "DEBUG") {
		t.Fatalf("got %v, want a timeout naming DEBUG", err)
	}
	c2 := redistest.DialWith(t, o)
	c2.SetIOTimeout(-1)
	if _, err := c2.Do("DEBUG", "SLEEP", "0.5"); err != nil {
		t.Fatalf("with no I/O timeout: %v", err)
	}
}

func TestErrorReply(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	redistest.Do(t, s, "SET", "str", "x")
	v, err := c.Do("LPUSH", "str", "a")
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), "LPUSH") || !strings.Contains(err.Error(), s.Addr) {
		t.Fatalf("got %v, want WRONGTYPE naming LPUSH and the address", err)
	}
	if v.Err() == nil {
		t.Fatal("the error reply itself is not returned")
	}
	if v, err := c.Do("GET", "str"); err != nil || v.Text() != "x" {
		t.Fatalf("the connection is unusable after an error reply: %v %v", v, err)
	}
}

func TestTLS(t *testing.T) {
	redistest.RequireTLS(t)
	certs := redistest.NewCerts(t)
	tlsServer := func(requireClientCert bool) *redisproc.Server {
		o := redistest.Options(t)
		o.TLS = certs.ServerTLS(requireClientCert)
		o.Password = pw
		return redistest.StartWith(t, o)
	}
	s := tlsServer(false)
	good := dialer.Options{Addr: s.Addr, Password: pw, TLS: &dialer.TLS{CAFile: certs.CAFile}}
	with := func(f func(o *dialer.Options)) dialer.Options {
		o := good
		tc := *good.TLS
		o.TLS = &tc
		f(&o)
		return o
	}

	t.Run("verified", func(t *testing.T) { mustDial(t, good) })
	t.Run("localhost name", func(t *testing.T) {
		mustDial(t, with(func(o *dialer.Options) { o.TLS.ServerName = "localhost" }))
	})
	t.Run("unknown authority", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.TLS.CAFile = certs.OtherCAFile }), dialer.ErrTLS, "unknown authority", "CA file")
	})
	t.Run("system roots", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.TLS.CAFile = "" }), dialer.ErrTLS, "unknown authority")
	})
	t.Run("wrong server name", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.TLS.ServerName = "redis.example.com" }), dialer.ErrTLS, "not valid for", "server name")
	})
	t.Run("verification off", func(t *testing.T) {
		mustDial(t, with(func(o *dialer.Options) { o.TLS.CAFile, o.TLS.InsecureSkipVerify = "", true }))
	})
	t.Run("missing CA file", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.TLS.CAFile = "/nonexistent/ca.crt" }), dialer.ErrTLS, "CA file")
	})
	t.Run("plain client to TLS port", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.TLS = nil }), dialer.ErrClosed, "rediss://")
	})
	t.Run("TLS client to plain port", func(t *testing.T) {
		plain := redistest.Start(t)
		// Redis waits for the end of a line that a ClientHello never sends.
		expectFail(t, dialer.Options{Addr: plain.Addr, Password: pw, TLS: &dialer.TLS{CAFile: certs.CAFile}}, dialer.ErrTimeout, "TLS handshake", "redis://")
	})
	t.Run("wrong password over TLS", func(t *testing.T) {
		expectFail(t, with(func(o *dialer.Options) { o.Password = "nope-" + pw }), dialer.ErrWrongPassword)
	})

	m := tlsServer(true)
	t.Run("client certificate required", func(t *testing.T) {
		o := with(func(o *dialer.Options) {})
		o.Addr = m.Addr
		expectFail(t, o, dialer.ErrTLS, "client certificate")
		o.TLS.CertFile, o.TLS.KeyFile = certs.ClientCert, certs.ClientKey
		mustDial(t, o)
	})
}
