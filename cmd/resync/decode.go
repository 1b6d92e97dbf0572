package main

import (
	"context"
	"io"
)

// runDecode is "resync decode"; it comes with a later issue.
func runDecode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notImplemented(stderr, "decode")
}
