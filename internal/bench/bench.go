// Package bench is resync's performance benchmark (resync bench). It
// starts throwaway redis-server processes, fills a source with a data
// set, and measures side by side, each figure several times: the
// machine's limits for a full sync (a native replica's, and mass
// insertion of RESTORE commands with redis-cli --pipe), resync's own
// full sync (time, keys/s, MB/s, peak memory), the incremental stream
// under redis-benchmark loads (throughput, lag, catch-up) beside a
// native replica's, and the same into a cluster. resync runs as a
// subprocess, the binary under test, exactly as an operator runs it.
//
// Every server and process it starts is stopped, and its files removed,
// when Run returns, also when its context is cancelled.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/redisproc"
)

// The parts of a run (--only).
const (
	PartFull        = "full"        // full sync: the two limits and resync
	PartIncremental = "incremental" // the stream under load, beside a native replica
	PartCluster     = "cluster"     // cluster(3) to cluster(3): full sync and stream
	PartMemory      = "memory"      // resync's peak RSS (and with --big, the big keys')
	PartThrottle    = "throttle"    // --target-max-ops holding under a load
)

// Parts lists every part, in the order a run measures them.
func Parts() []string {
	return []string{PartFull, PartIncremental, PartThrottle, PartCluster, PartMemory}
}

// Defaults of Config.
const (
	DefaultKeys             = 2_000_000
	DefaultRuns             = 3
	DefaultBenchRequests    = 3_000_000
	DefaultModerateRequests = 200_000
)

// heartbeatInterval is resync's --heartbeat-interval in the bench: ten
// lag measurements a second rather than one, so that a load of a few
// seconds yields percentiles worth the name. It costs the source ten
// small writes a second.
const heartbeatInterval = 100 * time.Millisecond

// Config is what a run measures, and with which programs.
type Config struct {
	// RedisServer is the redis-server binary. RedisCLI and
	// RedisBenchmark, when "", are taken from its directory if there,
	// else from PATH.
	RedisServer, RedisCLI, RedisBenchmark string
	// Resync is the command line that starts resync (its binary, and
	// any arguments before "sync"); ResyncEnv its environment (nil:
	// this process's).
	Resync    []string
	ResyncEnv []string

	Keys int  // the number of strings; the aggregates are Keys/10 each
	Big  bool // add the big keys' measures (BigKeys)
	// BigKeys sizes the big keys; zero is DefaultBigKeys.
	BigKeys BigKeys
	Runs    int      // how many times each figure is measured
	Parts   []string // what to measure (nil: every part)
	// BenchRequests is the heavy load's redis-benchmark -n;
	// ModerateRequests the moderate load's.
	BenchRequests, ModerateRequests int

	// Progress receives a line per step, for a person waiting.
	Progress io.Writer
	// TempDir holds the run's files (a directory of its own inside);
	// os.TempDir() when "".
	TempDir string
}

func (c Config) wants(part string) bool { return len(c.Parts) == 0 || slices.Contains(c.Parts, part) }

// check refuses a configuration that cannot run.
func (c *Config) check() error {
	if c.RedisServer == "" {
		return errors.New("no redis-server binary given")
	}
	if len(c.Resync) == 0 {
		return errors.New("no resync command given")
	}
	if c.Keys < 1 {
		return fmt.Errorf("keys %d: want at least 1", c.Keys)
	}
	if c.Runs < 1 {
		return fmt.Errorf("runs %d: want at least 1", c.Runs)
	}
	if c.BenchRequests < 1 || c.ModerateRequests < 1 {
		return errors.New("the loads want at least one request each")
	}
	for _, p := range c.Parts {
		if !slices.Contains(Parts(), p) {
			return fmt.Errorf("unknown part %q: want some of %s", p, strings.Join(Parts(), ","))
		}
	}
	if c.BigKeys == (BigKeys{}) {
		c.BigKeys = DefaultBigKeys
	}
	if c.BigKeys.Elements < 1 || c.BigKeys.StringBytes < 1 {
		return errors.New("the big keys want at least one element and one byte")
	}
	var err error
	if c.RedisCLI, err = sibling(c.RedisServer, c.RedisCLI, "redis-cli"); err != nil {
		return err
	}
	c.RedisBenchmark, err = sibling(c.RedisServer, c.RedisBenchmark, "redis-benchmark")
	return err
}

