// Package status serves a running task's state over HTTP: GET /status as
// the JSON DESIGN.md pins, GET /metrics in Prometheus text, and at / a
// dashboard page that reads /status alone.
package status

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resync/resync/internal/task"
)

// Doc is the /status document.
type Doc struct {
	// Time is when the document was made, on resync's clock: rates are
	// differences of counters over differences of Time.
	Time  time.Time `json:"time"`
	Name  string    `json:"name"`
	State string    `json:"state"`
	Mode  string    `json:"mode"`
	LagMs *int64    `json:"lag_ms"`
	// Retries counts reconnections after lost connections.
	Retries int64 `json:"retries"`
	// CommandsApplied counts the stream's commands written to the
	// target, KeysWritten the keys the full sync wrote: counters, whose
	// rates a reader derives.
	CommandsApplied int64 `json:"commands_applied"`
	KeysWritten     int64 `json:"keys_written"`
	// ErrorsTotal counts every error the task met; Errors lists the
	// last few, oldest first (never null).
	ErrorsTotal int64        `json:"errors_total"`
	Errors      []ErrorEvent `json:"errors"`
	Shards      []Shard      `json:"shards"`
	Targets     []Target     `json:"targets"`
}

// ErrorEvent is one error the task met.
type ErrorEvent struct {
	Time time.Time `json:"time"` // RFC 3339
	Text string    `json:"text"`
}

// Shard is one source master's progress.
type Shard struct {
	Source         string `json:"source"`
	ReplID         string `json:"replid"`
	ReceivedOffset int64  `json:"received_offset"`
	AppliedOffset  int64  `json:"applied_offset"`
	State          string `json:"state"`
	// LagMs is this shard's lag (null while unknown); the task's is the
	// worst of its shards'.
	LagMs    *int64   `json:"lag_ms"`
	FullSync FullSync `json:"full_sync"`
	Spool    Spool    `json:"spool"`
}

// Spool is the stream received from a shard and not yet written: in
// memory, in spool files, and whether resync has stopped reading the
// source because both are full (back-pressure).
type Spool struct {
	MemoryBytes  int64 `json:"memory_bytes"`
	DiskBytes    int64 `json:"disk_bytes"`
	BackPressure bool  `json:"back_pressure"`
}

// FullSync is a shard's full sync progress.
type FullSync struct {
	RDBBytesTotal    *int64 `json:"rdb_bytes_total"`
	RDBBytesReceived int64  `json:"rdb_bytes_received"`
	// RDBBytesApplied is how much of the snapshot has been read and
	// written to the target (behind received when the target is slower).
	RDBBytesApplied int64 `json:"rdb_bytes_applied"`
	KeysWritten     int64 `json:"keys_written"`
	// What the full sync left out, or wrote as commands rather than
	// RESTORE (an older target, --rewrite always, big keys in chunks),
	// and dropped as more than the target can hold.
	KeysFiltered  int64 `json:"keys_filtered"`
	KeysEmpty     int64 `json:"keys_empty_skipped"`
	KeysRewritten int64 `json:"keys_rewritten"`
	BigKeys       int64 `json:"big_keys"`
	Dropped       int64 `json:"dropped_unsupported"`
}

// Target is one target's state.
type Target struct {
	Address   string `json:"address"`
	State     string `json:"state"`
	LagMs     *int64 `json:"lag_ms"`
	LastError string `json:"last_error"`
	// AppliedOffset is what the target has applied of the source's
	// stream (the sum over a cluster source's shards).
	AppliedOffset int64    `json:"applied_offset"`
	Throttle      Throttle `json:"throttle"`
}

// Throttle is a target's bounds per node and second (0: none), and how
// long its current connection has waited on them.
type Throttle struct {
	MaxOps           int     `json:"max_ops"`
	MaxBytes         int     `json:"max_bytes"`
	ThrottledSeconds float64 `json:"throttled_seconds"`
}

// known is v, or nil for the -1 that stands for unknown.
func known(v int64) *int64 {
	if v < 0 {
		return nil
	}
	return &v
}

// shardsOf lists a task's source shards: a cluster source's masters, or
// the standalone source itself as the one shard.
func shardsOf(st task.Status) []task.Status {
	if len(st.Shards) > 0 {
		return st.Shards
	}
	return []task.Status{st}
}

// targetsOf lists a task's targets: each of a task of several, or the
// one target.
func targetsOf(st task.Status) []task.Status {
	if len(st.Targets) > 0 {
		return st.Targets
	}
	return []task.Status{st}
}

