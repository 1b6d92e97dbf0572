package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/resync/resync/internal/redistest"
)

// writeFile writes a task file with the given mode and returns its path.
func writeFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "task.toml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// Mistakes in a task file are usage errors that name the key and its
// line.
func TestTaskFileErrors(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"unknown key": {"name = \"x\"\n\n# a comment\nbufer_bytes = \"1MiB\"\n",
			`line 4: unknown setting "bufer_bytes" (did you mean "buffer_bytes"?)`},
		"bad size":     {"name = \"x\"\n\nbuffer_bytes = \"64XB\"\n", `line 3: buffer_bytes: "64XB" is not a size`},
		"bad duration": {"heartbeat_interval = \"soon\"\n", `line 1: heartbeat_interval: "soon" is not a duration`},
		"bad bool":     {"[source]\nurl = \"a:1\"\n\n[[target]]\nurl = \"b:1\"\ntls_insecure = \"yes\"\n", `line 6: [[target]] tls_insecure: "yes" is not true or false`},
		"quoted key":   {"name = \"x\"\n\"redact_keys\" = 3\n", `line 2: redact_keys: 3 is not true or false`},
		"table key":    {"[source]\nurl = \"a:1\"\ntls_cafile = \"x\"\n", `line 3: [source]: unknown setting "tls_cafile"`},
		// A key after a table header belongs to the table: a common slip.
		"after table":   {"[source]\nurl = \"a:1\"\nbuffer_bytes = \"1MiB\"\n", `line 3: [source]: unknown setting "buffer_bytes" (a setting for the whole task goes before the first [table])`},
		"flag twin":     {"source_tls_ca = \"ca.pem\"\n", `line 1: source_tls_ca: set it in the [source] table, as tls_ca`},
		"list":          {"on_conflict = [\"a\", \"b\"]\n", `line 1: on_conflict: takes one value, not a list`},
		"syntax":        {"name = \"x\"\nbuffer_bytes = \n", `line 2: expected value`},
		"no target url": {"[[target]]\nurl = \"a:1\"\n\n[[target]]\ntls_ca = \"ca.pem\"\n", `line 4: [[target]]: no url`},
		"two passwords": {"[source]\nurl = \"a:1\"\npassword_file = \"/pw\"\npassword = \"x\"\n",
			`line 4: [source]: password and password_file: give one`},
		// The value of a password is never repeated, even when wrong.
		"password number": {"[source]\nurl = \"a:1\"\npassword = 987654321\n", `line 3: [source] password: the value is not a string`},
		"dotted":          {"source.url = \"a:1\"\nsource.tls_cafile = \"x\"\n", `line 2: [source]: unknown setting "tls_cafile"`},
		"multi-line": {"block_key_prefix = [\n  \"a:\",\n  \"b:\",\n]\nnote = \"\"\"\nname = 1\n\"\"\"\n",
			`line 5: unknown setting "note"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, c.body, 0o600)
			code, _, errOut := runCLI("sync", "--config", p)
			if code != exitUsage || !strings.Contains(errOut, "--config "+p+": "+c.want) || strings.Contains(errOut, "987654321") {
				t.Errorf("exit %d, want %d and %q:\n%s", code, exitUsage, c.want, errOut)
			}
		})
	}
	// Every mistake is listed, in file order.
	p := writeFile(t, "colour = \"blue\"\nbuffer_bytes = \"lots\"\n", 0o600)
	_, _, errOut := runCLI("sync", "--config", p)
	if i, j := strings.Index(errOut, "line 1: unknown"), strings.Index(errOut, "line 2: buffer_bytes"); i < 0 || j < i {
		t.Errorf("not both mistakes, in order:\n%s", errOut)
	}
}

// newTestLogger logs text into a buffer.
func newTestLogger() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// A [[target]] table carries its own TLS settings and password; flags
// given on the command line win key by key.
func TestTaskFileEndpointTLS(t *testing.T) {
	certs := redistest.NewCerts(t)
	pwFile := filepath.Join(t.TempDir(), "source.pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	p := writeFile(t, `tls_insecure = false

[source]
url = "rediss://reader@127.0.0.1:7001"
password_file = "`+pwFile+`"
tls_ca = "`+certs.CAFile+`"

[[target]]
url = "redis://writer@127.0.0.1:7002/3"
password = "t-secret"
tls_ca = "`+certs.OtherCAFile+`"
tls_cert = "`+certs.ClientCert+`"
tls_key = "`+certs.ClientKey+`"
tls_server_name = "localhost"
tls_insecure = true
`, 0o600)
	fs, f := newSyncFlags(io.Discard)
	if err := fs.Parse([]string{"--config", p, "--target-tls-server-name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	warnings, err := applyConfig(fs, p, f.source, f.target)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("%v %q", err, warnings)
	}
	log, logs := newTestLogger()
	src, err := f.source.options(log)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := f.target.options(log)
	if err != nil {
		t.Fatal(err)
	}
	if src.TLS == nil || src.TLS.CAFile != certs.CAFile || src.TLS.InsecureSkipVerify || src.Username != "reader" || src.Password != "from-file" {
		t.Errorf("source: %+v %+v", src, src.TLS)
	}
	// redis:// with TLS settings: TLS is on.
	if dst.TLS == nil || dst.TLS.CAFile != certs.OtherCAFile || dst.TLS.CertFile != certs.ClientCert || dst.TLS.KeyFile != certs.ClientKey ||
		dst.TLS.ServerName != "from-flag" || !dst.TLS.InsecureSkipVerify || dst.Username != "writer" || dst.Password != "t-secret" || dst.DB != 3 {
		t.Errorf("target: %#v %+v", dst, dst.TLS)
	}
	if !strings.Contains(logs.String(), "verification is off for the target") || strings.Contains(logs.String(), "for the source") {
		t.Errorf("the --tls-insecure warning is not the target's alone:\n%s", logs)
	}
	if strings.Contains(logs.String(), "process list") {
		t.Errorf("a URL from the file drew the command line's warning:\n%s", logs)
	}

	// --tls-insecure on the command line wins over a table's false.
	fs, f = newSyncFlags(io.Discard)
	fs.Parse([]string{"--tls-insecure", "--source-tls-ca", certs.OtherCAFile})
	p2 := writeFile(t, "[source]\nurl = \"rediss://127.0.0.1:7001\"\ntls_insecure = false\ntls_ca = \""+certs.CAFile+"\"\n", 0o600)
	if _, err := applyConfig(fs, p2, f.source, f.target); err != nil {
		t.Fatal(err)
	}
	if src, err := f.source.options(log); err != nil || !src.TLS.InsecureSkipVerify || src.TLS.CAFile != certs.OtherCAFile {
		t.Errorf("command line did not win: %v %+v", err, src.TLS)
	}
}

// TLS settings that cannot work are usage errors naming the side.
func TestTLSFlagMistakes(t *testing.T) {
	certs := redistest.NewCerts(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--source-tls-cert", certs.ClientCert}, "--source-tls-cert and --source-tls-key go together"},
		{[]string{"--target-tls-ca", "/no/such/ca.pem"}, "target: TLS CA file"},
		{[]string{"--source-tls-ca", certs.ClientKey}, "holds no PEM certificate"},
	} {
		args := append([]string{"sync", "--source", "127.0.0.1:1", "--target", "127.0.0.1:2", "--status-addr", ""}, c.args...)
		if code, _, errOut := runCLI(args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, want %d and %q: %s", c.args, code, exitUsage, c.want, errOut)
		}
	}
}

// A task file that holds a password and that others may read draws a
// warning naming it and the fix.
func TestTaskFilePermissionWarning(t *testing.T) {
	for _, c := range []struct {
		body string
		mode os.FileMode
		warn bool
	}{
		{"[source]\nurl = \"127.0.0.1:1\"\npassword = \"pw\"\n", 0o644, true},
		{"[source]\nurl = \"redis://u:pw@127.0.0.1:1\"\n", 0o640, true},
		{"status_token = \"tok\"\n", 0o604, true},
		{"[source]\nurl = \"127.0.0.1:1\"\npassword = \"pw\"\n", 0o600, false},
		{"[source]\nurl = \"127.0.0.1:1\"\npassword_file = \"/pw\"\n", 0o644, false},
	} {
		p := writeFile(t, c.body, c.mode)
		fs, f := newSyncFlags(io.Discard)
		warnings, err := applyConfig(fs, p, f.source, f.target)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(warnings, "\n")
		if c.warn != (strings.Contains(got, p) && strings.Contains(got, "chmod 600 "+p)) {
			t.Errorf("%q mode %o: warnings %q", c.body, c.mode, got)
		}
	}
	// And resync sync logs it.
	p := writeFile(t, "status_addr = \"\"\n[source]\nurl = \"127.0.0.1:1\"\npassword = \"pw\"\n[[target]]\nurl = \"127.0.0.1:2\"\n", 0o644)
	if code, _, errOut := runCLI("sync", "--config", p, "--retry-for", "1s"); code != exitProblem || !strings.Contains(errOut, "chmod 600") || strings.Contains(errOut, "pw\"") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// resync.example.toml documents every option of resync sync with its
// default: it parses, its keys are exactly the sync flags and the table
// keys, and each commented-out default, uncommented, is the flag's
// default.
func TestExampleTaskFile(t *testing.T) {
	const path = "../../resync.example.toml"
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fs, f := newSyncFlags(io.Discard)
	if _, err := applyConfig(fs, path, f.source, f.target); err != nil {
		t.Fatalf("the example as it is: %v", err)
	}

	// Uncomment every "# key = value" line: the file must still apply.
	setting := regexp.MustCompile(`^# ([a-z_]+) = (.*)$`)
	var uncommented []string
	top := map[string]string{} // key → value, outside the tables
	tables := map[string]map[string]bool{"source": {}, "target": {}}
	table := ""
	for line := range strings.SplitSeq(string(body), "\n") {
		switch line {
		case "[source]":
			table = "source"
		case "[[target]]":
			table = "target"
		}
		if m := setting.FindStringSubmatch(line); m != nil {
			line = m[1] + " = " + m[2]
		}
		uncommented = append(uncommented, line)
		if k, v, ok := strings.Cut(line, " = "); ok && !strings.HasPrefix(k, "#") {
			if table == "" {
				top[k] = v
			} else {
				tables[table][k] = true
			}
		}
	}
	full := writeFile(t, strings.Join(uncommented, "\n"), 0o600)
	fs, f = newSyncFlags(io.Discard)
	if _, err := applyConfig(fs, full, f.source, f.target); err != nil {
		t.Errorf("the example with every setting uncommented: %v", err)
	}

	// Every flag is there, each with its default.
	fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "config" {
			return
		}
		if side, key, ok := endpointKeyOf(fl.Name); ok {
			if !tables[side][key] {
				t.Errorf("--%s: no %s in the example's %s table", fl.Name, key, side)
			}
			return
		}
		key := strings.ReplaceAll(fl.Name, "-", "_")
		v, ok := top[key]
		if !ok {
			t.Errorf("--%s: no %s in the example", fl.Name, key)
			return
		}
		if fl.Name == "spool-dir" {
			return // the system's temporary directory: differs by machine
		}
		var parsed map[string]any
		if _, err := toml.Decode(key+" = "+v, &parsed); err != nil {
			t.Errorf("%s = %s: %v", key, v, err)
			return
		}
		one, _ := newSyncFlags(io.Discard)
		if err := setFromFile(one, one.Lookup(fl.Name), parsed[key]); err != nil {
			t.Errorf("%s = %s: %v", key, v, err)
		} else if got := one.Lookup(fl.Name).Value.String(); got != fl.DefValue {
			t.Errorf("%s = %s in the example; the default is %q", key, v, fl.DefValue)
		}
	})
	// And nothing else is.
	known := syncKeys(nil)
	for k := range top {
		if !strings.Contains(k, "#") && !slices.Contains(known, k) {
			t.Errorf("the example sets %q, which is no setting", k)
		}
	}
	for side, keys := range tables {
		for k := range keys {
			if !slices.Contains(endpointKeys, k) {
				t.Errorf("the example's %s table sets %q, which is no table key", side, k)
			}
		}
		for _, k := range endpointKeys {
			if !keys[k] {
				t.Errorf("the example's %s table lacks %s", side, k)
			}
		}
	}
}

