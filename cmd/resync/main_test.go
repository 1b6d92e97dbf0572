package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/resync/resync/internal/redistest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := runCLI("help"); code != exitOK || !strings.Contains(out, "verify") {
		t.Fatalf("help: exit %d, %q", code, out)
	}
	if code, _, errOut := runCLI(); code != exitUsage || !strings.Contains(errOut, "usage") {
		t.Fatalf("no command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI("frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, %q", code, errOut)
	}
}

func TestNotYetBuiltCommandsSaySo(t *testing.T) {
	for _, name := range []string{"sync", "check", "verify", "decode", "dump", "restore", "status", "bench"} {
		code, _, errOut := runCLI(name, "--source", "redis://127.0.0.1:1")
		if code != exitUsage || !strings.Contains(errOut, "not implemented yet") {
			t.Errorf("%s: exit %d, %q", name, code, errOut)
		}
	}
}

func TestDemo(t *testing.T) {
	bin := redistest.Binary(t)
	code, out, errOut := runCLI("demo", "--redis-server", bin)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"source 127.0.0.1:", "user:1", "hash", "(expires in", "target 127.0.0.1:", ": 0 keys"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
