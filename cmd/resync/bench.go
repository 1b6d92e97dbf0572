package main

import (
	"context"
	"io"
)

// runBench is "resync bench"; it comes with a later issue.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "bench")
}
