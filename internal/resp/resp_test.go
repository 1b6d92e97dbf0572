package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func bulk(s string) Value   { return Value{Kind: BulkString, Str: []byte(s)} }
func simple(s string) Value { return Value{Kind: SimpleString, Str: []byte(s)} }

// samples pairs every kind of value with its exact wire form.
var samples = []struct {
	name string
	v    Value
	wire string
}{
	{"simple", simple("OK"), "+OK\r\n"},
	{"empty simple", simple(""), "+\r\n"},
	{"error", Value{Kind: Error, Str: []byte("ERR unknown command")}, "-ERR unknown command\r\n"},
	{"integer", Value{Kind: Integer, Int: 1000}, ":1000\r\n"},
	{"negative integer", Value{Kind: Integer, Int: math.MinInt64}, ":-9223372036854775808\r\n"},
	{"bulk", bulk("hello"), "$5\r\nhello\r\n"},
	{"empty bulk", bulk(""), "$0\r\n\r\n"},
	{"binary bulk", bulk("a\r\nb\x00"), "$5\r\na\r\nb\x00\r\n"},
	{"null bulk", Value{Kind: BulkString, IsNull: true}, "$-1\r\n"},
	{"null array", Value{Kind: Array, IsNull: true}, "*-1\r\n"},
	{"empty array", Value{Kind: Array, Elems: []Value{}}, "*0\r\n"},
	{"nested array", Value{Kind: Array, Elems: []Value{
		{Kind: Integer, Int: 1},
		{Kind: Array, Elems: []Value{bulk("a"), {Kind: BulkString, IsNull: true}}},
		simple("x"),
	}}, "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n"},
	{"null", Value{Kind: Null, IsNull: true}, "_\r\n"},
	{"true", Value{Kind: Boolean, Int: 1}, "#t\r\n"},
	{"false", Value{Kind: Boolean}, "#f\r\n"},
	{"double", Value{Kind: Double, Float: 3.14, Str: []byte("3.14")}, ",3.14\r\n"},
	{"double inf", Value{Kind: Double, Float: math.Inf(-1), Str: []byte("-inf")}, ",-inf\r\n"},
	{"double exponent", Value{Kind: Double, Float: 1.5e300, Str: []byte("1.5e300")}, ",1.5e300\r\n"},
	{"big number", Value{Kind: BigNumber, Str: []byte("-3492890328409238509324850943850943825024385")},
		"(-3492890328409238509324850943850943825024385\r\n"},
	{"bulk error", Value{Kind: BulkError, Str: []byte("SYNTAX invalid\r\nsyntax")}, "!22\r\nSYNTAX invalid\r\nsyntax\r\n"},
	{"verbatim", Value{Kind: VerbatimString, Format: "txt", Str: []byte("Some string")}, "=15\r\ntxt:Some string\r\n"},
	{"map", Value{Kind: Map, Elems: []Value{simple("first"), {Kind: Integer, Int: 1}, bulk("second"), {Kind: Null, IsNull: true}}},
		"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n_\r\n"},
	{"set", Value{Kind: Set, Elems: []Value{bulk("a"), {Kind: Boolean, Int: 1}}}, "~2\r\n$1\r\na\r\n#t\r\n"},
	{"push", Value{Kind: Push, Elems: []Value{bulk("message"), bulk("ch"), bulk("hi")}},
		">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"},
	{"attribute", Value{Kind: Array, Elems: []Value{{Kind: Integer, Int: 2039123}, {Kind: Integer, Int: 9543892}},
		Attrs: []Value{simple("key-popularity"), {Kind: Map, Elems: []Value{bulk("a"), {Kind: Double, Float: 0.1923, Str: []byte("0.1923")}}}}},
		"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n"},
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out)
			w.WriteValue(s.v)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != s.wire {
				t.Fatalf("wrote %q, want %q", out.String(), s.wire)
			}
			// One byte at a time, to cross every buffer boundary.
			r := NewReaderSize(iotest.OneByteReader(strings.NewReader(s.wire)), 64)
			got, err := r.ReadValue()
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(s.v) {
				t.Fatalf("read %v, want %v", got, s.v)
			}
			if r.Offset() != int64(len(s.wire)) {
				t.Fatalf("offset %d, want %d", r.Offset(), len(s.wire))
			}
			if _, err := r.ReadValue(); err != io.EOF {
				t.Fatalf("after the value: %v, want io.EOF", err)
			}
		})
	}
}

func TestAllSamplesInOneStream(t *testing.T) {
	var wire strings.Builder
	for _, s := range samples {
		wire.WriteString(s.wire)
	}
	r := NewReaderSize(strings.NewReader(wire.String()), 64)
	for _, s := range samples {
		got, err := r.ReadValue()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !got.Equal(s.v) {
			t.Fatalf("%s: read %v, want %v", s.name, got, s.v)
		}
	}
}

