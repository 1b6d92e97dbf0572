package main

import (
	"context"
	"io"
)

// runStatus is "resync status"; it comes with a later issue.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "status")
}
