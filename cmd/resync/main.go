// Command resync keeps a target Redis in step with a source Redis: a full
// copy first, then every write as it happens.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by every subcommand (DESIGN.md).
const (
	exitOK      = 0
	exitProblem = 1 // a check or comparison found a problem
	exitUsage   = 2 // bad usage or configuration
	exitFailed  = 3 // the task failed at run time, or status found no task
)

// command is one subcommand: its name, a one-line summary, and what runs it.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"sync", "full sync, then every write as it happens, until stopped", runSync},
		{"check", "the precheck alone: is the setup fit to sync?", runCheck},
		{"verify", "compare (and repair) the source and target data sets", runVerify},
		{"decode", "print an RDB file as JSON lines", runDecode},
		{"dump", "snapshot a running source into an RDB file", runDump},
		{"restore", "load an RDB file into a target", runRestore},
		{"status", "show a running task's state", runStatus},
		{"bench", "measure resync against the machine's limits", runBench},
		{"demo", "start throwaway local servers and show resync at work", runDemo},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "resync: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: resync <command> [options]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n\"resync <command> -h\" lists a command's options.")
}
