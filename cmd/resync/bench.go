package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/resync/resync/internal/bench"
	"github.com/resync/resync/internal/redisproc"
)

// runBench is "resync bench": it starts throwaway servers, builds a data
// set and measures resync (this very binary, run as a subprocess) against
// the machine's limits, then prints the figures as a table or JSON.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.Int("keys", bench.DefaultKeys, "the data set's 64-byte strings; 10-field hashes, 10-element lists, 10-member sets and zsets number a tenth of it each")
	big := fs.Bool("big", false, "also sync a data set of big keys (a hash of 2M fields, a list of 2M elements, a 64 MiB string): resync's time and peak RSS beside a native replica's")
	runs := fs.Int("runs", bench.DefaultRuns, "how many times each figure is measured (the median is reported)")
	only := listFlag{split: true}
	fs.Var(&only, "only", "measure only these parts (comma-separated): full, incremental, cluster, memory")
	requests := fs.Int("bench-requests", bench.DefaultBenchRequests, "redis-benchmark -n of the heavy load (-P 16 -c 50)")
	moderate := fs.Int("moderate-requests", bench.DefaultModerateRequests, "redis-benchmark -n of the moderate load (-P 1 -c 10)")
	bin := fs.String("redis-server", os.Getenv("REDIS_SERVER"), "redis-server binary (default: $REDIS_SERVER, else from PATH); redis-cli and redis-benchmark are taken from its directory, else from PATH")
	output := fs.String("output", "text", "the report's format: text (a table) or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync bench:", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *output != "text" && *output != "json" {
		return fail(fmt.Errorf("--output %q: text or json", *output))
	}
	server, err := redisproc.FindBinary(*bin)
	if err != nil {
		return fail(err)
	}
	// The resync under test is this binary.
	self, err := os.Executable()
	if err != nil {
		return fail(fmt.Errorf("cannot find resync's own binary: %w", err))
	}
	cfg := bench.Config{RedisServer: server, Resync: []string{self},
		Keys: *keys, Big: *big, Runs: *runs, Parts: only.values,
		BenchRequests: *requests, ModerateRequests: *moderate, Progress: stderr}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "resync bench:", err)
		var ce *bench.ConfigError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailed
	}
	if *output == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "resync bench:", err)
		return exitFailed
	}
	return exitOK
}