// sibling finds a Redis tool: as given, else next to redis-server (the
// same build), else on PATH.
func sibling(server, given, name string) (string, error) {
	if given != "" {
		return given, nil
	}
	if p := filepath.Join(filepath.Dir(server), name); filepath.IsAbs(p) {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found next to %s or on PATH", name, server)
	}
	return p, nil
}

// ConfigError is a Config that cannot run: a usage error, not a failure
// of what it measures.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// runner is one run: its configuration, what it started, its report.
type runner struct {
	cfg      Config
	opts     redisproc.Options
	dir      string
	servers  []*redisproc.Server
	clusters []*redisproc.Cluster
	rep      *Report
}

// Run measures what cfg asks for and returns the report. It stops every
// server and process it started before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, &ConfigError{Err: err}
	}
	ver, err := redisproc.BinaryVersion(cfg.RedisServer)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "resync-bench-")
	if err != nil {
		return nil, err
	}
	parts := cfg.Parts
	if len(parts) == 0 {
		parts = Parts()
	}
	r := &runner{cfg: cfg, dir: dir,
		opts: redisproc.Options{Binary: cfg.RedisServer},
		rep: &Report{Schema: SchemaVersion, Started: time.Now().UTC().Truncate(time.Second),
			Machine: Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version(),
				RedisVersion: ver.String(), LoadAverage: loadAverage()},
			Settings: Settings{Keys: cfg.Keys, Big: cfg.Big, Runs: cfg.Runs, Parts: parts,
				BenchRequests: cfg.BenchRequests, ModerateRequests: cfg.ModerateRequests,
				HeavyLoad:    strings.Join(heavyLoad(cfg.BenchRequests).args(), " "),
				ModerateLoad: strings.Join(moderateLoad(cfg.ModerateRequests).args(), " "),
				Heartbeat:    heartbeatInterval.String()},
			Figures: []Figure{}, Goals: []Goal{}, Notes: []string{}}}
	defer r.close()
	start := time.Now()
	if err := r.run(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return nil, err
	}
	r.rep.Seconds = time.Since(start).Seconds()
	return r.rep, nil
}

