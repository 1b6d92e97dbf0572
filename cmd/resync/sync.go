package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/precheck"
	"github.com/resync/resync/internal/status"
	"github.com/resync/resync/internal/task"
)

// syncFlags are resync sync's options.
type syncFlags struct {
	source, target                      *endpointFlags
	name, logFormat, statusAddr, config *string
	buffer                              *byteSize
	heartbeat, retryFor, ioTimeout      *time.Duration
	delivery, spoolDir                  *string
	sourceMode                          *string
	enableNotifications                 *bool
	scanRate                            *int
	candidates, sentinels, masterName   *string
	targetSentinels, targetMaster       *string
	// How to log in to each side's Sentinels.
	sourceSentinelAuth, targetSentinelAuth sentinelAuthFlags
	spoolMax                               *byteSize
	// Throttles per target node and second.
	maxOps   *int
	maxBytes byteSize
	// memLimit is the Go runtime's soft memory limit (0: derived).
	memLimit byteSize
	reset    *bool
	sel      *selectionFlags
	load     *loadFlags
	// skipCheck waives prechecks by name (resync check lists them).
	skipCheck                    listFlag
	statusToken, statusTokenFile *string
	pprof, redactKeys            *bool
	progress                     *string
	progressInterval             *time.Duration
}

// newSyncFlags defines resync sync's options; other commands read a sync
// task file through it too, to tell its settings from mistakes.
func newSyncFlags(stderr io.Writer) (*flag.FlagSet, *syncFlags) {
	fs := flag.NewFlagSet("resync sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &syncFlags{source: addEndpointFlags(fs, "source", false), target: addEndpointFlags(fs, "target", true), skipCheck: listFlag{split: true}}
	f.name = fs.String("name", "default", "the task's name (in logs, status and the heartbeat key)")
	buffer := byteSize(64 << 20)
	f.buffer = &buffer
	fs.Var(f.buffer, "buffer-bytes", "bound on the commands received and not yet written (e.g. 64MiB)")
	f.logFormat = fs.String("log-format", "text", "log format: text or json")
	f.statusAddr = fs.String("status-addr", "127.0.0.1:7780", `serve /status and /metrics here ("" disables; port 0 picks a free one; other than loopback requires a token)`)
	f.statusToken = fs.String("status-token", "", "require this token of the status server's clients (bearer, or basic-auth password); the process list shows it: prefer --status-token-file or $RESYNC_STATUS_TOKEN")
	f.statusTokenFile = fs.String("status-token-file", "", "file holding the status server's token")
	f.pprof = fs.Bool("pprof", false, "serve Go's profiler on the status server under /debug/pprof/")
	f.heartbeat = fs.Duration("heartbeat-interval", time.Second, "how often the heartbeat key is written to the source")
	f.retryFor = fs.Duration("retry-for", task.DefaultRetryFor, "how long a lost source or target connection is retried before the task fails")
	f.ioTimeout = fs.Duration("io-timeout", dialer.DefaultIOTimeout, "a connection that answers nothing for this long is treated as lost (and retried)")
	f.delivery = fs.String("delivery", task.DeliveryExactlyOnce, "exactly-once: each batch and its checkpoint in one MULTI/EXEC on the target; at-least-once: no transactions (faster; after a fault up to a second of commands may apply twice)")
	f.sourceMode = fs.String("source-mode", task.SourcePSYNC, "psync: replicate (snapshot, then the command stream; exact); scan: for a source that refuses PSYNC, copy every key with SCAN and DUMP, then follow keyspace notifications (not exact: run resync verify after)")
	f.enableNotifications = fs.Bool("enable-notifications", false, "scan mode: let resync turn the source's keyspace notifications on (CONFIG SET notify-keyspace-events) when they are off")
	f.scanRate = fs.Int("scan-rate", 0, "scan mode: at most this many keys per second copied by the scan, to spare the source (0: no bound)")
	f.reset = fs.Bool("reset", false, "forget the task's checkpoints on the target and start with a full sync (the conflict rule applies again)")
	f.spoolDir = fs.String("spool-dir", filepath.Join(os.TempDir(), "resync-spool"), "where the stream waits on disk once --buffer-bytes of it wait in memory (a directory of its own, mode 0700, removed at exit)")
	spoolMax := byteSize(1 << 30)
	f.spoolMax = &spoolMax
	fs.Var(f.spoolMax, "spool-max", "bound on the spool files; when memory and spool are full, resync stops reading the source (back-pressure)")
	f.candidates = fs.String("source-candidates", "", "comma-separated host:port of the source's replicas: after a failover, resync follows whichever is master (with the source's credentials)")
	f.sentinels = fs.String("source-sentinel", "", "comma-separated host:port of Sentinels that monitor the source (with --source-master): resync asks them for the master")
	f.masterName = fs.String("source-master", "", "the name the Sentinels know the source's master by")
	f.targetSentinels = fs.String("target-sentinel", "", "comma-separated host:port of Sentinels that monitor a standalone target (with --target-master): after its failover resync writes to the master they name")
	f.targetMaster = fs.String("target-master", "", "the name the target's Sentinels know its master by")
	fs.Var(&f.memLimit, "memory-limit", "a soft bound on resync's memory: the garbage collector works harder near it (0: twice --buffer-bytes, four times --big-key-threshold, and 64MiB; $GOMEMLIMIT wins)")
	f.maxOps = fs.Int("target-max-ops", 0, "at most this many commands per second to each target node (0: no bound), to spare a production target")
	fs.Var(&f.maxBytes, "target-max-bytes", "at most this many bytes of commands per second to each target node, e.g. 50MiB (0: no bound)")
	f.sourceSentinelAuth = addSentinelAuthFlags(fs, "source")
	f.targetSentinelAuth = addSentinelAuthFlags(fs, "target")
	fs.Var(&f.skipCheck, "skip-check", "waive a precheck by name (repeatable, or comma-separated; resync check lists the names)")
	f.redactKeys = fs.Bool("redact-keys", false, "keep key names out of logs, errors and status: a key shows as a short hash of its name")
	f.progress = fs.String("progress", progressAuto, "the full sync's progress and the steady state: auto (bar on a terminal, else log), bar (redrawn in place), log (log lines), off")
	f.progressInterval = fs.Duration("progress-interval", 10*time.Second, "with log progress, how often a full sync's progress is logged (the steady state's summary: three times as seldom)")
	f.config = fs.String("config", "", "a TOML task file with these settings (flags given here win); see resync.example.toml")
	f.sel = addSelectionFlags(fs)
	f.load = addLoadFlags(fs)
	return fs, f
}

// runSync is "resync sync": full sync, then every write, until stopped.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSyncFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync sync:", err)
		return exitUsage
	}
	cmdline := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { cmdline[fl.Name] = true })
	warnings, ok := f.endpointsGiven(fs, "sync", stderr)
	if !ok {
		return exitUsage
	}
	mode, err := progressMode(*f.progress, stderr)
	if err != nil {
		return fail(err)
	}
	if *f.progressInterval <= 0 {
		return fail(fmt.Errorf("--progress-interval %s: want a positive duration", *f.progressInterval))
	}
	// With the bar, log lines go through the display, which keeps the
	// two from garbling each other.
	logOut := stderr
	var display *termDisplay
	if mode == progressBar {
		display = &termDisplay{out: stderr}
		logOut = display
	}
	log, err := newLogger(*f.logFormat, logOut)
	if err != nil {
		return fail(err)
	}
	cfg, err := f.taskConfig(log, warnings)
	if err != nil {
		return fail(err)
	}
	token, err := statusToken(*f.statusToken, *f.statusTokenFile, cmdline["status-token"], log)
	if err != nil {
		return fail(err)
	}
	pc := precheckConfig(f, cfg.Source, cfg.Target, cfg.Filter)
	if err := pc.Validate(); err != nil {
		return fail(err)
	}
	if addr := *f.statusAddr; addr != "" {
		if err := status.CheckListen(addr, token); err != nil {
			return fail(fmt.Errorf("--status-addr %s: %w", addr, err))
		}
	}
	// With Sentinels, the URLs may name a former master: check the one
	// they name now, as the task will use. (Sentinels locate a target
	// only when it is the task's one target.)
	targets := append([]dialer.Options{cfg.Target}, cfg.ExtraTargets...)
	pc.Source.Addr = locate(ctx, log, "source", pc.Source, cfg.SourceSentinelAuth, cfg.SourceSentinels, cfg.SourceMaster)
	targets[0].Addr = locate(ctx, log, "target", targets[0], cfg.TargetSentinelAuth, cfg.TargetSentinels, cfg.TargetMaster)
	setMemoryLimit(f, cfg, log)
	ok = runPrecheck(ctx, pc, targets, log, stderr)
	if ctx.Err() != nil {
		// Stopped during the checks: their failures say nothing.
		log.Info("stopped before the sync began")
		return exitOK
	}
	if !ok {
		return exitProblem
	}
	// Listening after the checks: a status port that answers is one
	// whose task runs.
	var ln net.Listener
	if addr := *f.statusAddr; addr != "" {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fail(fmt.Errorf("--status-addr %s: %w", addr, err))
		}
		// The source lists resync's link with the status port: no Redis
		// answers there, so a Sentinel sees a replica it cannot promote.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		cfg.AnnouncePort, _ = strconv.Atoi(port)
	}
	t := task.New(cfg)
	if ln != nil {
		// Up until the process exits: it reports stopped while draining.
		defer status.Serve(ln, t, log, status.Options{Token: token, Pprof: *f.pprof}).Close()
	}
	stopProgress := startProgress(ctx, t, mode, display, log, *f.progressInterval)
	err = t.Run(ctx)
	stopProgress()
	if err != nil {
		fmt.Fprintln(stderr, "resync sync: failed:", err)
		return exitFailed
	}
	return exitOK
}

