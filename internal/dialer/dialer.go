// Package dialer is the one place that opens connections to Redis: TCP or
// TLS, authentication with a password or an ACL user, timeouts, and URL
// parsing. Its errors name the address and the reason, never the password.
package dialer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/resync/resync/internal/resp"
)

// Defaults for the timeouts of Options left at zero.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultIOTimeout      = 30 * time.Second
)

// Options say how to reach and log in to one Redis server.
type Options struct {
	Addr     string // host:port
	Username string // an ACL user (Redis 6+); "" is the default user
	Password string
	DB       int  // selected after login when not 0
	TLS      *TLS // nil for plain TCP

	// ConnectTimeout bounds the TCP connect, the TLS handshake and the login
	// together (DefaultConnectTimeout when 0).
	ConnectTimeout time.Duration
	// IOTimeout bounds each read and each write once connected
	// (DefaultIOTimeout when 0; negative for none).
	IOTimeout time.Duration
}

// TLS configures an encrypted connection. Certificate verification is on
// unless InsecureSkipVerify says otherwise.
type TLS struct {
	CAFile             string // PEM bundle of the CAs to trust; the system's when ""
	CertFile, KeyFile  string // client certificate, for servers that require one
	ServerName         string // name to verify; the host of the address when ""
	InsecureSkipVerify bool
}

// Config builds the tls.Config for a connection to addr.
func (t *TLS) Config(addr string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("TLS client certificate needs both a certificate file and a key file")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// The reasons a Dial fails; match them with errors.Is.
var (
	ErrRefused          = errors.New("connection refused")
	ErrTimeout          = errors.New("timed out")
	ErrUnreachable      = errors.New("unreachable")
	ErrClosed           = errors.New("connection closed by the server")
	ErrTLS              = errors.New("TLS failure")
	ErrWrongPassword    = errors.New("wrong password")
	ErrUserAuth         = errors.New("user authentication failed")
	ErrPasswordRequired = errors.New("password required")
	ErrNoPasswordSet    = errors.New("server has no password set")
	ErrNoACL            = errors.New("server has no ACL users")
	ErrRefusedByServer  = errors.New("refused by the server")
	ErrNotReady         = errors.New("server not ready")
	ErrCanceled         = errors.New("canceled")
)

// Error is a failure to connect or to talk to one server.
type Error struct {
	Addr   string
	Reason error // one of the Err* reasons above
	Detail string
	Err    error // the underlying cause, when there is one
}

func (e *Error) Error() string {
	return "redis " + e.Addr + ": " + e.Detail
}

// Is matches the reason, so errors.Is(err, dialer.ErrRefused) works.
func (e *Error) Is(target error) bool { return target == e.Reason }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Conn is a connection to one server with its RESP reader and writer.
type Conn struct {
	nc   net.Conn
	dc   *deadlineConn
	r    *resp.Reader
	w    *resp.Writer
	opts Options
}

// Dial connects to the server, logs in and selects the database, checking
// each step; the connection is ready for commands when it returns.
func Dial(ctx context.Context, o Options) (*Conn, error) {
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var tlsCfg *tls.Config
	if o.TLS != nil {
		var err error
		if tlsCfg, err = o.TLS.Config(o.Addr); err != nil {
			return nil, &Error{Addr: o.Addr, Reason: ErrTLS, Detail: err.Error(), Err: err}
		}
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, netError(o.Addr, "connect", timeout, err)
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	// Deadlines bound the login's reads and writes; a cancellation of ctx
	// must end them too.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, tlsError(o.Addr, timeout, err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, opts: o}
	c.dc = &deadlineConn{Conn: nc}
	c.r = resp.NewReader(c.dc)
	c.w = resp.NewWriter(c.dc)
	if err := c.login(); err != nil {
		nc.Close()
		if ctx.Err() == context.Canceled {
			return nil, &Error{Addr: o.Addr, Reason: ErrCanceled, Detail: "login canceled", Err: err}
		}
		return nil, err
	}
	if !stop() {
		nc.Close()
		return nil, netError(o.Addr, "login", timeout, ctx.Err())
	}
	nc.SetDeadline(time.Time{})
	c.SetIOTimeout(o.IOTimeout)
	return c, nil
}

// login sends AUTH, SELECT and PING in one round trip and checks each reply.
func (c *Conn) login() error {
	o := c.opts
	sent := []string{}
	switch {
	case o.Username != "":
		c.w.WriteCommandStrings("AUTH", o.Username, o.Password)
		sent = append(sent, "AUTH")
	case o.Password != "":
		c.w.WriteCommandStrings("AUTH", o.Password)
		sent = append(sent, "AUTH")
	}
	if o.DB != 0 {
		c.w.WriteArrayHeader(2)
		c.w.WriteBulkString("SELECT")
		c.w.WriteBulkInt(int64(o.DB))
		sent = append(sent, "SELECT")
	}
	c.w.WriteCommandStrings("PING")
	sent = append(sent, "PING")
	if err := c.w.Flush(); err != nil {
		return c.ioError("login", err)
	}
	var first error
	for _, cmd := range sent {
		v, err := c.r.ReadValue()
		if err != nil {
			if first != nil {
				return first // the server may close after a failed AUTH
			}
			return c.ioError("login", err)
		}
		if first != nil {
			continue
		}
		if re, ok := v.Err().(*resp.RedisError); ok {
			first = c.loginError(cmd, re)
		} else if cmd == "PING" && v.Text() != "PONG" {
			first = &Error{Addr: o.Addr, Reason: ErrRefusedByServer, Detail: fmt.Sprintf("PING answered %s, not PONG: is this a Redis server?", redact(v.String(), o.Password))}
		}
	}
	return first
}

// loginError explains an error reply met while logging in.
func (c *Conn) loginError(cmd string, re *resp.RedisError) error {
	o := c.opts
	msg := re.Msg
	if i := strings.Index(msg, "with args beginning with:"); i >= 0 {
		// Redis quotes the start of the arguments, which may be a
		// password cut short where a plain replace would miss it.
		msg = msg[:i] + "with args (not shown)"
	}
	msg = redact(msg, o.Password)
	e := &Error{Addr: o.Addr, Err: &resp.RedisError{Msg: msg}}
	lower := strings.ToLower(msg)
	switch {
	case re.Code() == "NOAUTH":
		e.Reason, e.Detail = ErrPasswordRequired, "the server requires a password (NOAUTH): give one in the URL, a password file or the environment"
	case re.Code() == "LOADING" || re.Code() == "BUSY" || re.Code() == "MASTERDOWN":
		e.Reason, e.Detail = ErrNotReady, fmt.Sprintf("the server is not ready yet (%s): try again", msg)
	case re.Code() == "DENIED":
		e.Reason, e.Detail = ErrRefusedByServer, "the server refuses clients from this address (protected mode): set a password or bind on the server"
	case cmd == "AUTH" && re.Code() == "WRONGPASS" && o.Username != "":
		e.Reason, e.Detail = ErrUserAuth, fmt.Sprintf("authentication as user %q failed: wrong password, no such user, or the user is disabled (Redis does not say which)", o.Username)
	case cmd == "AUTH" && (re.Code() == "WRONGPASS" || strings.Contains(lower, "invalid password")):
		e.Reason, e.Detail = ErrWrongPassword, "authentication failed: wrong password for the default user"
	case cmd == "AUTH" && (strings.Contains(lower, "no password is set") || strings.Contains(lower, "without any password configured")):
		e.Reason, e.Detail = ErrNoPasswordSet, "a password was given but the server has none set: remove it, or check that this is the intended server"
	case cmd == "AUTH" && o.Username != "" && strings.Contains(lower, "wrong number of arguments"):
		e.Reason, e.Detail = ErrNoACL, fmt.Sprintf("the server has no ACL users (Redis before 6.0): give only a password, not the user %q", o.Username)
	default:
		e.Reason, e.Detail = ErrRefusedByServer, fmt.Sprintf("%s failed: %s", cmd, msg)
	}
	return e
}

// redact hides the password wherever a server echoes it (an unknown-command
// error quotes the arguments of a renamed AUTH, for one).
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "***")
}

