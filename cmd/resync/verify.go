package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/verify"
)

// runVerify is "resync verify": compare the target with the source (and
// repair what differs). Exit 0 when equal, 1 when not.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	source, target := addEndpointFlags(fs, "source", false), addEndpointFlags(fs, "target", false)
	config := fs.String("config", "", "a TOML task file (a sync's: its selection and filters apply); flags given here win")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	output := fs.String("output", "text", "the report's format: text or json")
	reverse := fs.Bool("reverse", false, "also find keys only the target has")
	rounds := fs.Int("rounds", verify.DefaultRounds, "compare a differing key this many times in all before reporting it (a running sync's keys in flight agree in a later round)")
	roundDelay := fs.Duration("round-delay", verify.DefaultRoundDelay, "pause before the second round (doubled for each later one)")
	ttlTolerance := fs.Duration("ttl-tolerance", 2*time.Second, "how far two TTLs may differ")
	sample := fs.String("sample", "", "compare a random sample: a number of keys (10000) or a percentage (1%)")
	maxReport := fs.Int("max-report", verify.DefaultMaxReport, "differences listed on the terminal")
	reportFile := fs.String("report", "", "write every difference to this file, one JSON line each")
	repair := fs.Bool("repair", false, "copy each differing key from the source again (and delete target-only keys with --reverse), then compare them again")
	rate := fs.Int("rate", 0, "at most this many keys read per second from the source (0: no cap)")
	workers := fs.Int("workers", 4, "batches compared at once, each on its own connections")
	batch := fs.Int("batch", 256, "keys per pipelined batch")
	sel := addSelectionFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: resync verify --source URL --target URL [options]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync verify:", err)
		return exitUsage
	}
	var warnings []string
	if *config != "" {
		var err error
		if warnings, err = applyConfig(fs, *config, source, target); err != nil {
			return fail(err)
		}
	}
	if !source.given() || !target.given() || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "resync verify: --source and --target are required (or a --config file giving them)")
		fs.Usage()
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		return fail(fmt.Errorf("--output %q: text or json", *output))
	}
	if *rounds < 1 || *maxReport < 0 || *rate < 0 || *workers < 1 || *batch < 1 {
		return fail(fmt.Errorf("--rounds, --workers and --batch must be at least 1; --max-report and --rate not negative"))
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		return fail(err)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	o := verify.Options{Rounds: *rounds, RoundDelay: *roundDelay, Repair: *repair, MaxReport: *maxReport, Logger: log,
		Compare: compare.Options{Reverse: *reverse, TTLTolerance: *ttlTolerance, Rate: *rate, Workers: *workers, Batch: *batch}}
	if o.Source, err = source.options(log); err != nil {
		return fail(err)
	}
	if o.Target, err = target.options(log); err != nil {
		return fail(err)
	}
	if o.Filter, err = sel.config(); err != nil {
		return fail(err)
	}
	if *sample != "" {
		if o.Compare.SampleKeys, o.Compare.Sample, err = parseSample(*sample); err != nil {
			return fail(err)
		}
	}
	if *maxReport == 0 {
		o.MaxReport = -1 // none listed; 0 would mean the default
	}
	if *reportFile != "" {
		f, err := os.Create(*reportFile)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		o.Report = f
	}
	o.Progress = func(keys, diffs int64) {
		log.Info("verify progress", "keys", keys, "differences", diffs)
	}
	sum, err := verify.Run(ctx, o)
	if err != nil {
		if sum != nil && *output == "json" {
			json.NewEncoder(stdout).Encode(struct {
				*verify.Summary
				Error string `json:"error"`
			}{sum, err.Error()})
		}
		fmt.Fprintln(stderr, "resync verify: failed:", err)
		return exitFailed
	}
	if *output == "json" {
		json.NewEncoder(stdout).Encode(sum)
	} else {
		printSummary(stdout, sum, *reportFile, *reverse)
	}
	if !sum.Equal {
		return exitProblem
	}
	return exitOK
}

// parseSample reads --sample: a count of keys or a percentage.
func parseSample(s string) (keys int64, fraction float64, err error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, 0, fmt.Errorf("--sample %q: a percentage is over 0 and at most 100", s)
		}
		return 0, f / 100, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("--sample %q: a number of keys (10000) or a percentage (1%%)", s)
	}
	return n, 0, nil
}

// printSummary writes the report a person reads.
func printSummary(w io.Writer, s *verify.Summary, reportFile string, reverse bool) {
	verdict := "EQUAL"
	if s.Differences > 0 {
		verdict = "NOT EQUAL"
		if s.Repaired != nil && s.Equal {
			verdict = "REPAIRED"
		}
	}
	fmt.Fprintf(w, "verify %s → %s: %s\n", s.Source, s.Target, verdict)
	fmt.Fprintf(w, "  %d source keys compared", s.Keys)
	if reverse {
		fmt.Fprintf(w, ", %d target keys looked up on the source", s.TargetKeys)
	}
	fmt.Fprintf(w, " (%.0f keys/s); %.1fs in all\n", s.KeysPerSec, s.Seconds)
	if s.Sample != "" {
		fmt.Fprintf(w, "  a sample: %s; the other keys were not compared\n", s.Sample)
	}
	fmt.Fprintf(w, "  %d differences after %d round(s)", s.Differences, s.Rounds)
	if n := s.FirstRound - s.Differences; n > 0 {
		fmt.Fprintf(w, " (%d more in the first round agreed later: in flight)", n)
	}
	fmt.Fprintln(w)
	if s.Differences > 0 {
		fmt.Fprintf(w, "  missing %d, extra %d, type %d, value %d, ttl %d\n", s.Missing, s.Extra, s.Type, s.Value, s.TTL)
		for _, d := range s.Diffs {
			note := ""
			if d.Repaired != nil {
				note = " [repaired]"
				if !*d.Repaired {
					note = " [still differs]"
				}
			}
			fmt.Fprintf(w, "  %s%s\n", d, note)
		}
		if more := s.Differences - int64(len(s.Diffs)); more > 0 {
			where := "--report FILE lists them all"
			if reportFile != "" {
				where = "all are in " + reportFile
			}
			fmt.Fprintf(w, "  … and %d more (%s)\n", more, where)
		}
	}
	if r := s.Repaired; r != nil {
		fmt.Fprintf(w, "  repair: %d keys copied from the source again, %d deleted from the target; %d still differ\n",
			r.Copied, r.Deleted, r.StillDiffs)
	}
}