// taskConfig builds the task's configuration from the flags (the task
// file applied, warnings its warnings, logged here): every endpoint read
// and checked, the first target as Target and the others as
// ExtraTargets. Its errors are usage errors.
func (f *syncFlags) taskConfig(log *slog.Logger, warnings []string) (task.Config, error) {
	src, dsts, err := f.endpoints(log, warnings)
	if err != nil {
		return task.Config{}, err
	}
	if *f.maxOps < 0 {
		return task.Config{}, fmt.Errorf("--target-max-ops %d: want 0 (no bound) or more", *f.maxOps)
	}
	if err := f.checkSourceMode(); err != nil {
		return task.Config{}, err
	}
	if *f.delivery != task.DeliveryExactlyOnce && *f.delivery != task.DeliveryAtLeastOnce {
		return task.Config{}, fmt.Errorf("--delivery %q: want %s or %s", *f.delivery, task.DeliveryExactlyOnce, task.DeliveryAtLeastOnce)
	}
	if (*f.sentinels == "") != (*f.masterName == "") {
		return task.Config{}, errors.New("--source-sentinel and --source-master go together")
	}
	if (*f.targetSentinels == "") != (*f.targetMaster == "") {
		return task.Config{}, errors.New("--target-sentinel and --target-master go together")
	}
	if *f.targetSentinels != "" && len(dsts) > 1 {
		// The Sentinels name one master: which of the targets it stands
		// for would be a guess.
		return task.Config{}, fmt.Errorf("--target-sentinel and --target-master locate one target, and %d are given: a target found through Sentinel must be the task's only one", len(dsts))
	}
	srcSentinel, err := f.sourceSentinelAuth.options(src)
	if err != nil {
		return task.Config{}, err
	}
	dstSentinel, err := f.targetSentinelAuth.options(dsts[0])
	if err != nil {
		return task.Config{}, err
	}
	cfg := task.Config{Name: *f.name, Source: src, Target: dsts[0], BufferBytes: int(*f.buffer),
		SourceSentinelAuth: srcSentinel, TargetSentinelAuth: dstSentinel,
		TargetMaxOps: *f.maxOps, TargetMaxBytes: int(f.maxBytes),
		HeartbeatInterval: *f.heartbeat, RetryFor: *f.retryFor, Delivery: *f.delivery, Reset: *f.reset,
		SourceMode: *f.sourceMode, EnableNotifications: *f.enableNotifications, ScanRate: *f.scanRate,
		SpoolDir: *f.spoolDir, SpoolMax: int64(*f.spoolMax), Logger: log,
		SourceCandidates: splitList(*f.candidates), SourceSentinels: splitList(*f.sentinels), SourceMaster: *f.masterName,
		TargetSentinels: splitList(*f.targetSentinels), TargetMaster: *f.targetMaster,
		RedactKeys: *f.redactKeys}
	if len(dsts) > 1 {
		cfg.ExtraTargets = dsts[1:]
	}
	if cfg.Filter, err = f.sel.config(); err != nil {
		return cfg, err
	}
	if err := f.load.apply(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// statusToken reads the status server's token: from its file, the
// environment, or (with a warning: the process list shows it) the
// command line.
func statusToken(token, file string, onCmdline bool, log *slog.Logger) (string, error) {
	const env = "RESYNC_STATUS_TOKEN"
	switch {
	case token != "" && file != "":
		return "", errors.New("--status-token and --status-token-file: give one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--status-token-file: %w", err)
		}
		if token = strings.TrimRight(string(b), "\r\n"); token == "" {
			return "", fmt.Errorf("--status-token-file %s is empty", file)
		}
	case token != "":
		if onCmdline {
			log.Warn("a status token on the command line shows in the process list: use --status-token-file or $" + env)
		}
	default:
		token = os.Getenv(env)
	}
	return token, nil
}

// newLogger logs to w as text or JSON.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: text or json", format)
}

