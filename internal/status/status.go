// Package status serves a running task's state over HTTP: GET /status as
// the JSON DESIGN.md pins, GET /metrics in Prometheus text.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resync/resync/internal/task"
)

// Doc is the /status document.
type Doc struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Mode  string `json:"mode"`
	LagMs *int64 `json:"lag_ms"`
	// Retries counts reconnections after lost connections.
	Retries int64    `json:"retries"`
	Shards  []Shard  `json:"shards"`
	Targets []Target `json:"targets"`
}

// Shard is one source master's progress.
type Shard struct {
	Source         string `json:"source"`
	ReplID         string `json:"replid"`
	ReceivedOffset int64  `json:"received_offset"`
	AppliedOffset  int64  `json:"applied_offset"`
	State          string `json:"state"`
	// LagMs is this shard's lag, for a cluster source (the task's is
	// the worst of them).
	LagMs    *int64   `json:"lag_ms,omitempty"`
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
	KeysWritten      int64  `json:"keys_written"`
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
}

// FromTask builds the document from a task's status.
func FromTask(st task.Status) Doc {
	known := func(v int64) *int64 {
		if v < 0 {
			return nil
		}
		return &v
	}
	shard := func(st task.Status) Shard {
		return Shard{Source: st.SourceAddr, ReplID: st.ReplID, ReceivedOffset: st.Received,
			AppliedOffset: st.Applied, State: st.State,
			FullSync: FullSync{RDBBytesTotal: known(st.RDBBytesTotal), RDBBytesReceived: st.RDBBytes, KeysWritten: st.KeysWritten,
				KeysFiltered: st.KeysFiltered, KeysEmpty: st.KeysEmpty, KeysRewritten: st.KeysRewritten,
				BigKeys: st.BigKeys, Dropped: st.Dropped},
			Spool: Spool{MemoryBytes: st.SpoolMemBytes, DiskBytes: st.SpoolDiskBytes, BackPressure: st.BackPressure}}
	}
	d := Doc{
		Name: st.Name, State: st.State, Mode: "psync", LagMs: known(st.LagMs), Retries: st.Retries,
		Shards:  []Shard{shard(st)},
		Targets: []Target{{Address: st.TargetAddr, State: st.State, LagMs: known(st.LagMs), LastError: st.LastError}},
	}
	if len(st.Shards) > 0 {
		// A cluster source: one entry per master.
		d.Shards = nil
		for _, s := range st.Shards {
			sh := shard(s)
			sh.LagMs = known(s.LagMs)
			d.Shards = append(d.Shards, sh)
		}
	}
	return d
}

// Options are the status server's settings.
type Options struct {
	// Token, when set, is required of every request: as a bearer token
	// (Authorization: Bearer TOKEN) or as the password of HTTP basic
	// authentication (what a browser prompts for). A listener on other
	// than a loopback address requires one.
	Token string
	// Pprof serves net/http/pprof under /debug/pprof/ (off by default).
	Pprof bool
}

// Handler serves /status and /metrics for a task.
func Handler(t *task.Task, o Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{t}, prometheus.NewGoCollector())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(FromTask(t.Status()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
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
		return nil, err
	}
	return Serve(ln, t, log, o), nil
}

