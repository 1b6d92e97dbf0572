// Package redisproc starts and stops local redis-server processes on free
// loopback ports: the throwaway servers of the tests, the demo and the
// benchmark. Standalone servers, replicas, clusters and Sentinels.
package redisproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resync/resync/internal/dialer"
)

// Version is a Redis version.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// AtLeastPatch reports whether v is major.minor.patch or newer.
func (v Version) AtLeastPatch(major, minor, patch int) bool {
	if v.Major != major || v.Minor != minor {
		return v.AtLeast(major, minor)
	}
	return v.Patch >= patch
}

var versionRE = regexp.MustCompile(`v=(\d+)\.(\d+)\.(\d+)`)

// BinaryVersion runs "redis-server --version" and parses its answer.
func BinaryVersion(bin string) (Version, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("%s --version: no version in %q", bin, bytes.TrimSpace(out))
	}
	return ParseVersion(string(m[1]) + "." + string(m[2]) + "." + string(m[3]))
}

// ParseVersion reads "major.minor.patch", as INFO's redis_version gives it.
func ParseVersion(s string) (Version, error) {
	var v Version
	f := strings.Split(strings.TrimSpace(s), ".")
	if len(f) != 3 {
		return v, fmt.Errorf("version %q is not major.minor.patch", s)
	}
	for i, p := range []*int{&v.Major, &v.Minor, &v.Patch} {
		n, err := strconv.Atoi(f[i])
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q is not major.minor.patch", s)
		}
		*p = n
	}
	return v, nil
}

// FindBinary returns the redis-server to run: $REDIS_SERVER when set
// (passed in as env), else the one on PATH.
func FindBinary(env string) (string, error) {
	if env != "" {
		return env, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found on PATH: install it (make test does, from Debian's packages) or set REDIS_SERVER")
	}
	return bin, nil
}

// TLSFiles makes a server speak TLS only, with these PEM files.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
	// RequireClientCert makes the server refuse clients without a
	// certificate signed by CAFile.
	RequireClientCert bool
}

// Options describe a server to start.
type Options struct {
	Binary string // path of redis-server (see FindBinary)
	// Dir holds the server's config, data and logs; a new temporary
	// directory, removed by Stop, when "".
	Dir      string
	Password string    // requirepass and masterauth, and used by Dial
	TLS      *TLSFiles // nil for plain TCP
	Cluster  bool      // cluster-enabled
	// Config lines are appended after the defaults, so they override them.
	Config []string
}

// Server is a running redis-server (or Sentinel) process.
type Server struct {
	Addr    string // 127.0.0.1:port
	Port    int
	Dir     string
	Version Version

	opts     Options
	sentinel bool
	ownDir   bool
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start launches a server and waits until it answers PING.
func Start(ctx context.Context, o Options) (*Server, error) {
	return start(ctx, o, nil)
}

func start(ctx context.Context, o Options, sentinelOf *sentinelSpec) (*Server, error) {
	if o.Binary == "" {
		return nil, errors.New("redisproc: no redis-server binary given")
	}
	ver, err := BinaryVersion(o.Binary)
	if err != nil {
		return nil, err
	}
	s := &Server{Version: ver, opts: o, Dir: o.Dir, sentinel: sentinelOf != nil}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "resync-redis-"); err != nil {
			return nil, err
		}
		s.ownDir = true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	// A free port can be taken by someone else before the server binds it:
	// try a few.
	var lastErr error
	for range 5 {
		port, err := freePort(o.Cluster)
		if err != nil {
			return nil, err
		}
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(sentinelOf); err != nil {
			return nil, err
		}
		if lastErr = s.launch(ctx); lastErr == nil {
			return s, nil
		}
		if !strings.Contains(s.Log(), "in use") {
			break
		}
	}
	s.cleanDir()
	return nil, lastErr
}

// freePort finds a loopback port that is free, and for a cluster node also
// its bus port (port+10000, the default of every Redis version).
func freePort(cluster bool) (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(35000)
		ports := []int{port}
		if cluster {
			ports = append(ports, port+10000)
		}
		ok := true
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("redisproc: found no free loopback port")
}

type sentinelSpec struct {
	name   string
	master *Server
}

func (s *Server) configPath() string { return filepath.Join(s.Dir, "redis.conf") }