// splitList reads a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// endpointsGiven applies the task file (--config), if any, and checks
// that a source and a target are given; it returns the file's warnings,
// and false (having said why) on a usage error.
func (f *syncFlags) endpointsGiven(fs *flag.FlagSet, cmd string, stderr io.Writer) ([]string, bool) {
	var warnings []string
	if *f.config != "" {
		var err error
		if warnings, err = applyConfig(fs, *f.config, f.source, f.target); err != nil {
			fmt.Fprintf(stderr, "resync %s: %v\n", cmd, err)
			return nil, false
		}
	}
	if !f.source.given() || !f.target.given() || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "resync %s: --source and --target are required (or a --config file giving them)\n", cmd)
		fs.Usage()
		return nil, false
	}
	return warnings, true
}

// endpoints logs the task file's warnings, then reads the source's and
// every target's options with their timeouts: the same for sync and
// check.
func (f *syncFlags) endpoints(log *slog.Logger, warnings []string) (src dialer.Options, dsts []dialer.Options, err error) {
	for _, w := range warnings {
		log.Warn(w)
	}
	if src, err = f.source.options(log); err != nil {
		return src, nil, err
	}
	if dsts, err = f.target.allOptions(log); err != nil {
		return src, nil, err
	}
	if *f.ioTimeout <= 0 {
		return src, nil, fmt.Errorf("--io-timeout %s: want a positive duration", *f.ioTimeout)
	}
	src.IOTimeout = *f.ioTimeout
	for i := range dsts {
		dsts[i].IOTimeout = *f.ioTimeout
	}
	return src, dsts, nil
}

