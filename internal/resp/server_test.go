package resp_test

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/resp"
)

func TestAgainstServerRESP2(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	r, w := c.Reader(), c.Writer()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB

	w.WriteCommandStrings("SET", "str", "hello")
	w.WriteCommand([]byte("SET"), []byte("big"), big)
	w.WriteCommandStrings("RPUSH", "list", "a", "", "c")
	w.WriteArrayHeader(3)
	w.WriteBulkString("INCRBY")
	w.WriteBulkString("n")
	w.WriteBulkInt(-7)
	w.WriteCommandStrings("MGET", "str", "missing")
	w.WriteCommandStrings("LRANGE", "list", "0", "-1")
	w.WriteCommandStrings("GET", "big")
	w.WriteCommandStrings("LPUSH", "str", "x")
	w.WriteCommandStrings("GET", "missing")
	w.WriteCommandStrings("EXEC")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []func(v resp.Value) bool{
		func(v resp.Value) bool { return v.Kind == resp.SimpleString && v.Text() == "OK" },
		func(v resp.Value) bool { return v.Kind == resp.SimpleString && v.Text() == "OK" },
		func(v resp.Value) bool { return v.Kind == resp.Integer && v.Int == 3 },
		func(v resp.Value) bool { return v.Kind == resp.Integer && v.Int == -7 },
		func(v resp.Value) bool {
			return v.Kind == resp.Array && len(v.Elems) == 2 && v.Elems[0].Text() == "hello" && v.Elems[1].Nil()
		},
		func(v resp.Value) bool {
			return len(v.Elems) == 3 && v.Elems[1].Kind == resp.BulkString && len(v.Elems[1].Str) == 0 && !v.Elems[1].Nil()
		},
		func(v resp.Value) bool { return bytes.Equal(v.Str, big) },
		func(v resp.Value) bool { return v.Kind == resp.Error && strings.HasPrefix(v.Text(), "WRONGTYPE") },
		func(v resp.Value) bool { return v.Kind == resp.BulkString && v.IsNull },
		func(v resp.Value) bool {
			return v.Kind == resp.Error && strings.Contains(v.Text(), "EXEC without MULTI")
		},
	}
	for i, ok := range want {
		v, err := r.ReadValue()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if !ok(v) {
			t.Errorf("reply %d: unexpected %.200s", i, v)
		}
	}

	// Streaming a big reply without holding it.
	w.WriteCommandStrings("GET", "big")
	w.Flush()
	var sink bytes.Buffer
	if n, err := r.ReadBulkTo(&sink); err != nil || n != int64(len(big)) || !bytes.Equal(sink.Bytes(), big) {
		t.Fatalf("ReadBulkTo: %d bytes, %v", n, err)
	}
}

