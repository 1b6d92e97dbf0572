// Package rdb decodes RDB files, the snapshots Redis saves and sends to
// replicas, as a stream: one record per key, with the raw value bytes a
// RESTORE takes.
package rdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
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

// MaxVersion is the newest RDB version decoded (Redis 7.4).
const MaxVersion = 12

// LoadsVersion returns the newest RDB version a Redis major.minor server
// loads: a DUMP payload of a later version is refused by its RESTORE.
func LoadsVersion(major, minor int) int {
	v := major*100 + minor
	switch {
	case v >= 704:
		return 12
	case v >= 702:
		return 11
	case v >= 700:
		return 10
	case v >= 500:
		return 9
	case v >= 400:
		return 8
	case v >= 302:
		return 7
	}
	return 6
}

// Record is one key: where it lives and what it is. Its value is read by
// Decoder.ReadValue or Decoder.Raw.
type Record struct {
	DB       int
	Key      []byte
	Type     byte  // the RDB value type
	Kind     Kind  // what the type holds
	ExpireMs int64 // absolute expiry in Unix milliseconds; 0 when the key has none
	Idle     int64 // LRU idle seconds; -1 when absent
	Freq     int   // LFU counter; -1 when absent
	// Module is the module type name of a module value, known once the
	// value has been read.
	Module string
}

// Function is a library of functions (Redis 7.0+). Code is the library
// source as FUNCTION LOAD takes it. The pre-release (7.0 RC) format saved
// the name, engine and an optional description apart from the code; Code
// then gets the first line GA expects ("#!<engine> name=<name>").
type Function struct {
	Code         string
	Name, Engine string // pre-release format only
	Description  string // pre-release format only
	PreGA        bool
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
	in        *input
	version   int
	db        int
	aux       []Aux
	functions []Function
	moduleAux []ModuleAux
	done      bool
	err       error // sticky: the stream cannot be read past it

	rec     Record
	pending bool // rec's value has not been read yet
	inKey   bool // errors name rec.Key

	// Reused while reading values.
	elem      Element
	elemLimit int // see RawOrElements
	scratch   []byte
	num       [24]byte
	num2      [24]byte // a second number in one element (a hash field and its value)
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
// returned io.EOF): redis-ver, repl-id, repl-offset, repl-stream-db, and
// each Lua script that Redis 4.0 to 6.2 keep as "lua".
func (d *Decoder) Aux() []Aux { return d.aux }

// AuxValue returns the value of the AUX field key and whether it was
// read (the last one, when a field repeats).
func (d *Decoder) AuxValue(key string) (string, bool) {
	for i := len(d.aux) - 1; i >= 0; i-- {
		if d.aux[i].Key == key {
			return d.aux[i].Value, true
		}
	}
	return "", false
}

// Functions returns the function libraries read so far.
func (d *Decoder) Functions() []Function { return d.functions }

// ModuleAux returns the module AUX data read so far (skipped: only which
// module saved it).
func (d *Decoder) ModuleAux() []ModuleAux { return d.moduleAux }

// fail wraps err with the offset and the key being read, and makes it
// sticky: after a decoding error the stream position is unknown.
func (d *Decoder) fail(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("file truncated: %w", err)
	}
	e := &Error{Offset: d.in.offset(), Err: err}
	if d.inKey {
		e.Key = string(d.rec.Key)
	}
	d.err = e
	return e
}

// Next returns the next key, or io.EOF after the last one once the
// checksum has been verified. Its value is read next by ReadValue or Raw;
// when neither is called, Next skips it. The record and its slices are
// valid until the next call.
func (d *Decoder) Next() (*Record, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.pending {
		if _, err := d.ReadValue(0, nil); err != nil {
			return nil, err
		}
	}
	if d.done {
		return nil, io.EOF
	}
	d.inKey = false
	rec := &d.rec
	*rec = Record{Key: rec.Key[:0], Idle: -1, Freq: -1}
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
		case opModuleAux:
			if err := d.readModuleAux(); err != nil {
				return nil, d.fail(err)
			}
		case opFunction2:
			code, err := d.in.str()
			if err != nil {
				return nil, d.fail(fmt.Errorf("FUNCTION2: %w", err))
			}
			d.functions = append(d.functions, Function{Code: string(code)})
		case opFunctionPre:
			if err := d.readFunctionPreGA(); err != nil {
				return nil, d.fail(fmt.Errorf("FUNCTION (pre-release): %w", err))
			}
		default:
			if KindOf(op) == KindUnknown {
				return nil, d.fail(fmt.Errorf("unknown value type or opcode %d", op))
			}
			k, err := d.in.str()
			if err != nil {
				return nil, d.fail(fmt.Errorf("key: %w", err))
			}
			rec.Key = append(rec.Key, k...)
			rec.DB, rec.Type, rec.Kind = d.db, op, KindOf(op)
			d.pending, d.inKey = true, true
			return rec, nil
		}
	}
}

