package repair

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/resync/resync/internal/rdb"
)

// RDB opcodes written here (see rdb.c).
const (
	opExpireTimeMs = 0xfc
	opSelectDB     = 0xfe
	opEOF          = 0xff
)

// trailerLen is what ends a DUMP payload: the RDB version (2 bytes) and
// the CRC-64 of everything before it (8 bytes), both little-endian.
const trailerLen = 10

// rdbFile writes DUMP payloads as the records of an RDB file:
//
//	"REDIS" version(4 digits)
//	0xFE db                                 per database
//	[0xFC expiry-ms(8, LE)] type key value  per key
//	0xFF checksum(8, LE)
//
// The version is the payloads' own, known only once one has arrived: the
// header holds a placeholder until close.
type rdbFile struct {
	f       *os.File
	w       *bufio.Writer
	version int // of the payloads; 0 before the first
	records int
	rec     record // reused for each key
}

func newRDBFile(f *os.File) *rdbFile {
	file := &rdbFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	file.w.WriteString("REDIS0000") // not a valid version: the decoder refuses it if close never fixes it
	return file
}

// selectDB starts the records of database db.
func (f *rdbFile) selectDB(db int) error {
	f.w.WriteByte(opSelectDB)
	_, err := f.w.Write(rdb.AppendLength(nil, uint64(db)))
	return err
}

// record returns the writer for the payload of key, which becomes its
// record as ReadBulkTo hands it over; finish completes it.
func (f *rdbFile) record(key []byte, expireMs int64) *record {
	f.rec = record{file: f, key: key, expireMs: expireMs}
	return &f.rec
}

// close ends the file, writes its version into the header and returns
// its size. The checksum is written as 0, which the decoder (like Redis
// with rdbchecksum no) takes as "not computed": the header is only known
// last, and each payload's own checksum was verified as it arrived.
func (f *rdbFile) close() (int64, error) {
	f.w.WriteByte(opEOF)
	if f.version >= 5 { // checksums exist from RDB 5
		f.w.Write(make([]byte, 8))
	}
	if err := f.w.Flush(); err != nil {
		return 0, err
	}
	if f.records > 0 {
		if _, err := f.f.WriteAt(fmt.Appendf(nil, "REDIS%04d", f.version), 0); err != nil {
			return 0, err
		}
	}
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// record is an io.Writer that turns one DUMP payload, streamed in pieces
// of any size, into an RDB record: the expiry and the type byte, the key,
// then the value. The last trailerLen bytes seen are held back, since the
// payload's trailer has no place in the file; they are checked by finish.
type record struct {
	file     *rdbFile
	key      []byte
	expireMs int64 // 0: none

	started bool
	tail    [trailerLen]byte
	held    int    // bytes of tail in use
	crc     uint64 // CRC-64 of the payload bytes passed on
	n       int64
}

// Write takes the next piece of the payload.
func (r *record) Write(p []byte) (int, error) {
	size := len(p)
	r.n += int64(size)
	w := r.file.w
	if !r.started && len(p) > 0 {
		r.started = true
		if r.expireMs > 0 {
			w.WriteByte(opExpireTimeMs)
			w.Write(binary.LittleEndian.AppendUint64(nil, uint64(r.expireMs)))
		}
		// The payload's first byte is the value's type, which precedes
		// the key in a record.
		w.WriteByte(p[0])
		w.Write(rdb.AppendLength(nil, uint64(len(r.key))))
		w.Write(r.key)
		r.crc = rdb.CRC64(0, p[:1])
		p = p[1:]
	}
	if r.held+len(p) <= trailerLen {
		r.held += copy(r.tail[r.held:], p)
		return size, nil
	}
	// Pass on all but the last trailerLen bytes of tail+p, oldest first.
	out := r.held + len(p) - trailerLen
	fromTail := min(out, r.held)
	r.emit(r.tail[:fromTail])
	r.held = copy(r.tail[:], r.tail[fromTail:r.held])
	err := r.emit(p[:out-fromTail]) // bufio's errors are sticky: the last write reports any
	r.held += copy(r.tail[r.held:], p[out-fromTail:])
	if err != nil {
		return 0, fmt.Errorf("repair file: %w", err)
	}
	return size, nil
}

func (r *record) emit(b []byte) error {
	r.crc = rdb.CRC64(r.crc, b)
	_, err := r.file.w.Write(b)
	return err
}

// finish checks the payload's trailer — its checksum covers what went
// into the file, so the copy is checked end to end — and its version
// against the other payloads'.
func (r *record) finish() error {
	if !r.started || r.held < trailerLen {
		return fmt.Errorf("DUMP payload of %d bytes is too short", r.n)
	}
	version := int(binary.LittleEndian.Uint16(r.tail[:2]))
	crc := rdb.CRC64(r.crc, r.tail[:2])
	if want := binary.LittleEndian.Uint64(r.tail[2:]); want != crc {
		return fmt.Errorf("DUMP payload: %w: it says %#016x, its bytes give %#016x", rdb.ErrChecksum, want, crc)
	}
	switch {
	case version < 1 || version > rdb.MaxVersion:
		return fmt.Errorf("DUMP payload of RDB version %d: resync reads versions 1 to %d", version, rdb.MaxVersion)
	case r.file.version == 0:
		r.file.version = version
	case r.file.version != version:
		return fmt.Errorf("DUMP payloads of RDB versions %d and %d from one source", r.file.version, version)
	}
	r.file.records++
	return nil
}
