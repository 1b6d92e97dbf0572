package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/resync/resync/internal/task"
)

// runRestore is "resync restore FILE.rdb --target URL": it loads an RDB
// file (any version, 1 to 12) with the full sync's writer, conflict rule,
// selection, filters and rewrites.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := addEndpointFlags(fs, "target", false)
	logFormat := fs.String("log-format", "text", "log format: text or json")
	output := fs.String("output", "text", "the summary's format: text or json")
	config := fs.String("config", "", "a TOML task file (a sync's: its target, selection, filters and load settings apply); flags given here win")
	sel := addSelectionFlags(fs)
	load := addLoadFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: resync restore FILE.rdb|- --target URL [options]")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync restore:", err)
		return exitUsage
	}
	var warnings []string
	if *config != "" {
		if warnings, err = applyConfig(fs, *config, nil, target); err != nil {
			return fail(err)
		}
	}
	if len(files) != 1 || !target.given() {
		fmt.Fprintln(stderr, "resync restore: one FILE.rdb (or - for stdin) and --target are required")
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
	dst, err := target.options(log)
	if err != nil {
		return fail(err)
	}
	cfg := task.Config{Name: "restore", Target: dst, Logger: log}
	if cfg.Filter, err = sel.config(); err == nil {
		err = load.apply(&cfg)
	}
	if err != nil {
		return fail(err)
	}
	in, size := io.Reader(os.Stdin), int64(-1)
	if files[0] != "-" {
		f, err := os.Open(files[0])
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	t := task.New(cfg)
	start := time.Now()
	err = t.Restore(ctx, in, size)
	st := t.Status()
	sum := restoreSummary{File: files[0], Target: dst.Addr, Keys: st.KeysWritten, Filtered: st.KeysFiltered,
		EmptySkipped: st.KeysEmpty, Rewritten: st.KeysRewritten, BigKeys: st.BigKeys, Dropped: st.Dropped,
		Bytes: st.RDBBytes, Seconds: time.Since(start).Seconds()}
	if err != nil {
		sum.Error = err.Error()
	}
	if *output == "json" {
		json.NewEncoder(stdout).Encode(sum)
	} else {
		fmt.Fprintf(stdout, "%s → %s: %d keys written (%d rewritten as commands, %d big in chunks), %d filtered out, %d empty skipped, %d dropped as unsupported; %d bytes read in %.1fs\n",
			sum.File, sum.Target, sum.Keys, sum.Rewritten, sum.BigKeys, sum.Filtered, sum.EmptySkipped, sum.Dropped, sum.Bytes, sum.Seconds)
	}
	if err != nil {
		fmt.Fprintln(stderr, "resync restore: failed:", err)
		return exitFailed
	}
	return exitOK
}

type restoreSummary struct {
	File         string  `json:"file"`
	Target       string  `json:"target"`
	Keys         int64   `json:"keys_written"`
	Filtered     int64   `json:"keys_filtered"`
	EmptySkipped int64   `json:"empty_skipped"`
	Rewritten    int64   `json:"keys_rewritten"`
	BigKeys      int64   `json:"big_keys"`
	Dropped      int64   `json:"dropped"`
	Bytes        int64   `json:"rdb_bytes"`
	Seconds      float64 `json:"seconds"`
	Error        string  `json:"error,omitempty"`
}

// parseInterspersed parses flags given before and after the positional
// arguments ("restore FILE --target URL"), and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
