package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/precheck"
	"github.com/resync/resync/internal/task"
)

// runCheck is "resync check": the precheck alone. It takes resync sync's
// options, so that a sync's command line or task file is checked as it
// stands. Exit 0 when every check passed or only warned, 1 when one
// failed, 2 on bad usage.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSyncFlags(stderr)
	fs.Init("resync check", flag.ContinueOnError)
	output := fs.String("output", "text", "the report's format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: resync check --source URL --target URL [resync sync's options]\n\nOne target at a time: resync sync checks each of its targets before it starts.")
		fmt.Fprintln(stderr, "\nThe checks (--skip-check NAME waives one; not reachable or auth):\n  "+strings.Join(precheck.Names(), ", ")+"\n\noptions:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "resync check:", err)
		return exitUsage
	}
	warnings, ok := f.endpointsGiven(fs, "check", stderr)
	if !ok {
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		return fail(fmt.Errorf("--output %q: text or json", *output))
	}
	log, err := newLogger(*f.logFormat, stderr)
	if err != nil {
		return fail(err)
	}
	src, dsts, err := f.endpoints(log, warnings)
	if err != nil {
		return fail(err)
	}
	if len(dsts) > 1 {
		// One report is about one pair; resync sync checks each target.
		return fail(fmt.Errorf("%d targets given: resync check checks one target at a time (--target URL, which replaces a task file's [[target]] tables; resync sync checks every target before it starts)", len(dsts)))
	}
	dst := dsts[0]
	fc, err := f.sel.config()
	if err == nil {
		// The load flags are checked as sync checks them: a mistake there
		// is one here too.
		err = f.load.apply(&task.Config{})
	}
	if err == nil {
		err = f.checkSourceMode()
	}
	if err != nil {
		return fail(err)
	}
	cfg := precheckConfig(f, src, dst, fc)
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	rep := precheck.Run(ctx, cfg)
	if ctx.Err() != nil {
		// Interrupted: the checks cut short say nothing of the setup.
		fmt.Fprintln(stderr, "resync check: stopped before the checks ended")
		return exitFailed
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "resync check:", err)
			return exitFailed
		}
	} else {
		rep.WriteText(stdout)
	}
	if rep.Failed() {
		return exitProblem
	}
	return exitOK
}

// precheckConfig is the precheck of a sync's settings: the endpoints as
// the flags give them (options), the selection (selectionFlags.config),
// and the task's name, conflict rule, reset, drop and waived checks.
func precheckConfig(f *syncFlags, src, dst dialer.Options, fc filter.Config) precheck.Config {
	return precheck.Config{Source: src, Target: dst, Name: *f.name, Filter: fc,
		OnConflict: *f.load.onConflict, Reset: *f.reset, DropUnsupported: *f.load.drop,
		Skip: f.skipCheck.values, ScanMode: *f.sourceMode == task.SourceScan, EnableNotifications: *f.enableNotifications}
}