// FromTask builds the document from a task's status.
func FromTask(st task.Status) Doc {
	d := Doc{
		Time: time.Now(), Name: st.Name, State: st.State, Mode: st.Mode, LagMs: known(st.LagMs), Retries: st.Retries,
		CommandsApplied: st.Commands, KeysWritten: st.KeysWritten, ErrorsTotal: st.ErrorsTotal,
		Errors: make([]ErrorEvent, 0, len(st.Errors)),
	}
	for _, ts := range targetsOf(st) {
		d.Targets = append(d.Targets, Target{Address: ts.TargetAddr, State: ts.State, LagMs: known(ts.LagMs), LastError: ts.LastError,
			AppliedOffset: ts.Applied,
			Throttle:      Throttle{MaxOps: ts.TargetMaxOps, MaxBytes: ts.TargetMaxBytes, ThrottledSeconds: float64(ts.ThrottledMs) / 1000}})
	}
	for _, e := range st.Errors {
		d.Errors = append(d.Errors, ErrorEvent{Time: e.Time, Text: e.Text})
	}
	for _, s := range shardsOf(st) {
		d.Shards = append(d.Shards, Shard{Source: s.SourceAddr, ReplID: s.ReplID, ReceivedOffset: s.Received,
			AppliedOffset: s.Applied, State: s.State, LagMs: known(s.LagMs),
			FullSync: FullSync{RDBBytesTotal: known(s.RDBBytesTotal), RDBBytesReceived: s.RDBBytes, RDBBytesApplied: s.RDBBytesApplied,
				KeysWritten: s.KeysWritten, KeysFiltered: s.KeysFiltered, KeysEmpty: s.KeysEmpty, KeysRewritten: s.KeysRewritten,
				BigKeys: s.BigKeys, Dropped: s.Dropped},
			Spool: Spool{MemoryBytes: s.SpoolMemBytes, DiskBytes: s.SpoolDiskBytes, BackPressure: s.BackPressure}})
	}
	return d
}

// Options are the status server's settings.
type Options struct {
	// Token, when set, is required of every request: as a bearer token
	// (Authorization: Bearer TOKEN) or as the password of HTTP basic
	// authentication (what a browser prompts for). A listener on other
	// than a loopback address requires one (CheckListen).
	Token string
	// Pprof serves net/http/pprof under /debug/pprof/ (off by default).
	Pprof bool
}

// CheckListen refuses to serve the status without a token on other than
// a loopback address: the status and metrics name the source and target,
// and pprof exposes the process. An empty host listens on every
// interface, so it is not loopback.
func CheckListen(addr, token string) error {
	if token != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("status address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	where := "every interface"
	if host != "" {
		where = host
	}
	return fmt.Errorf("the status server would listen on %s, beyond this machine, with no token: "+
		"pass --status-token or --status-token-file, or listen on 127.0.0.1", where)
}

// Timeouts of the status server: its answers are small and quick. A
// pprof profile or trace runs longer than writeTimeout; net/http/pprof
// extends its own write deadline by the duration asked for.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Handler serves the dashboard at /, /status and /metrics for a task,
// and pprof under /debug/pprof/ when o.Pprof.
func Handler(t *task.Task, o Options) http.Handler {
	return handler(t.Status, o)
}

// handler is Handler over any source of status (tests feed it one).
func handler(status func() task.Status, o Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{status}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(FromTask(status()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	serveDashboard(mux)
	if o.Pprof {
		// On this mux only: importing net/http/pprof also registers
		// it on http.DefaultServeMux, which resync never serves.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		// No /debug/pprof/cmdline: the command line may hold a password
		// given in a URL (allowed, with a warning).
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	var h http.Handler = mux
	if o.Token != "" {
		h = requireToken(o.Token, h)
	}
	return nosniff(h)
}

// loopbackHost refuses a request whose Host is not a loopback name: a
// status server without a token listens on loopback only, and a web
// page elsewhere could otherwise reach it through a DNS name rebound to
// 127.0.0.1.
func loopbackHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "resync status: a loopback address only (or give the task a --status-token)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func nosniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// requireToken lets through the requests that carry token, as a bearer
// token or as a basic-auth password (any user name); the others get a
// 401 that makes a browser ask for it.
func requireToken(token string, h http.Handler) http.Handler {
	// Hashes are compared so that the time taken reveals nothing, not
	// even the token's length.
	want := sha256.Sum256([]byte(token))
	matches := func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		ok := false
		if scheme, cred, found := strings.Cut(auth, " "); found && strings.EqualFold(scheme, "Bearer") {
			ok = matches(strings.TrimSpace(cred))
		} else if _, pw, found := r.BasicAuth(); found {
			ok = matches(pw)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="resync", charset="UTF-8"`)
			http.Error(w, "401 unauthorized: this status server wants its token (--status-token)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Server is a running status server.
type Server struct {
	srv  *http.Server
	addr string
	done chan error
}

// Start listens on addr (port 0 picks a free one) and serves the task.
func Start(addr string, t *task.Task, log *slog.Logger, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status server: %w", err)
	}
	return Serve(ln, t, log, o), nil
}

// Serve serves the task on a listener the caller opened (to know its
// port before the task exists).
func Serve(ln net.Listener, t *task.Task, log *slog.Logger, o Options) *Server {
	h := Handler(t, o)
	if o.Token == "" {
		h = loopbackHost(h)
	}
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout},
		addr: ln.Addr().String(), done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	if log != nil {
		log.Info("status server", "dashboard", "http://"+s.addr+"/", "status", "http://"+s.addr+"/status",
			"metrics", "http://"+s.addr+"/metrics", "token", o.Token != "", "pprof", o.Pprof)
	}
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the server, letting requests in progress finish briefly.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	return <-s.done
}