func TestAgainstServerPipeline(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	r, w := c.Reader(), c.Writer()
	const n = 20000
	for i := range n {
		w.WriteArrayHeader(3)
		w.WriteBulkString("SET")
		w.WriteBulkString("k:" + strconv.Itoa(i))
		w.WriteBulkInt(int64(i))
	}
	w.WriteCommandStrings("DBSIZE")
	// Replies are read while commands are still being sent, as a writer does.
	errc := make(chan error, 1)
	go func() { errc <- w.Flush() }()
	for i := range n {
		v, err := r.ReadValue()
		if err != nil || v.Text() != "OK" {
			t.Fatalf("reply %d: %v %v", i, v, err)
		}
	}
	if v, err := r.ReadValue(); err != nil || v.Int != n {
		t.Fatalf("DBSIZE: %v %v", v, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestAgainstServerRESP3(t *testing.T) {
	redistest.RequireVersion(t, 6, 0, "introduced RESP3 and DEBUG PROTOCOL")
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	hello, err := c.Do("HELLO", "3")
	if err != nil {
		t.Fatal(err)
	}
	if hello.Kind != resp.Map {
		t.Fatalf("HELLO 3 answered a %s, want a map", hello.Kind)
	}
	tests := map[string]func(v resp.Value) bool{
		"string":  func(v resp.Value) bool { return v.Kind == resp.BulkString && v.Text() == "Hello World" },
		"integer": func(v resp.Value) bool { return v.Kind == resp.Integer && v.Int == 12345 },
		"double":  func(v resp.Value) bool { return v.Kind == resp.Double && v.Float > 3.14 && v.Float < 3.1416 }, // 3.141, or 3.14159265359 before 7.0
		"bignum": func(v resp.Value) bool {
			return v.Kind == resp.BigNumber && v.Text() == "1234567999999999999999999999999999999"
		},
		"null":  func(v resp.Value) bool { return v.Kind == resp.Null && v.Nil() },
		"array": func(v resp.Value) bool { return v.Kind == resp.Array && len(v.Elems) == 3 && v.Elems[2].Int == 2 },
		"set":   func(v resp.Value) bool { return v.Kind == resp.Set && len(v.Elems) == 3 },
		"map": func(v resp.Value) bool {
			return v.Kind == resp.Map && len(v.Elems) == 6 && v.Elems[1].Kind == resp.Boolean
		},
		"attrib": func(v resp.Value) bool {
			return v.Kind == resp.BulkString && len(v.Attrs) == 2 && v.Attrs[0].Text() == "key-popularity"
		},
		"verbatim": func(v resp.Value) bool {
			return v.Kind == resp.VerbatimString && v.Format == "txt" && v.Text() == "This is a verbatim\nstring"
		},
		"true":  func(v resp.Value) bool { return v.Kind == resp.Boolean && v.Int == 1 },
		"false": func(v resp.Value) bool { return v.Kind == resp.Boolean && v.Int == 0 },
	}
	for typ, ok := range tests {
		v, err := c.Do("DEBUG", "PROTOCOL", typ)
		if err != nil {
			t.Fatalf("DEBUG PROTOCOL %s: %v", typ, err)
		}
		if !ok(v) {
			t.Errorf("DEBUG PROTOCOL %s: unexpected %s %v", typ, v.Kind, v)
		}
	}
	// A push message comes with the reply: before it up to 7.0, after it from 7.2.
	c.Writer().WriteCommandStrings("DEBUG", "PROTOCOL", "push")
	c.Writer().Flush()
	var push, reply int
	for range 2 {
		v, err := c.Reader().ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case v.Kind == resp.Push && len(v.Elems) == 2:
			push++
		case strings.HasPrefix(v.Text(), "Some real reply"):
			reply++
		default:
			t.Fatalf("unexpected %s %v", v.Kind, v)
		}
	}
	if push != 1 || reply != 1 {
		t.Fatalf("%d push messages and %d replies, want one of each", push, reply)
	}
}

// TestReplicationStream reads what a source sends a replica — the
// handshake lines, the RDB as raw bytes, then commands — and checks that
// the reader's offset matches the source's replication offset byte for byte.
func TestReplicationStream(t *testing.T) {
	s := redistest.Start(t, "repl-diskless-sync no")
	redistest.Do(t, s, "SET", "before", "1")
	c := redistest.Dial(t, s)
	r, w := c.Reader(), c.Writer()
	w.WriteCommandStrings("PSYNC", "?", "-1")
	w.Flush()
	var replid string
	var start int64
	for {
		line, err := r.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if len(line) == 0 {
			continue // keep-alive while the source forks
		}
		f := strings.Fields(string(line))
		if len(f) != 3 || f[0] != "+FULLRESYNC" {
			t.Fatalf("PSYNC answered %q", line)
		}
		replid = f[1]
		start, _ = strconv.ParseInt(f[2], 10, 64)
		break
	}
	var size int64
	for {
		line, err := r.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if len(line) == 0 {
			continue
		}
		if size, err = strconv.ParseInt(strings.TrimPrefix(string(line), "$"), 10, 64); err != nil {
			t.Fatalf("RDB header %q", line)
		}
		break
	}
	rdb := make([]byte, size)
	if _, err := io.ReadFull(r, rdb); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rdb, []byte("REDIS")) {
		t.Fatalf("the RDB starts %q", rdb[:min(9, len(rdb))])
	}
	base := r.Offset()

	redistest.Do(t, s, "SET", "after", strings.Repeat("x", 100))
	redistest.Do(t, s, "DEL", "before")
	var got []string
	for len(got) < 2 {
		args, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		switch name := strings.ToUpper(string(args[0])); name {
		case "SET", "DEL":
			got = append(got, fmt.Sprintf("%s %s", name, args[1]))
		case "SELECT", "PING":
		default:
			t.Fatalf("unexpected %q in the stream", args)
		}
	}
	if strings.Join(got, ",") != "SET after,DEL before" {
		t.Fatalf("stream carried %v", got)
	}
	info := redistest.Do(t, s, "INFO", "replication")
	if id := redisproc.InfoField(info, "master_replid"); id != replid && redistest.Version(t).AtLeast(4, 0) {
		t.Fatalf("replid %s, FULLRESYNC said %s", id, replid)
	}
	want, _ := strconv.ParseInt(redisproc.InfoField(info, "master_repl_offset"), 10, 64)
	if off := start + r.Offset() - base; off != want {
		t.Fatalf("reader at replication offset %d, source at %d", off, want)
	}
}