// Serve serves the task on a listener the caller opened (to know its
// port before the task exists).
func Serve(ln net.Listener, t *task.Task, log *slog.Logger, o Options) *Server {
	s := &Server{srv: &http.Server{Handler: Handler(t, o), ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	if log != nil {
		log.Info("status server", "addr", "http://"+s.addr+"/status", "metrics", "http://"+s.addr+"/metrics")
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

// collector reads the task's status at each scrape: no state of its own.
type collector struct{ t *task.Task }

var (
	labels    = []string{"task"}
	descState = prometheus.NewDesc("resync_state", "1 for the task's current state.", []string{"task", "state"}, nil)
	descLag   = prometheus.NewDesc("resync_lag_milliseconds", "End-to-end lag measured by the heartbeat (absent while unknown).", labels, nil)
	descRecv  = prometheus.NewDesc("resync_received_offset", "Replication offset of the last byte read from the source.", labels, nil)
	descAppl  = prometheus.NewDesc("resync_applied_offset", "Replication offset confirmed on the target.", labels, nil)
	descKeys  = prometheus.NewDesc("resync_full_sync_keys_written_total", "Keys written by the full sync.", labels, nil)
	descRDB   = prometheus.NewDesc("resync_full_sync_rdb_bytes_total", "Snapshot bytes received.", labels, nil)
	descBytes = prometheus.NewDesc("resync_written_bytes_total", "Bytes of commands written to the target.", labels, nil)
	descCmds  = prometheus.NewDesc("resync_commands_applied_total", "Commands of the stream applied, by name.", []string{"task", "command"}, nil)
	descPub   = prometheus.NewDesc("resync_publish_skipped_total", "PUBLISH commands of the stream not replayed.", labels, nil)
	descErrs  = prometheus.NewDesc("resync_errors_total", "Failures of the task.", labels, nil)
	descRetry = prometheus.NewDesc("resync_retries_total", "Reconnections after a lost source or target connection.", labels, nil)
	descSpool = prometheus.NewDesc("resync_spool_bytes", "Stream received and not yet written, by where it waits: memory or disk.", []string{"task", "where"}, nil)
	descBack  = prometheus.NewDesc("resync_back_pressure", "1 while memory and spool are full and resync has stopped reading the source.", labels, nil)
	// A cluster source's shards, one series each (by source master).
	shardLabels   = []string{"task", "shard"}
	descShardLag  = prometheus.NewDesc("resync_shard_lag_milliseconds", "A cluster source shard's lag (absent while unknown).", shardLabels, nil)
	descShardRecv = prometheus.NewDesc("resync_shard_received_offset", "A cluster source shard's received offset.", shardLabels, nil)
	descShardAppl = prometheus.NewDesc("resync_shard_applied_offset", "A cluster source shard's applied offset.", shardLabels, nil)
	descShardKeys = prometheus.NewDesc("resync_shard_full_sync_keys_written_total", "Keys a cluster source shard's full sync wrote.", shardLabels, nil)
	descSkip      = prometheus.NewDesc("resync_skipped_total", "What the task deliberately did not write, by reason: "+
		"keys_filtered and commands_filtered (the selection and filters), partial_filter (--on-partial-filter skip), "+
		"empty (empty collections), dropped_unsupported (--drop-unsupported).", []string{"task", "reason"}, nil)
	descRewr = prometheus.NewDesc("resync_full_sync_keys_rewritten_total", "Keys the full sync wrote as commands, by why: "+
		"rewrite (the target cannot load the payload, or --rewrite always) or big (chunked).", []string{"task", "why"}, nil)
)

var states = []string{task.StatePrecheck, task.StateFullSync, task.StateSynchronizing, task.StateRetrying, task.StateFailed, task.StateStopped}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descLag, descRecv, descAppl, descKeys, descRDB, descBytes, descCmds, descPub, descErrs, descRetry, descSpool, descBack, descSkip, descRewr,
		descShardLag, descShardRecv, descShardAppl, descShardKeys} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.t.Status()
	for _, s := range states {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Name, s)
	}
	if st.LagMs >= 0 {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(st.LagMs), st.Name)
	}
	for _, sh := range st.Shards {
		if sh.LagMs >= 0 {
			ch <- prometheus.MustNewConstMetric(descShardLag, prometheus.GaugeValue, float64(sh.LagMs), st.Name, sh.SourceAddr)
		}
		ch <- prometheus.MustNewConstMetric(descShardRecv, prometheus.GaugeValue, float64(sh.Received), st.Name, sh.SourceAddr)
		ch <- prometheus.MustNewConstMetric(descShardAppl, prometheus.GaugeValue, float64(sh.Applied), st.Name, sh.SourceAddr)
		ch <- prometheus.MustNewConstMetric(descShardKeys, prometheus.CounterValue, float64(sh.KeysWritten), st.Name, sh.SourceAddr)
	}
	ch <- prometheus.MustNewConstMetric(descRecv, prometheus.GaugeValue, float64(st.Received), st.Name)
	ch <- prometheus.MustNewConstMetric(descAppl, prometheus.GaugeValue, float64(st.Applied), st.Name)
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.CounterValue, float64(st.KeysWritten), st.Name)
	ch <- prometheus.MustNewConstMetric(descRDB, prometheus.CounterValue, float64(st.RDBBytes), st.Name)
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.BytesWritten), st.Name)
	for name, n := range st.CommandsByName {
		ch <- prometheus.MustNewConstMetric(descCmds, prometheus.CounterValue, float64(n), st.Name, name)
	}
	ch <- prometheus.MustNewConstMetric(descPub, prometheus.CounterValue, float64(st.PublishSkipped), st.Name)
	for reason, n := range map[string]int64{"keys_filtered": st.KeysFiltered, "commands_filtered": st.CommandsFiltered,
		"partial_filter": st.PartialSkipped, "empty": st.KeysEmpty, "dropped_unsupported": st.Dropped} {
		ch <- prometheus.MustNewConstMetric(descSkip, prometheus.CounterValue, float64(n), st.Name, reason)
	}
	ch <- prometheus.MustNewConstMetric(descRewr, prometheus.CounterValue, float64(st.KeysRewritten), st.Name, "rewrite")
	ch <- prometheus.MustNewConstMetric(descRewr, prometheus.CounterValue, float64(st.BigKeys), st.Name, "big")
	errs := 0.0
	if st.State == task.StateFailed {
		errs = 1
	}
	ch <- prometheus.MustNewConstMetric(descErrs, prometheus.CounterValue, errs, st.Name)
	ch <- prometheus.MustNewConstMetric(descRetry, prometheus.CounterValue, float64(st.Retries), st.Name)
	ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(st.SpoolMemBytes), st.Name, "memory")
	ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(st.SpoolDiskBytes), st.Name, "disk")
	back := 0.0
	if st.BackPressure {
		back = 1
	}
	ch <- prometheus.MustNewConstMetric(descBack, prometheus.GaugeValue, back, st.Name)
}