func netError(addr, stage string, timeout time.Duration, err error) error {
	e := &Error{Addr: addr, Err: err}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Reason, e.Detail = ErrRefused, "connection refused: nothing listens there (is redis-server running, on this host and port?)"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		e.Reason, e.Detail = ErrTimeout, fmt.Sprintf("%s timed out after %s (wrong host, a firewall, or an overloaded server)", stage, timeout)
	case errors.As(err, &dnsErr):
		e.Reason, e.Detail = ErrUnreachable, fmt.Sprintf("cannot resolve host %q: %v", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, context.Canceled):
		e.Reason, e.Detail = ErrCanceled, stage+" canceled"
	default:
		e.Reason, e.Detail = ErrUnreachable, fmt.Sprintf("%s failed: %v", stage, err)
	}
	return e
}

func tlsError(addr string, timeout time.Duration, err error) error {
	e := &Error{Addr: addr, Reason: ErrTLS, Err: err}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		verifyErr *tls.CertificateVerificationError
		alert     tls.AlertError
	)
	switch {
	case errors.As(err, &unknownCA):
		e.Detail = "TLS: the server's certificate is signed by an unknown authority: give the CA file that signed it"
	case errors.As(err, &hostErr):
		e.Detail = fmt.Sprintf("TLS: the server's certificate is not valid for %q: set the TLS server name to a name it holds", hostErr.Host)
	case errors.As(err, &invalid):
		e.Detail = fmt.Sprintf("TLS: the server's certificate is invalid: %v", invalid)
	case errors.As(err, &verifyErr):
		e.Detail = fmt.Sprintf("TLS: the server's certificate failed verification: %v", verifyErr.Err)
	case errors.As(err, &header):
		e.Detail = "TLS: the server did not answer with TLS (a plain port? use redis:// instead of rediss://)"
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls"):
		e.Detail = fmt.Sprintf("TLS: the server refused the handshake (%v): a client certificate may be required, or it does not trust ours", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		e.Reason, e.Detail = ErrTimeout, fmt.Sprintf("TLS handshake timed out after %s (a plain port? use redis:// instead of rediss://)", timeout)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		e.Detail = "TLS: the server closed the connection during the handshake (a plain port? use redis://)"
	default:
		e.Detail = fmt.Sprintf("TLS handshake failed: %v", err)
	}
	return e
}

