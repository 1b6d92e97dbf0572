package main

import (
	"context"
	"io"
)

// runDump is "resync dump"; it comes with a later issue.
func runDump(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "dump")
}
