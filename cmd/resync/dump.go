package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/resync/resync/internal/receiver"
	"github.com/resync/resync/internal/snapshot"
)

// runDump is "resync dump --source URL -o FILE.rdb": a snapshot of a
// running source over the replication protocol, checked (structure and
// checksum) before the file takes its name.
func runDump(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := addEndpointFlags(fs, "source", false)
	out := fs.String("o", "", "the RDB file to write")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	output := fs.String("output", "text", "the summary's format: text or json")
	config := fs.String("config", "", "a TOML task file (a sync's: its source applies); flags given here win")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync dump:", err)
		return exitUsage
	}
	var warnings []string
	if *config != "" {
		var err error
		if warnings, err = applyConfig(fs, *config, source, nil); err != nil {
			return fail(err)
		}
	}
	if !source.given() || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "resync dump: --source (or a --config file giving it) and -o FILE.rdb are required")
		fs.Usage()
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		return fail(fmt.Errorf("--output %q: text or json", *output))
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		return fail(err)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	src, err := source.options(log)
	if err != nil {
		return fail(err)
	}
	// Written beside the file under a temporary name: a failed or
	// interrupted dump never leaves a truncated FILE.rdb behind.
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".partial-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	start := time.Now()
	info, err := snapshot.Take(ctx, receiver.Options{Source: src, Logger: log}, tmp, func(n, total int64) {
		if total > 0 {
			log.Info("receiving", "bytes", n, "total", total, "percent", fmt.Sprintf("%.1f", 100*float64(n)/float64(total)))
		} else {
			log.Info("receiving", "bytes", n, "total", "unknown (diskless)")
		}
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), *out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "resync dump: failed:", err)
		return exitFailed
	}
	secs := time.Since(start).Seconds()
	checksum := "verified"
	if info.Version < 5 {
		checksum = "none (RDB before version 5 has none)"
	}
	if *output == "json" {
		json.NewEncoder(stdout).Encode(map[string]any{"file": *out, "source": src.Addr, "bytes": info.Bytes,
			"keys": info.Keys, "rdb_version": info.Version, "replid": info.ReplID, "offset": info.Offset,
			"checksum": checksum, "seconds": secs})
	} else {
		fmt.Fprintf(stdout, "%s: %d bytes, %d keys, RDB version %d, checksum %s; source %s at replid %s offset %d; %.1fs\n",
			*out, info.Bytes, info.Keys, info.Version, checksum, src.Addr, info.ReplID, info.Offset, secs)
	}
	return exitOK
}