// ioError explains a failure to read or write on an established connection.
func (c *Conn) ioError(stage string, err error) error {
	addr := c.opts.Addr
	var alert tls.AlertError
	switch {
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls"):
		return &Error{Addr: addr, Reason: ErrTLS, Err: err, Detail: fmt.Sprintf("TLS: the server refused us (%v): a client certificate may be required, or it does not trust ours", err)}
	case (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) && stage == "login" && c.opts.TLS != nil:
		// With TLS 1.3 the server checks the client's certificate after the
		// handshake; its alert often loses the race with the close.
		detail := "TLS: the server closed the connection right after the handshake: it may require a client certificate (give a certificate and key)"
		if c.opts.TLS.CertFile != "" {
			detail = "TLS: the server closed the connection right after the handshake: it may not trust our client certificate"
		}
		return &Error{Addr: addr, Reason: ErrTLS, Err: err, Detail: detail}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		hint := ""
		if stage == "login" && c.opts.TLS == nil {
			hint = " (a TLS port? use rediss://; or the server is at maxclients)"
		}
		return &Error{Addr: addr, Reason: ErrClosed, Err: err, Detail: fmt.Sprintf("connection closed by the server during %s%s", stage, hint)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Addr: addr, Reason: ErrTimeout, Err: err, Detail: fmt.Sprintf("no answer during %s: timed out", stage)}
	case errors.Is(err, resp.ErrProtocol):
		return &Error{Addr: addr, Reason: ErrRefusedByServer, Err: err, Detail: fmt.Sprintf("%s: the server does not speak RESP: %v", stage, err)}
	}
	return &Error{Addr: addr, Reason: ErrUnreachable, Err: err, Detail: fmt.Sprintf("%s: %v", stage, err)}
}

// Addr returns the server's address.
func (c *Conn) Addr() string { return c.opts.Addr }

// String describes the connection without its password: fmt cannot call
// Options' own String on the unexported field, so Conn must not be printed
// field by field.
func (c *Conn) String() string { return "redis connection to " + c.opts.URL() }

// GoString is String, for %#v.
func (c *Conn) GoString() string { return c.String() }

// LogValue is String, for slog.
func (c *Conn) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Reader returns the connection's RESP reader, for pipelined use.
func (c *Conn) Reader() *resp.Reader { return c.r }

// Writer returns the connection's RESP writer, for pipelined use.
func (c *Conn) Writer() *resp.Writer { return c.w }

// SetIOTimeout changes the bound on each read and write: 0 for the default,
// negative for none (a replication link that waits for the source's pings).
func (c *Conn) SetIOTimeout(d time.Duration) {
	if d == 0 {
		d = DefaultIOTimeout
	}
	if d < 0 {
		d = 0
		c.nc.SetDeadline(time.Time{})
	}
	c.dc.timeout = d
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Do sends one command and reads its reply. An error reply is returned as
// an error naming the address and command (wrapping a *resp.RedisError),
// together with the reply itself.
func (c *Conn) Do(args ...string) (resp.Value, error) {
	c.w.WriteCommandStrings(args...)
	if err := c.w.Flush(); err != nil {
		return resp.Value{}, c.ioError(commandName(args), err)
	}
	return c.Receive(commandName(args))
}

// Receive reads one reply, for a command sent earlier through Writer.
// stage names the command in errors.
func (c *Conn) Receive(stage string) (resp.Value, error) {
	v, err := c.r.ReadValue()
	if err != nil {
		return v, c.ioError(stage, err)
	}
	if re := v.Err(); re != nil {
		return v, fmt.Errorf("redis %s: %s: %w", c.opts.Addr, stage, re)
	}
	return v, nil
}

func commandName(args []string) string {
	if len(args) == 0 {
		return "empty command"
	}
	return strings.ToUpper(args[0])
}

// deadlineConn sets a fresh deadline before each read and write, so that a
// timeout means "no progress for this long", not "the whole transfer".
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	}
	return d.Conn.Write(p)
}

// ScanMatch lists every key of the selected database that matches
// pattern (SCAN … MATCH, to the end).
func (c *Conn) ScanMatch(pattern string) ([]string, error) {
	var keys []string
	cursor := "0"
	for {
		v, err := c.Do("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
		if err != nil {
			return nil, err
		}
		if len(v.Elems) != 2 {
			return nil, fmt.Errorf("redis %s: SCAN: unexpected reply", c.opts.Addr)
		}
		for _, k := range v.Elems[1].Elems {
			keys = append(keys, k.Text())
		}
		if cursor = v.Elems[0].Text(); cursor == "0" {
			return keys, nil
		}
	}
}
