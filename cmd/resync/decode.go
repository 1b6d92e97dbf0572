package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/resync/resync/internal/rdbjson"
)

// runDecode is "resync decode FILE.rdb": the file's keys as JSON lines.
func runDecode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: resync decode [options] FILE.rdb   (- reads standard input)")
		fmt.Fprintln(stderr, "\nPrints one JSON object per key: db, key, type, expire_ms, value.")
		fs.PrintDefaults()
	}
	var o rdbjson.Options
	dbs := fs.String("dbs", "", "only these databases, comma-separated (e.g. 0,3)")
	fs.Func("allow-key-prefix", "only keys starting with this prefix (repeatable)", func(p string) error {
		o.AllowKeyPrefixes = append(o.AllowKeyPrefixes, p)
		return nil
	})
	output := fs.String("output", "json", "output format: json (JSON lines)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if *output != "json" {
		fmt.Fprintf(stderr, "resync decode: --output %q: json is the only format\n", *output)
		return exitUsage
	}
	var err error
	if o.DBs, err = parseDBs(*dbs); err != nil {
		fmt.Fprintf(stderr, "resync decode: --dbs: %v\n", err)
		return exitUsage
	}
	name := fs.Arg(0)
	in := io.Reader(os.Stdin)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "resync decode: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	if _, err := rdbjson.Write(stdout, readerWithContext{ctx, in}, o); err != nil {
		fmt.Fprintf(stderr, "resync decode: %s: %v\n", name, err)
		return exitFailed
	}
	return exitOK
}

// parseDBs reads a comma-separated list of database numbers.
func parseDBs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var dbs []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a database number", f)
		}
		dbs = append(dbs, n)
	}
	return dbs, nil
}

// readerWithContext stops reading once ctx is done, so Ctrl-C ends a
// long decode.
type readerWithContext struct {
	ctx context.Context
	r   io.Reader
}

func (r readerWithContext) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
