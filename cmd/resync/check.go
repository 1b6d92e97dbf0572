package main

import (
	"context"
	"io"
)

// runCheck is "resync check"; it comes with a later issue.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "check")
}
