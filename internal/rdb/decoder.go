// Package rdb decodes RDB files, the snapshots Redis saves and sends to
// replicas, as a stream: one record per key, with the raw value bytes a
// RESTORE takes.
package rdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Opcodes that precede keys or end the file.
const (
	opSlotInfo     = 0xf4
	opFunction2    = 0xf5
	opFunctionPre  = 0xf6
	opModuleAux    = 0xf7
	opIdle         = 0xf8
	opFreq         = 0xf9
	opAux          = 0xfa
	opResizeDB     = 0xfb
	opExpireTimeMs = 0xfc
	opExpireTime   = 0xfd
	opSelectDB     = 0xfe
	opEOF          = 0xff
)

// Value types: the byte before each key.
const (
	TypeString = 0
)

// MaxVersion is the newest RDB version decoded (Redis 7.4).
const MaxVersion = 12

// Record is one key.
type Record struct {
	DB       int
	Key      []byte
	Type     byte  // the RDB value type
	ExpireMs int64 // absolute expiry in Unix milliseconds; 0 when the key has none
	Idle     int64 // LRU idle seconds; -1 when absent
	Freq     int   // LFU counter; -1 when absent
	// Raw is the value exactly as a DUMP payload carries it: the type byte
	// and the serialized value, without the RDB version and CRC trailer.
	Raw []byte
	// Str is the value of a string key.
	Str []byte
}

// Aux is an AUX field of the file (redis-ver, repl-id, repl-offset, lua, ...).
type Aux struct {
	Key, Value string
}

// Error is a decoding failure: where in the stream, in which key.
type Error struct {
	Offset int64
	Key    string // "" outside a key
	Err    error
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("rdb: at byte %d, in key %q: %v", e.Offset, e.Key, e.Err)
	}
	return fmt.Sprintf("rdb: at byte %d: %v", e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrChecksum is matched by the error for a file whose checksum differs.
var ErrChecksum = errors.New("checksum mismatch")

// Decoder reads records from an RDB stream.
type Decoder struct {
	in      *input
	version int
	db      int
	aux     []Aux
	done    bool
	key     []byte // the key being read, for errors
}

// NewDecoder reads the file header and returns a decoder for its records.
func NewDecoder(r io.Reader) (*Decoder, error) {
	d := &Decoder{in: newInput(r)}
	head, err := d.in.next(9)
	if err != nil {
		return nil, d.fail(fmt.Errorf("header: %w", err))
	}
	if !bytes.HasPrefix(head, []byte("REDIS")) {
		return nil, &Error{Err: fmt.Errorf("not an RDB file: it starts %q, not REDIS", head[:5])}
	}
	v, err := strconv.Atoi(string(head[5:]))
	if err != nil || v < 1 {
		return nil, &Error{Offset: 5, Err: fmt.Errorf("bad RDB version %q", head[5:])}
	}
	if v > MaxVersion {
		return nil, &Error{Offset: 5, Err: fmt.Errorf("RDB version %d is newer than the newest known, %d (Redis 7.4)", v, MaxVersion)}
	}
	d.version = v
	return d, nil
}

// Version returns the file's RDB version.
func (d *Decoder) Version() int { return d.version }

// Aux returns the AUX fields read so far (all of them, once Next has
// returned io.EOF).
func (d *Decoder) Aux() []Aux { return d.aux }

func (d *Decoder) fail(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("file truncated: %w", err)
	}
	return &Error{Offset: d.in.offset(), Key: string(d.key), Err: err}
}

