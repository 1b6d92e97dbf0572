package main

import (
	"context"
	"io"
)

// runSync is "resync sync"; it comes with a later issue.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "sync")
}