func (r *runner) run(ctx context.Context) error {
	c := r.cfg
	d := NewDataSet(c.Keys)
	if c.wants(PartFull) || c.wants(PartMemory) || c.wants(PartIncremental) {
		src, err := r.start(ctx)
		if err != nil {
			return err
		}
		info, err := r.fill(ctx, "data set", nodes{src}, d.Keys(), func() error { return fillStandalone(ctx, benchDialOptions(src), d) })
		if err != nil {
			return err
		}
		info.Strings, info.Hashes, info.Lists, info.Sets, info.Zsets = d.Strings, d.Others, d.Others, d.Others, d.Others
		r.rep.DataSet = info
		if c.wants(PartFull) || c.wants(PartMemory) {
			if err := r.fullSync(ctx, src, d); err != nil {
				return fmt.Errorf("full sync: %w", err)
			}
		}
		if c.wants(PartIncremental) {
			if err := r.incremental(ctx, src); err != nil {
				return fmt.Errorf("incremental: %w", err)
			}
		}
		src.Stop()
	}
	if c.wants(PartThrottle) {
		if err := r.throttle(ctx); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
	}
	if c.Big && (c.wants(PartFull) || c.wants(PartMemory)) {
		if err := r.bigKeys(ctx); err != nil {
			return fmt.Errorf("big keys: %w", err)
		}
	}
	if c.wants(PartCluster) {
		if err := r.cluster(ctx, d); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	r.goals()
	r.notes()
	// The big keys come after the stream, to spare the main source's
	// memory; their figures go with the other memory figures.
	order := []string{PartFull, PartMemory, PartIncremental, PartThrottle, PartCluster}
	slices.SortStableFunc(r.rep.Figures, func(a, b Figure) int {
		sa, _, _ := strings.Cut(a.ID, ".")
		sb, _, _ := strings.Cut(b.ID, ".")
		return slices.Index(order, sa) - slices.Index(order, sb)
	})
	return nil
}

// fill fills the source (a standalone server, or a cluster's masters)
// with keys keys through fill, and describes the result.
func (r *runner) fill(ctx context.Context, what string, src nodes, keys int, fill func() error) (*DataSetInfo, error) {
	r.logf("filling the source with the %s (%d keys)", what, keys)
	t0 := time.Now()
	if err := fill(); err != nil {
		return nil, fmt.Errorf("fill the %s: %w", what, err)
	}
	secs := time.Since(t0).Seconds()
	n, err := dbsize(ctx, src)
	if err != nil {
		return nil, err
	}
	if n != int64(keys) {
		return nil, fmt.Errorf("the source holds %d keys after the fill, want %d", n, keys)
	}
	var used int64
	for _, s := range src {
		mem, err := s.Info(ctx, "memory", "used_memory")
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(mem, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: used_memory %q", s.Addr, mem)
		}
		used += n
	}
	r.logf("filled in %.1fs: used_memory %.1f MiB", secs, mib(used))
	return &DataSetInfo{Keys: keys, UsedMemoryBytes: used, FillSeconds: secs}, nil
}

// start starts a throwaway server, stopped by close at the latest.
func (r *runner) start(ctx context.Context) (*redisproc.Server, error) {
	s, err := redisproc.Start(ctx, r.opts)
	if err != nil {
		return nil, err
	}
	r.servers = append(r.servers, s)
	return s, nil
}

// startCluster starts a cluster of three masters, stopped by close at
// the latest.
func (r *runner) startCluster(ctx context.Context) (*redisproc.Cluster, error) {
	c, err := redisproc.StartCluster(ctx, r.opts, 3, 0)
	if err != nil {
		return nil, err
	}
	r.clusters = append(r.clusters, c)
	return c, nil
}

// close stops every server and removes the run's files.
func (r *runner) close() {
	for _, s := range r.servers {
		s.Stop()
	}
	for _, c := range r.clusters {
		c.Stop()
	}
	os.RemoveAll(r.dir)
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "resync bench: "+format+"\n", args...)
	}
}