// ReadValue reads the value of the record Next returned, handing each
// element to fn when fn is not nil (elements are decoded only then:
// without fn, LZF strings are not decompressed nor compact encodings
// walked, which keeps Raw and skipping cheap; the file's checksum still
// covers their bytes). When
// rawLimit > 0 it also records the value's raw bytes, as a DUMP payload
// carries them (the type byte and the serialized value, without the
// version and CRC trailer), and returns them when they fit in rawLimit
// bytes; nil otherwise, so a big key never has to be held whole. The raw
// slice is valid until the next call.
func (d *Decoder) ReadValue(rawLimit int, fn func(*Element) error) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if !d.pending {
		return nil, errors.New("rdb: ReadValue without a record from Next")
	}
	d.pending = false
	if rawLimit > 0 {
		d.in.startRecording(rawLimit, false, d.rec.Type)
	}
	err := d.readValue(d.rec.Type, fn)
	if rawLimit <= 0 {
		if err != nil {
			return nil, d.fail(err)
		}
		return nil, nil
	}
	raw, ok := d.in.stopRecording()
	if err != nil {
		return nil, d.fail(err)
	}
	if !ok {
		return nil, nil
	}
	return raw, nil
}

// RawOrElements reads the value of the record Next returned, as its raw
// bytes when they fit in rawLimit and its collection declares no more
// than elemLimit elements (0: no element limit) — fn is not called then;
// otherwise it hands every element, from the first, to fn and returns nil.
// No more than about rawLimit bytes are held either way: the value is read
// once cheaply, and again with its elements decoded only when it turns out
// big. The element count is known up front only for the encodings that
// declare it (linked lists, hash tables, skiplists); compact encodings are
// bounded by bytes.
func (d *Decoder) RawOrElements(rawLimit, elemLimit int, fn func(*Element) error) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if !d.pending {
		return nil, errors.New("rdb: RawOrElements without a record from Next")
	}
	if rawLimit <= 0 || fn == nil {
		return nil, errors.New("rdb: RawOrElements needs a limit and a callback")
	}
	d.pending = false
	d.in.startRecording(rawLimit, true, d.rec.Type)
	d.elemLimit = elemLimit
	err := d.readValue(d.rec.Type, nil)
	d.elemLimit = 0
	raw, ok := []byte(nil), false
	if err == nil {
		raw, ok = d.in.stopRecording()
		if ok {
			return raw, nil
		}
	} else if !errors.Is(err, errSpill) {
		d.in.stopRecording()
		return nil, d.fail(err)
	}
	d.in.replay()
	if err := d.readValue(d.rec.Type, fn); err != nil {
		return nil, d.fail(err)
	}
	return nil, nil
}

// declared checks a collection's declared element count against the
// element limit of RawOrElements.
func (d *Decoder) declared(n uint64) error {
	if d.elemLimit > 0 && n > uint64(d.elemLimit) {
		return errSpill
	}
	return nil
}

// Raw reads the value of the record Next returned and returns its raw
// bytes (see ReadValue), however big.
func (d *Decoder) Raw() ([]byte, error) {
	return d.ReadValue(math.MaxInt, nil)
}

func (d *Decoder) readFunctionPreGA() error {
	var f Function
	for _, p := range []*string{&f.Name, &f.Engine} {
		v, err := d.in.str()
		if err != nil {
			return err
		}
		*p = string(v)
	}
	hasDesc, err := d.in.plainLength()
	if err != nil {
		return err
	}
	if hasDesc != 0 {
		v, err := d.in.str()
		if err != nil {
			return err
		}
		f.Description = string(v)
	}
	v, err := d.in.str()
	if err != nil {
		return err
	}
	// What FUNCTION LOAD takes since 7.0 GA: the engine and name moved
	// into a first line; a description has no place any more.
	f.Code, f.PreGA = fmt.Sprintf("#!%s name=%s\n%s", f.Engine, f.Name, v), true
	d.functions = append(d.functions, f)
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
