package main

import (
	"context"
	"io"
)

// runVerify is "resync verify"; it comes with a later issue.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "verify")
}
