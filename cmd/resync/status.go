package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/resync/resync/internal/status"
)

// runStatus is "resync status": a running task's state, for a person.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("status-addr", "127.0.0.1:7780", "the task's status server")
	output := fs.String("output", "text", "text, or json (the /status document as is)")
	tokenFile := fs.String("status-token-file", "", "file holding the task's status token (else $RESYNC_STATUS_TOKEN)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return exitUsage
	}
	token, err := statusToken("", *tokenFile, false, nil)
	if err != nil {
		fmt.Fprintln(stderr, "resync status:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+*addr+"/status", nil)
	if err != nil {
		fmt.Fprintln(stderr, "resync status:", err)
		return exitUsage
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "resync status: no task answers at %s: %v\n", *addr, err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusUnauthorized {
		fmt.Fprintf(stderr, "resync status: %s wants the task's status token: --status-token-file or $RESYNC_STATUS_TOKEN\n", *addr)
		return exitFailed
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "resync status: %s answered %s %v\n", *addr, resp.Status, err)
		return exitFailed
	}
	if *output == "json" {
		stdout.Write(body)
		return exitOK
	}
	var d status.Doc
	if err := json.Unmarshal(body, &d); err != nil {
		fmt.Fprintf(stderr, "resync status: %s: %v\n", *addr, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "task %s: %s (%s), lag %s\n", d.Name, d.State, d.Mode, ms(d.LagMs))
	for _, s := range d.Shards {
		fmt.Fprintf(stdout, "  source %s  replid %s  received %d  applied %d  (%d behind)\n",
			s.Source, s.ReplID, s.ReceivedOffset, s.AppliedOffset, s.ReceivedOffset-s.AppliedOffset)
		total := "size not announced (diskless)"
		if s.FullSync.RDBBytesTotal != nil {
			total = fmt.Sprintf("of %d", *s.FullSync.RDBBytesTotal)
		}
		fmt.Fprintf(stdout, "    full sync: %d keys written, %d snapshot bytes %s\n", s.FullSync.KeysWritten, s.FullSync.RDBBytesReceived, total)
	}
	for _, t := range d.Targets {
		fmt.Fprintf(stdout, "  target %s  %s  lag %s", t.Address, t.State, ms(t.LagMs))
		if t.LastError != "" {
			fmt.Fprintf(stdout, "  last error: %s", t.LastError)
		}
		fmt.Fprintln(stdout)
	}
	return exitOK
}

func ms(v *int64) string {
	if v == nil {
		return "unknown"
	}
	return fmt.Sprintf("%d ms", *v)
}