// keyLines finds keys in the common forms, and not inside multi-line
// values.
func TestKeyLines(t *testing.T) {
	doc := `# comment
name = "x" # trailing
"quoted key" = 1
'literal.key' = 2
a.b = 3
list = [
  "x = 1",
  [1, 2],
]
text = """
fake = 1
[fake]
"""
lit = '''
[[fake]]'''
[source]
url = "u"
[[target]]
url = "t1"
[ target . "x" ]
[[target]]
  tls_ca = "c" # indented
`
	got := keyLines(doc)
	want := map[string]int{"name": 2, "quoted key": 3, "literal.key": 4, "a": 5, "a.b": 5, "list": 6, "text": 10,
		"lit": 14, "source": 16, "source.url": 17, "target[1]": 18, "target[1].url": 19, "target.x": 20,
		"target[2]": 21, "target[2].tls_ca": 22}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: line %d, want %d", k, got[k], n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%q (line %d) is not a key of the document", k, got[k])
		}
	}
	if n := got.find("target[2].tls_ca.deeper"); n != 22 {
		t.Errorf("find falls back to the enclosing key: %d", n)
	}
}

// A size prints as parseSize reads it back, in the largest unit that
// divides it.
func TestByteSizeString(t *testing.T) {
	for n, want := range map[int]string{0: "0", 1536: "1536", 64 << 20: "64MiB", 1 << 30: "1GiB", 3 << 10: "3KiB", 1<<30 + 1<<20: "1025MiB"} {
		b := byteSize(n)
		if got := b.String(); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
		if back, err := parseSize(b.String()); err != nil || back != n {
			t.Errorf("%q reads back as %d %v", b.String(), back, err)
		}
	}
}