// setMemoryLimit sets the runtime's soft memory limit, unless
// $GOMEMLIMIT does: without one, the heap may grow to twice what is live
// before a collection (a big key's copies in flight then cost double).
func setMemoryLimit(f *syncFlags, cfg task.Config, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(f.memLimit)
	if limit == 0 {
		limit = 2*int64(cfg.BufferBytes) + 4*int64(cfg.BigKeyBytes) + 64<<20
	}
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit", "bytes", limit)
}

// locate returns the address of the master that a side's Sentinels name
// (o's own when there are none, or when they cannot say: the task then
// says why).
func locate(ctx context.Context, log *slog.Logger, side string, o, auth dialer.Options, sentinels []string, name string) string {
	if len(sentinels) == 0 {
		return o.Addr
	}
	addr, err := task.AskSentinels(ctx, o, auth, sentinels, name)
	if err != nil {
		log.Warn("the "+side+"'s Sentinels do not say where its master is: checking the --"+side+" URL's", "err", err)
		return o.Addr
	}
	return addr
}

// runPrecheck runs the precheck before a sync, once for each target (c
// with that target): every warning and failure logged with its fix, a
// summary, and false when a check failed (the sync does not start).
// With several targets each result names the targets it was found for,
// and one found alike for several (a source's check, mostly) is logged
// once.
func runPrecheck(ctx context.Context, c precheck.Config, targets []dialer.Options, log *slog.Logger, stderr io.Writer) bool {
	type found struct {
		r       precheck.Result
		targets []string
	}
	var results []*found
	seen := map[precheck.Result]*found{}
	for _, dst := range targets {
		c.Target = dst
		rep := precheck.Run(ctx, c)
		if ctx.Err() != nil {
			return false // stopped: the caller says so
		}
		for _, r := range rep.Results {
			// Merged across targets only: a result given twice for one
			// target stays twice, as in its report.
			if x := seen[r]; x != nil && !slices.Contains(x.targets, dst.Addr) {
				x.targets = append(x.targets, dst.Addr)
				continue
			}
			x := &found{r: r, targets: []string{dst.Addr}}
			seen[r] = x
			results = append(results, x)
		}
	}
	var failed []string
	var passed, warnings, fails int
	for _, x := range results {
		r := x.r
		attrs := []any{"check", r.Check, "node", r.Node}
		if len(targets) > 1 {
			attrs = append(attrs, "target", strings.Join(x.targets, ","))
		}
		attrs = append(attrs, "why", r.Why)
		if r.Fix != "" {
			attrs = append(attrs, "fix", r.Fix)
		}
		switch r.Verdict {
		case precheck.Pass:
			passed++
		case precheck.Fail:
			fails++
			log.Error("precheck FAIL", attrs...)
			name := r.Check
			if len(targets) > 1 {
				name += " for target " + strings.Join(x.targets, " and ")
			}
			if !slices.Contains(failed, name) {
				failed = append(failed, name)
			}
		case precheck.Warn:
			warnings++
			log.Warn("precheck WARN", attrs...)
		}
	}
	summary := []any{"passed", passed, "warnings", warnings, "failed", fails}
	if len(targets) > 1 {
		summary = append(summary, "targets", len(targets))
	}
	log.Info("precheck", summary...)
	if len(failed) > 0 {
		report := `"resync check" prints the whole report`
		if len(targets) > 1 {
			report = `"resync check --target URL" prints one target's whole report`
		}
		fmt.Fprintf(stderr, "resync sync: the precheck failed (%s): fix what it says, or waive a check with --skip-check NAME; %s\n", strings.Join(failed, ", "), report)
		return false
	}
	return true
}

