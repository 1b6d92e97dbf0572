package resp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader. It must never panic or
// hang, must fail with a protocol error or EOF, and every value it accepts
// must survive a write and a second read unchanged.
func FuzzReader(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s.wire))
	}
	f.Add([]byte("$?\r\n;4\r\nHell\r\n;0\r\n*?\r\n:1\r\n.\r\n"))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	f.Add([]byte("\n\n+FULLRESYNC 0123456789abcdef 1\r\n$3\r\nRDB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReaderSize(bytes.NewReader(data), 64)
		r.MaxBulkLen = 1 << 20
		for {
			v, err := r.ReadValue()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				break
			}
			if r.Offset() > int64(len(data)) {
				t.Fatalf("offset %d past the input's %d bytes", r.Offset(), len(data))
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			w.WriteValue(v)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			again, err := NewReader(&out).ReadValue()
			if err != nil {
				t.Fatalf("re-reading %q: %v", out.Bytes(), err)
			}
			if !again.Equal(v) {
				t.Fatalf("round trip changed %v into %v", v, again)
			}
		}

		c := NewReaderSize(bytes.NewReader(data), 64)
		c.MaxBulkLen = 1 << 20
		for {
			if _, err := c.ReadCommand(); err != nil {
				break
			}
		}
		l := NewReaderSize(bytes.NewReader(data), 64)
		for {
			if _, err := l.ReadBulkTo(io.Discard); err != nil {
				break
			}
		}
	})
}
