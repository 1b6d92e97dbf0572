package main

import (
	"context"
	"io"
)

// runRestore is "resync restore"; it comes with a later issue.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "restore")
}