// sentinelAuthFlags say how to log in to one side's Sentinels.
type sentinelAuthFlags struct {
	side           string
	user, password *string
	tls            *bool
}

func addSentinelAuthFlags(fs *flag.FlagSet, side string) sentinelAuthFlags {
	return sentinelAuthFlags{side: side,
		user:     fs.String(side+"-sentinel-user", "", "the ACL user to log in to the "+side+"'s Sentinels as (default: none)"),
		password: fs.String(side+"-sentinel-password-file", "", "file holding the password of the "+side+"'s Sentinels (their requirepass)"),
		tls:      fs.Bool(side+"-sentinel-tls", false, "reach the "+side+"'s Sentinels over TLS, with the "+side+"'s TLS settings (--"+side+"-tls-*)")}
}

// options builds the Sentinels' login; side is the side's own options,
// whose TLS settings a TLS Sentinel shares.
func (a sentinelAuthFlags) options(side dialer.Options) (dialer.Options, error) {
	o := dialer.Options{Username: *a.user}
	if *a.password != "" {
		b, err := os.ReadFile(*a.password)
		if err != nil {
			return o, fmt.Errorf("--%s-sentinel-password-file: %w", a.side, err)
		}
		if o.Password = strings.TrimRight(string(b), "\r\n"); o.Password == "" {
			return o, fmt.Errorf("--%s-sentinel-password-file %s is empty", a.side, *a.password)
		}
	}
	if *a.tls {
		o.TLS = &dialer.TLS{}
		if side.TLS != nil {
			t := *side.TLS
			t.ServerName = "" // a Sentinel has a name of its own
			o.TLS = &t
		}
	}
	return o, nil
}

// checkSourceMode checks --source-mode and --scan-rate, for sync and
// check alike.
func (f *syncFlags) checkSourceMode() error {
	if *f.sourceMode != task.SourcePSYNC && *f.sourceMode != task.SourceScan {
		return fmt.Errorf("--source-mode %q: want %s or %s", *f.sourceMode, task.SourcePSYNC, task.SourceScan)
	}
	if *f.scanRate < 0 {
		return fmt.Errorf("--scan-rate %d: want 0 (no bound) or more", *f.scanRate)
	}
	return nil
}