// goals records the targets, each against the figure (or the
// ratio of two) it bounds, when the run measured it.
func (r *runner) goals() {
	rep := r.rep
	atMost := func(id string, limit float64, want string) {
		if f := rep.figure(id); f != nil {
			rep.Goals = append(rep.Goals, Goal{Figure: id, Want: want, Got: f.Median, Met: f.Median <= limit})
		}
	}
	ratioAtMost := func(id, to string, limit float64, want string) {
		f, g := rep.figure(id), rep.figure(to)
		if f != nil && g != nil && g.Median > 0 {
			x := f.Median / g.Median
			rep.Goals = append(rep.Goals, Goal{Figure: id, Want: want, Got: x, Met: x <= limit})
		}
	}
	ratioAtMost("full.resync.seconds", "full.restore_pipe.seconds", 1.15, "<= 1.15 × limit B")
	ratioAtMost("full.resync.seconds", "full.native_replica.seconds", 1.5, "<= 1.5 × limit A")
	for _, prefix := range []string{"incremental", "cluster.incremental"} {
		atMost(prefix+".resync_exactly_once.heavy.catch_up_seconds", 1, "<= 1 s")
		for _, d := range []string{"resync_exactly_once", "resync_at_least_once"} {
			// Keeping pace: applied within 5% of what the source achieved.
			id := prefix + "." + d + ".heavy.applied_ops_per_sec"
			if f, g := rep.figure(id), rep.figure(prefix+"."+d+".heavy.source_ops_per_sec"); f != nil && g != nil && g.Median > 0 {
				x := f.Median / g.Median
				rep.Goals = append(rep.Goals, Goal{Figure: id, Want: ">= 0.95 × the source's ops/s", Got: x, Met: x >= 0.95})
			}
		}
	}
	for _, id := range []string{
		"incremental.resync_exactly_once.moderate.heartbeat_lag_p99_ms",
		"incremental.resync_at_least_once.moderate.heartbeat_lag_p99_ms",
		"cluster.incremental.resync_exactly_once.moderate.heartbeat_lag_p99_ms",
		"cluster.incremental.resync_at_least_once.moderate.heartbeat_lag_p99_ms",
	} {
		atMost(id, 10, "<= 10 ms")
	}
	// 100 MB and 256 MB, in the MiB the figures are in.
	atMost("memory.resync.peak_rss_mib", 100e6/(1<<20), "<= 100 MB (95.4 MiB)")
	atMost("memory.big.resync.peak_rss_mib", 256e6/(1<<20), "<= 256 MB (244 MiB)")
	if f := rep.figure("throttle.resync.target_ops_per_sec"); f != nil {
		met := f.Median >= throttleOps*0.95 && f.Median <= throttleOps*1.05
		rep.Goals = append(rep.Goals, Goal{Figure: f.ID, Want: fmt.Sprintf("%d ± 5%%", throttleOps), Got: f.Median, Met: met})
	}
}

// notes say how the figures were taken, where a label cannot.
func (r *runner) notes() {
	c, add := r.cfg, func(s string) { r.rep.Notes = append(r.rep.Notes, s) }
	if c.wants(PartFull) {
		add("full sync: limit A runs from SLAVEOF on a fresh server until master_link_status:up and loading:0; limit B runs redis-cli --pipe of RESTORE … REPLACE commands (DUMP payloads, written to a file before the clock starts) into a fresh server; resync runs from the process's start until /status says synchronizing and the target holds every key; MB/s are RDB bytes received")
		add("full sync CPU: the source's is INFO cpu's used_cpu_* with its children's (the snapshot's fork, once reaped), the target's its used_cpu_*, resync's /proc/<pid>/stat utime+stime, all over resync's run; limit B excludes making the snapshot, which a sync from a live source cannot")
	}
	if c.wants(PartMemory) || c.wants(PartFull) {
		add("memory: resync's peak RSS is VmHWM from /proc when the full sync is over, with resync's default settings")
	}
	if c.wants(PartIncremental) || c.wants(PartCluster) {
		add("stream: one untimed heavy load warms the source up first; resync runs with --heartbeat-interval " + heartbeatInterval.String() +
			" (ten lag measurements a second); its heartbeat lag is /status lag_ms polled every 50 ms during the load, leaving out the load's first " + heartbeatInterval.String() +
			" (the last idle heartbeat's); offset lag is how long ago the source was at the follower's applied offset (the worst shard's), from INFO replication and /status applied_offset polled alike;" +
			" applied ops/s counts the follower's commands over redis-benchmark's run; catch-up runs from redis-benchmark's exit until a key written then on the source (one per master of a cluster) exists on the target;" +
			" the machine's CPUs busy is from /proc/stat over redis-benchmark's run, runnable tasks its procs_running at each lag sample")
	}
	if c.wants(PartCluster) {
		add(fmt.Sprintf("cluster: a target master counts as busy in a 100 ms interval when it processed at least %d commands/s; its commands/s are over the sync's busy window", busyRate))
	}
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes,
// "unknown" where /proc/loadavg is not.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// dbsize is the number of keys the servers hold together.
func dbsize(ctx context.Context, servers []*redisproc.Server) (int64, error) {
	var total int64
	for _, s := range servers {
		v, err := s.Do(ctx, "DBSIZE")
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: DBSIZE answered %q", s.Addr, v)
		}
		total += n
	}
	return total, nil
}
