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
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/status"
	"github.com/resync/resync/internal/task"
)

// runSync is "resync sync": full sync, then every write, until stopped.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", "", "source URL: redis://[user[:password]@]host:port")
	target := fs.String("target", "", "target URL")
	name := fs.String("name", "default", "the task's name (in logs, status and the heartbeat key)")
	srcPwFile := fs.String("source-password-file", "", "file holding the source's password (else $RESYNC_SOURCE_PASSWORD)")
	dstPwFile := fs.String("target-password-file", "", "file holding the target's password (else $RESYNC_TARGET_PASSWORD)")
	buffer := fs.Int("buffer-bytes", 64<<20, "bound on the commands received and not yet written")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	statusAddr := fs.String("status-addr", "127.0.0.1:7780", `serve /status and /metrics here ("" disables; port 0 picks a free one)`)
	heartbeat := fs.Duration("heartbeat-interval", time.Second, "how often the heartbeat key is written to the source")
	config := fs.String("config", "", "a TOML task file with these settings (flags given here win)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *config != "" {
		f, err := readTaskFile(*config)
		if err != nil {
			fmt.Fprintln(stderr, "resync sync:", err)
			return exitUsage
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		fill := func(name string, dst *string, v string) {
			if !set[name] && v != "" {
				*dst = v
			}
		}
		fill("name", name, f.Name)
		fill("log-format", logFormat, f.LogFormat)
		fill("source", source, f.Source.URL)
		fill("source-password-file", srcPwFile, f.Source.PasswordFile)
		if len(f.Target) == 1 {
			fill("target", target, f.Target[0].URL)
			fill("target-password-file", dstPwFile, f.Target[0].PasswordFile)
		}
		if f.StatusAddr != nil && !set["status-addr"] {
			*statusAddr = *f.StatusAddr
		}
		if f.HeartbeatInterval.Duration > 0 && !set["heartbeat-interval"] {
			*heartbeat = f.HeartbeatInterval.Duration
		}
		if f.BufferBytes > 0 && !set["buffer-bytes"] {
			*buffer = f.BufferBytes
		}
	}
	if *source == "" || *target == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "resync sync: --source and --target are required (or a --config file giving them)")
		fs.Usage()
		return exitUsage
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, nil)
	} else if *logFormat != "text" {
		fmt.Fprintf(stderr, "resync sync: --log-format %q: text or json\n", *logFormat)
		return exitUsage
	}
	log := slog.New(handler)
	src, err := endpoint("source", *source, *srcPwFile, "RESYNC_SOURCE_PASSWORD", log)
	if err != nil {
		fmt.Fprintln(stderr, "resync sync:", err)
		return exitUsage
	}
	dst, err := endpoint("target", *target, *dstPwFile, "RESYNC_TARGET_PASSWORD", log)
	if err != nil {
		fmt.Fprintln(stderr, "resync sync:", err)
		return exitUsage
	}
	cfg := task.Config{Name: *name, Source: src, Target: dst, BufferBytes: *buffer,
		HeartbeatInterval: *heartbeat, Logger: log}
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
		defer status.Serve(ln, t, log).Close()
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