// Next returns the next key, or io.EOF after the last one once the
// checksum has been verified. The record and its slices are valid until
// the next call.
func (d *Decoder) Next() (*Record, error) {
	if d.done {
		return nil, io.EOF
	}
	rec := &Record{Idle: -1, Freq: -1}
	d.key = nil
	for {
		op, err := d.in.readByte()
		if err != nil {
			return nil, d.fail(err)
		}
		switch op {
		case opEOF:
			return nil, d.finish()
		case opSelectDB:
			n, err := d.in.plainLength()
			if err != nil {
				return nil, d.fail(fmt.Errorf("SELECTDB: %w", err))
			}
			d.db = int(n)
		case opResizeDB:
			if _, err := d.in.plainLength(); err != nil {
				return nil, d.fail(fmt.Errorf("RESIZEDB: %w", err))
			}
			if _, err := d.in.plainLength(); err != nil {
				return nil, d.fail(fmt.Errorf("RESIZEDB: %w", err))
			}
		case opAux:
			k, err := d.in.str()
			if err != nil {
				return nil, d.fail(fmt.Errorf("AUX key: %w", err))
			}
			key := string(k)
			v, err := d.in.str()
			if err != nil {
				return nil, d.fail(fmt.Errorf("AUX %s: %w", key, err))
			}
			d.aux = append(d.aux, Aux{Key: key, Value: string(v)})
		case opExpireTime:
			s, err := d.in.uint32LE()
			if err != nil {
				return nil, d.fail(fmt.Errorf("EXPIRETIME: %w", err))
			}
			rec.ExpireMs = int64(s) * 1000
		case opExpireTimeMs:
			ms, err := d.in.uint64LE()
			if err != nil {
				return nil, d.fail(fmt.Errorf("EXPIRETIME_MS: %w", err))
			}
			rec.ExpireMs = int64(ms)
		case opIdle:
			n, err := d.in.plainLength()
			if err != nil {
				return nil, d.fail(fmt.Errorf("IDLE: %w", err))
			}
			rec.Idle = int64(n)
		case opFreq:
			b, err := d.in.readByte()
			if err != nil {
				return nil, d.fail(fmt.Errorf("FREQ: %w", err))
			}
			rec.Freq = int(b)
		case opSlotInfo:
			for range 3 { // slot, its key count, its keys-with-expiry count
				if _, err := d.in.plainLength(); err != nil {
					return nil, d.fail(fmt.Errorf("SLOT_INFO: %w", err))
				}
			}
		case opModuleAux, opFunctionPre, opFunction2:
			return nil, d.fail(fmt.Errorf("opcode %#x is not decoded yet", op))
		default:
			if err := d.readKey(rec, op); err != nil {
				return nil, err
			}
			return rec, nil
		}
	}
}

// readKey reads the key and value of a record whose type byte is typ.
func (d *Decoder) readKey(rec *Record, typ byte) error {
	k, err := d.in.str()
	if err != nil {
		return d.fail(fmt.Errorf("key: %w", err))
	}
	rec.Key = append(rec.Key[:0], k...)
	d.key = rec.Key
	rec.DB, rec.Type = d.db, typ
	d.in.startRecording()
	switch typ {
	case TypeString:
		v, err := d.in.str()
		if err != nil {
			d.in.stopRecording()
			return d.fail(fmt.Errorf("string value: %w", err))
		}
		rec.Str = append([]byte(nil), v...)
	default:
		d.in.stopRecording()
		return d.fail(fmt.Errorf("value type %d is not decoded yet", typ))
	}
	raw := d.in.stopRecording()
	rec.Raw = append(append(make([]byte, 0, 1+len(raw)), typ), raw...)
	return nil
}

// finish checks the checksum that follows the EOF opcode (RDB 5 and later).
func (d *Decoder) finish() error {
	d.done = true
	if d.version < 5 {
		return io.EOF
	}
	want := d.in.checksum()
	got, err := d.in.uint64LE()
	if err != nil {
		return d.fail(fmt.Errorf("checksum: %w", err))
	}
	// A checksum of 0 means the server did not compute one (rdbchecksum no).
	if got != 0 && got != want {
		return d.fail(fmt.Errorf("%w: the file says %#016x, its bytes give %#016x", ErrChecksum, got, want))
	}
	return io.EOF
}