func TestStreamedTypes(t *testing.T) {
	tests := []struct {
		wire string
		want Value
	}{
		{"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n", bulk("Hello word")},
		{"*?\r\n:1\r\n:2\r\n.\r\n", Value{Kind: Array, Elems: []Value{{Kind: Integer, Int: 1}, {Kind: Integer, Int: 2}}}},
		{"%?\r\n+a\r\n:1\r\n.\r\n", Value{Kind: Map, Elems: []Value{simple("a"), {Kind: Integer, Int: 1}}}},
		{"~?\r\n.\r\n", Value{Kind: Set, Elems: []Value{}}},
	}
	for _, tt := range tests {
		got, err := NewReader(strings.NewReader(tt.wire)).ReadValue()
		if err != nil {
			t.Fatalf("%q: %v", tt.wire, err)
		}
		if !got.Equal(tt.want) {
			t.Fatalf("%q: read %v, want %v", tt.wire, got, tt.want)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, wire := range []string{
		"?\r\n",
		"\r\n",
		":12a\r\n",
		":99999999999999999999\r\n",
		"$-2\r\n",
		"$3\r\nabcd\r\n",
		"$x\r\n",
		"*-5\r\n",
		"#x\r\n",
		",1.0.0x\r\n",
		",0x10\r\n",
		"(12a\r\n",
		"_x\r\n",
		"=3\r\ntxt\r\n",
		"+OK\n",
		"%?\r\n+a\r\n.\r\n",
		"!-1\r\n",
		"$600000000\r\n",
		strings.Repeat("*1\r\n", 200) + ":1\r\n",
	} {
		_, err := NewReader(strings.NewReader(wire)).ReadValue()
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: got %v, want a protocol error", wire, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	for _, s := range samples {
		for cut := 1; cut < len(s.wire); cut++ {
			_, err := NewReaderSize(strings.NewReader(s.wire[:cut]), 64).ReadValue()
			if err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
				t.Fatalf("%s cut at %d: got %v, want unexpected EOF", s.name, cut, err)
			}
		}
	}
}

func TestReadCommand(t *testing.T) {
	big := strings.Repeat("v", 200_000)
	var wire bytes.Buffer
	w := NewWriterSize(&wire, 128)
	w.WriteCommandStrings("SET", "k", big)
	w.WriteCommand([]byte("DEL"), []byte("a"), []byte(""), []byte("c"))
	w.WriteArrayHeader(0)
	w.WriteArrayHeader(3)
	w.WriteBulkString("INCRBY")
	w.WriteBulkString("n")
	w.WriteBulkInt(-42)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReaderSize(bytes.NewReader(wire.Bytes()), 256)
	want := [][]string{{"SET", "k", big}, {"DEL", "a", "", "c"}, {}, {"INCRBY", "n", "-42"}}
	for _, cmd := range want {
		args, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		if len(args) != len(cmd) {
			t.Fatalf("got %d args, want %d", len(args), len(cmd))
		}
		for i := range cmd {
			if string(args[i]) != cmd[i] {
				t.Fatalf("arg %d: got %.20q, want %.20q", i, args[i], cmd[i])
			}
		}
	}
	if r.Offset() != int64(wire.Len()) {
		t.Fatalf("offset %d, want %d", r.Offset(), wire.Len())
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	for _, bad := range []string{"+OK\r\n", "*1\r\n:1\r\n", "*1\r\n$-1\r\n", "*2\r\n$1\r\na\r\n"} {
		_, err := NewReader(strings.NewReader(bad)).ReadCommand()
		if err == nil || err == io.EOF {
			t.Errorf("%q: got %v, want an error", bad, err)
		}
	}
}

// TestReadCommandArgsStable checks that arguments of one command stay intact
// while the arena grows in the middle of it.
func TestReadCommandArgsStable(t *testing.T) {
	var wire bytes.Buffer
	w := NewWriter(&wire)
	args := []string{"MSET", "a", strings.Repeat("x", 3000), "b", strings.Repeat("y", 9000), "c", "z"}
	w.WriteCommandStrings(args...)
	w.Flush()
	got, err := NewReader(&wire).ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		if string(got[i]) != a {
			t.Fatalf("arg %d changed", i)
		}
	}
}

func TestRawReadAndLines(t *testing.T) {
	payload := bytes.Repeat([]byte("RDB"), 100_000)
	wire := "\n\n+FULLRESYNC abc 10\r\n$" + "300000" + "\r\n" + string(payload) + "*1\r\n$4\r\nPING\r\n"
	r := NewReaderSize(strings.NewReader(wire), 1024)
	for _, want := range []string{"", "", "+FULLRESYNC abc 10", "$300000"} {
		line, err := r.ReadLine()
		if err != nil || string(line) != want {
			t.Fatalf("line %q, %v; want %q", line, err, want)
		}
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("raw payload differs (%v)", err)
	}
	args, err := r.ReadCommand()
	if err != nil || len(args) != 1 || string(args[0]) != "PING" {
		t.Fatalf("after raw: %q %v", args, err)
	}
	if r.Offset() != int64(len(wire)) {
		t.Fatalf("offset %d, want %d", r.Offset(), len(wire))
	}
}

func TestReadBulkTo(t *testing.T) {
	big := strings.Repeat("0123456789", 50_000)
	wire := "$" + "500000" + "\r\n" + big + "\r\n$-1\r\n-ERR no\r\n:1\r\n"
	r := NewReaderSize(strings.NewReader(wire), 4096)
	var out bytes.Buffer
	if n, err := r.ReadBulkTo(&out); err != nil || n != int64(len(big)) || out.String() != big {
		t.Fatalf("got %d bytes, %v", n, err)
	}
	if n, err := r.ReadBulkTo(&out); err != nil || n != -1 {
		t.Fatalf("null: got %d, %v", n, err)
	}
	var re *RedisError
	if _, err := r.ReadBulkTo(&out); !errors.As(err, &re) || re.Code() != "ERR" {
		t.Fatalf("error reply: got %v", err)
	}
	if _, err := r.ReadBulkTo(&out); !errors.Is(err, ErrProtocol) {
		t.Fatalf("integer: got %v, want a protocol error", err)
	}
}

// recorder keeps every Write call's bytes separately.
type recorder struct{ calls [][]byte }

func (r *recorder) Write(p []byte) (int, error) {
	r.calls = append(r.calls, bytes.Clone(p))
	return len(p), nil
}

func TestWriterBigBulkBypassesBuffer(t *testing.T) {
	big := bytes.Repeat([]byte{'z'}, 10_000)
	rec := &recorder{}
	w := NewWriterSize(rec, 256)
	w.WriteCommand([]byte("SET"), []byte("k"), big)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	direct := false
	var all []byte
	for _, c := range rec.calls {
		direct = direct || bytes.Equal(c, big)
		all = append(all, c...)
	}
	if !direct {
		t.Fatal("the big argument was copied through the buffer, not written directly")
	}
	if w.Written() != int64(len(all)) {
		t.Fatalf("Written %d, sent %d", w.Written(), len(all))
	}
	args, err := NewReader(bytes.NewReader(all)).ReadCommand()
	if err != nil || !bytes.Equal(args[2], big) {
		t.Fatalf("read back: %v", err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("broken pipe")
	}
	f.after--
	return len(p), nil
}

func TestWriterStickyError(t *testing.T) {
	w := NewWriterSize(&failWriter{after: 1}, 64)
	for range 100 {
		w.WriteCommandStrings("SET", "key", "value")
	}
	if err := w.Flush(); err == nil || err.Error() != "broken pipe" {
		t.Fatalf("got %v, want the first write error", err)
	}
}

func TestRedisErrorCode(t *testing.T) {
	v := Value{Kind: Error, Str: []byte("MOVED 3999 127.0.0.1:6381")}
	var re *RedisError
	if !errors.As(v.Err(), &re) || re.Code() != "MOVED" {
		t.Fatalf("code of %v", v.Err())
	}
	if (Value{Kind: SimpleString}).Err() != nil {
		t.Fatal("a simple string is not an error")
	}
}

func TestWriterRefusesUnwritableValues(t *testing.T) {
	for _, v := range []Value{
		{Kind: Array, Elems: []Value{{Kind: Integer, Int: 1}, {}}},
		{Kind: VerbatimString, Format: "markdown", Str: []byte("x")},
	} {
		w := NewWriter(io.Discard)
		w.WriteValue(v)
		if err := w.Flush(); err == nil {
			t.Errorf("%v: written without an error", v)
		}
	}
}

// TestReadCommandReleasesBigArena checks that after one huge command the
// reader keeps no reference to its arena.
func TestReadCommandReleasesBigArena(t *testing.T) {
	var wire bytes.Buffer
	w := NewWriter(&wire)
	w.WriteCommand([]byte("MSET"), []byte("a"), []byte("1"), []byte("b"), bytes.Repeat([]byte{'x'}, 4<<20))
	w.WriteCommandStrings("SET", "k", "v")
	w.Flush()
	r := NewReader(&wire)
	for range 2 {
		if _, err := r.ReadCommand(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(r.arena) > arenaKeep {
		t.Fatalf("arena of %d bytes kept", cap(r.arena))
	}
	for i, a := range r.args[:cap(r.args)] {
		if cap(a) > arenaKeep {
			t.Fatalf("args[%d] still holds %d bytes", i, cap(a))
		}
	}
}
