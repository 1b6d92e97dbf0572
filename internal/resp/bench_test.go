package resp

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// loop serves the same bytes over and over, so a benchmark reads without
// allocating input.
type loop struct {
	data []byte
	off  int
}

func (l *loop) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// setCommands returns n encoded "SET key:<i> <64-byte value>" commands,
// the shape of the replication stream in the performance issue's data set.
func setCommands(n int) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	val := bytes.Repeat([]byte{'v'}, 64)
	for i := range n {
		w.WriteCommand([]byte("SET"), fmt.Appendf(nil, "key:%08d", i), val)
	}
	w.Flush()
	return buf.Bytes()
}

func BenchmarkWriterCommand(b *testing.B) {
	key, val := []byte("key:00000001"), bytes.Repeat([]byte{'v'}, 64)
	w := NewWriter(io.Discard)
	b.SetBytes(int64(len(setCommands(1))))
	b.ReportAllocs()
	for b.Loop() {
		w.WriteArrayHeader(3)
		w.WriteBulkString("SET")
		w.WriteBulk(key)
		w.WriteBulk(val)
	}
	w.Flush()
}

func BenchmarkWriterRestore(b *testing.B) {
	key, payload := []byte("key:00000001"), bytes.Repeat([]byte{'p'}, 200)
	restore := func(w *Writer) {
		w.WriteArrayHeader(6)
		w.WriteBulkString("RESTORE")
		w.WriteBulk(key)
		w.WriteBulkInt(1767225600000)
		w.WriteBulk(payload)
		w.WriteBulkString("REPLACE")
		w.WriteBulkString("ABSTTL")
	}
	var one bytes.Buffer
	ow := NewWriter(&one)
	restore(ow)
	ow.Flush()
	w := NewWriter(io.Discard)
	b.SetBytes(int64(one.Len()))
	b.ReportAllocs()
	for b.Loop() {
		restore(w)
	}
	w.Flush()
}

func BenchmarkReaderCommand(b *testing.B) {
	data := setCommands(1024)
	r := NewReader(&loop{data: data})
	b.SetBytes(int64(len(data) / 1024))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderValueArray(b *testing.B) {
	// An HGETALL-like reply: 20 bulk strings.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteArrayHeader(20)
	for i := range 20 {
		w.WriteBulkString(fmt.Sprintf("field-or-value-%02d", i))
	}
	w.Flush()
	r := NewReader(&loop{data: buf.Bytes()})
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadValue(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderBigBulk(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteBulk(bytes.Repeat([]byte{'x'}, 1<<20))
	w.Flush()
	r := NewReader(&loop{data: buf.Bytes()})
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadValue(); err != nil {
			b.Fatal(err)
		}
	}
}
