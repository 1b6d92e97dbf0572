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
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
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
	candidates, sentinels, masterName   *string
	targetSentinels, targetMaster       *string
	spoolMax                            *byteSize
	reset                               *bool
	sel                                 *selectionFlags
	load                                *loadFlags
}

// newSyncFlags defines resync sync's options; other commands read a sync
// task file through it too, to tell its settings from mistakes.
func newSyncFlags(stderr io.Writer) (*flag.FlagSet, *syncFlags) {
	fs := flag.NewFlagSet("resync sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &syncFlags{source: addEndpointFlags(fs, "source"), target: addEndpointFlags(fs, "target")}
	f.name = fs.String("name", "default", "the task's name (in logs, status and the heartbeat key)")
	buffer := byteSize(64 << 20)
	f.buffer = &buffer
	fs.Var(f.buffer, "buffer-bytes", "bound on the commands received and not yet written (e.g. 64MiB)")
	f.logFormat = fs.String("log-format", "text", "log format: text or json")
	f.statusAddr = fs.String("status-addr", "127.0.0.1:7780", `serve /status and /metrics here ("" disables; port 0 picks a free one)`)
	f.heartbeat = fs.Duration("heartbeat-interval", time.Second, "how often the heartbeat key is written to the source")
	f.retryFor = fs.Duration("retry-for", task.DefaultRetryFor, "how long a lost source or target connection is retried before the task fails")
	f.ioTimeout = fs.Duration("io-timeout", dialer.DefaultIOTimeout, "a connection that answers nothing for this long is treated as lost (and retried)")
	f.delivery = fs.String("delivery", task.DeliveryExactlyOnce, "exactly-once: each batch and its checkpoint in one MULTI/EXEC on the target; at-least-once: no transactions (faster; after a fault up to a second of commands may apply twice)")
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
	f.config = fs.String("config", "", "a TOML task file with these settings (flags given here win)")
	f.sel = addSelectionFlags(fs)
	f.load = addLoadFlags(fs)
	return fs, f
}

// runSync is "resync sync": full sync, then every write, until stopped.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSyncFlags(stderr)
	source, target, name, buffer, logFormat, statusAddr, heartbeat, config, sel, load :=
		f.source, f.target, f.name, f.buffer, f.logFormat, f.statusAddr, f.heartbeat, f.config, f.sel, f.load
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync sync:", err)
		return exitUsage
	}
	if *config != "" {
		if err := applyConfig(fs, *config, source, target); err != nil {
			return fail(err)
		}
	}
	if *source.url == "" || *target.url == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "resync sync: --source and --target are required (or a --config file giving them)")
		fs.Usage()
		return exitUsage
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		return fail(err)
	}
	src, err := source.options(log)
	if err != nil {
		return fail(err)
	}
	dst, err := target.options(log)
	if err != nil {
		return fail(err)
	}
	if *f.delivery != task.DeliveryExactlyOnce && *f.delivery != task.DeliveryAtLeastOnce {
		return fail(fmt.Errorf("--delivery %q: want %s or %s", *f.delivery, task.DeliveryExactlyOnce, task.DeliveryAtLeastOnce))
	}
	if *f.ioTimeout <= 0 {
		return fail(fmt.Errorf("--io-timeout %s: want a positive duration", *f.ioTimeout))
	}
	src.IOTimeout, dst.IOTimeout = *f.ioTimeout, *f.ioTimeout
	if (*f.sentinels == "") != (*f.masterName == "") {
		return fail(errors.New("--source-sentinel and --source-master go together"))
	}
	if (*f.targetSentinels == "") != (*f.targetMaster == "") {
		return fail(errors.New("--target-sentinel and --target-master go together"))
	}
	cfg := task.Config{Name: *name, Source: src, Target: dst, BufferBytes: int(*buffer),
		HeartbeatInterval: *heartbeat, RetryFor: *f.retryFor, Delivery: *f.delivery, Reset: *f.reset,
		SpoolDir: *f.spoolDir, SpoolMax: int64(*f.spoolMax), Logger: log,
		SourceCandidates: splitList(*f.candidates), SourceSentinels: splitList(*f.sentinels), SourceMaster: *f.masterName,
		TargetSentinels: splitList(*f.targetSentinels), TargetMaster: *f.targetMaster}
	if cfg.Filter, err = sel.config(); err == nil {
		err = load.apply(&cfg)
	}
	if err != nil {
		return fail(err)
	}
	var ln net.Listener
	if *statusAddr != "" {
		if ln, err = net.Listen("tcp", *statusAddr); err != nil {
			fmt.Fprintf(stderr, "resync sync: --status-addr %s: %v\n", *statusAddr, err)
			return exitUsage
		}
		// The source lists resync's link with the status port: no Redis
		// answers there, so a Sentinel sees a replica it cannot promote.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		cfg.AnnouncePort, _ = strconv.Atoi(port)
	}
	t := task.New(cfg)
	if ln != nil {
		// Up until the process exits: it reports stopped while draining.
		defer status.Serve(ln, t, log, status.Options{}).Close()
	}
	if err := t.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "resync sync: failed:", err)
		return exitFailed
	}
	return exitOK
}

// endpoint reads a URL and the password that goes with it: from a file,
// the environment, or (with a warning: the process list shows it) the URL.
func endpoint(side, url, pwFile, pwEnv string, log *slog.Logger) (dialer.Options, error) {
	o, err := dialer.ParseURL(url)
	if err != nil {
		return o, fmt.Errorf("--%s: %w", side, err)
	}
	switch {
	case pwFile != "":
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return o, fmt.Errorf("--%s-password-file: %w", side, err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
		if o.Password == "" {
			return o, errors.New("--" + side + "-password-file is empty")
		}
	case os.Getenv(pwEnv) != "":
		o.Password = os.Getenv(pwEnv)
	case o.Password != "":
		log.Warn("a password in a URL on the command line shows in the process list: use --" + side + "-password-file or $" + pwEnv)
	}
	return o, nil
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