func (s *Server) writeConfig(sen *sentinelSpec) error {
	v, o := s.Version, s.opts
	lines := []string{
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + s.Dir,
		"logfile " + filepath.Join(s.Dir, "redis.log"),
	}
	if o.TLS != nil {
		lines = append(lines, "port 0", fmt.Sprintf("tls-port %d", s.Port),
			"tls-cert-file "+o.TLS.CertFile, "tls-key-file "+o.TLS.KeyFile, "tls-ca-cert-file "+o.TLS.CAFile,
			"tls-replication yes")
		if o.TLS.RequireClientCert {
			lines = append(lines, "tls-auth-clients yes")
		} else {
			lines = append(lines, "tls-auth-clients no")
		}
		if o.Cluster {
			lines = append(lines, "tls-cluster yes")
		}
	} else {
		lines = append(lines, fmt.Sprintf("port %d", s.Port))
	}
	if v.AtLeast(3, 2) {
		lines = append(lines, "protected-mode no")
	}
	if sen != nil {
		m := sen.master
		lines = append(lines,
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1", sen.name, m.Port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", sen.name),
			fmt.Sprintf("sentinel failover-timeout %s 5000", sen.name))
		if m.opts.Password != "" {
			lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", sen.name, configQuote(m.opts.Password)))
		}
		if o.Password != "" {
			lines = append(lines, "requirepass "+configQuote(o.Password))
		}
	} else {
		lines = append(lines, `save ""`, "appendonly no", "dbfilename dump.rdb")
		if v.AtLeastPatch(2, 8, 18) { // diskless replication came with 2.8.18
			lines = append(lines, "repl-diskless-sync-delay 0")
		}
		if v.AtLeast(7, 0) {
			// DEBUG is off by default from 7.0; the tests use it (local servers only).
			lines = append(lines, "enable-debug-command yes")
		}
		if o.Password != "" {
			lines = append(lines, "requirepass "+configQuote(o.Password), "masterauth "+configQuote(o.Password))
		}
		if o.Cluster {
			lines = append(lines, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000")
		}
	}
	lines = append(lines, o.Config...)
	return os.WriteFile(s.configPath(), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// configQuote quotes a value for redis.conf, whose parser takes C-style
// escapes inside double quotes.
func configQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(v) + `"`
}

func (s *Server) launch(ctx context.Context) error {
	args := []string{s.configPath()}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(s.opts.Binary, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, and killed with us if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.opts.Binary, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 15*time.Second); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitReady polls PING until the server answers PONG (not LOADING).
func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.Port, strings.Join(s.LogTail(5), " | "))
		default:
		}
		// The answer must come from our process, not from another server
		// that took the port first.
		pid, err := s.Info(ctx, "server", "process_id")
		if err == nil {
			if pid == strconv.Itoa(s.cmd.Process.Pid) {
				return nil
			}
			err = fmt.Errorf("port %d is answered by another process (pid %s)", s.Port, pid)
		}
		// A server whose users the rig cannot log in as (a test of ACLs)
		// cannot be asked; its own log says whether it is ready.
		if errors.Is(err, dialer.ErrPasswordRequired) || errors.Is(err, dialer.ErrUserAuth) || errors.Is(err, dialer.ErrWrongPassword) {
			if strings.Contains(strings.ToLower(s.Log()), "ready to accept") {
				return nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis-server on port %d not ready after %s: %v", s.Port, limit, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// DialOptions returns what a client needs to reach this server.
func (s *Server) DialOptions() dialer.Options {
	o := dialer.Options{Addr: s.Addr, Password: s.opts.Password, ConnectTimeout: 2 * time.Second, IOTimeout: 10 * time.Second}
	if t := s.opts.TLS; t != nil {
		o.TLS = &dialer.TLS{CAFile: t.CAFile}
		if t.RequireClientCert {
			o.TLS.CertFile, o.TLS.KeyFile = t.CertFile, t.KeyFile
		}
	}
	return o
}

// Dial connects to the server.
func (s *Server) Dial(ctx context.Context) (*dialer.Conn, error) {
	return dialer.Dial(ctx, s.DialOptions())
}

// Do runs one command on a new connection; for set-up and checks, not speed.
func (s *Server) Do(ctx context.Context, args ...string) (string, error) {
	c, err := s.Dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	v, err := c.Do(args...)
	return v.Text(), err
}

// Info returns one field of INFO, "" when absent.
func (s *Server) Info(ctx context.Context, section, field string) (string, error) {
	text, err := s.Do(ctx, "INFO", section)
	if err != nil {
		return "", err
	}
	return InfoField(text, field), nil
}

// InfoField picks field's value out of an INFO reply.
func InfoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

// KeyspaceDBs lists the databases an INFO keyspace reply says hold keys.
func KeyspaceDBs(info string) []int {
	dbs := []int{}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "db"); ok {
			name, _, _ := strings.Cut(rest, ":")
			if n, err := strconv.Atoi(name); err == nil {
				dbs = append(dbs, n)
			}
		}
	}
	return dbs
}

// String names the server without its password.
func (s *Server) String() string { return "redis-server " + s.Addr }

// GoString is String, for %#v.
func (s *Server) GoString() string { return s.String() }

// Pid returns the process id, or 0 when not running.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill ends the process at once (SIGKILL) and waits for it; the data
// directory stays, so Restart can bring the same server back.
func (s *Server) Kill() {
	if !s.Running() {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// Restart kills the server if it runs and starts it again on the same port
// with the same configuration and data directory.
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	return s.launch(ctx)
}

// Stop kills the server and removes the data directory it created.
func (s *Server) Stop() {
	s.Kill()
	s.cleanDir()
}

func (s *Server) cleanDir() {
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
}

// Log returns what the server printed: its start-up output and its log file.
func (s *Server) Log() string {
	var b strings.Builder
	for _, name := range []string{"stdout.log", "redis.log"} {
		if data, err := os.ReadFile(filepath.Join(s.Dir, name)); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

// LogTail returns the last n lines of Log.
func (s *Server) LogTail(n int) []string {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}
