package rdb

import (
	"encoding/binary"
	"fmt"
)

// StreamID is a stream entry ID, ms-seq.
type StreamID struct {
	Ms, Seq uint64
}

func (id StreamID) String() string { return fmt.Sprintf("%d-%d", id.Ms, id.Seq) }

// StreamEntry is one live entry; Fields alternates field and value.
type StreamEntry struct {
	ID     StreamID
	Fields [][]byte
}

// StreamMeta is what a stream holds beside its entries. FirstID,
// MaxDeletedID and EntriesAdded are saved from Redis 7.0 (stream type 2).
type StreamMeta struct {
	Length       uint64
	LastID       StreamID
	FirstID      StreamID
	MaxDeletedID StreamID
	EntriesAdded uint64
	Groups       uint64 // how many Group elements follow
}

// StreamGroup is a consumer group with its pending entries and consumers.
type StreamGroup struct {
	Name            []byte
	LastDeliveredID StreamID
	EntriesRead     int64 // -1 when not saved (before 7.0) or not known
	Pending         []StreamPending
	Consumers       []StreamConsumer
}

// StreamPending is an entry delivered to a consumer and not acknowledged.
type StreamPending struct {
	ID            StreamID
	DeliveryMs    int64
	DeliveryCount uint64
}

// StreamConsumer is a consumer of a group and the IDs it has pending.
type StreamConsumer struct {
	Name     []byte
	SeenMs   int64
	ActiveMs int64 // -1 before stream type 3 (7.2)
	Pending  []StreamID
}

// Flags of a stream entry inside a listpack.
const (
	streamEntryDeleted    = 1
	streamEntrySameFields = 2
)

func (d *Decoder) readStream(typ byte, fn visit) error {
	in := d.in
	nodes, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("listpack count: %w", err)
	}
	for i := uint64(0); i < nodes; i++ {
		k, err := in.str()
		if err != nil {
			return fmt.Errorf("master ID of listpack %d: %w", i, err)
		}
		if len(k) != 16 {
			return fmt.Errorf("master ID of listpack %d has %d bytes, not 16", i, len(k))
		}
		master := rawStreamID(k)
		lp, err := in.readStr(fn != nil)
		if err != nil {
			return fmt.Errorf("listpack %d: %w", i, err)
		}
		if fn != nil {
			if err := d.walkStreamListpack(master, lp, fn); err != nil {
				return fmt.Errorf("listpack %d (master ID %s): %w", i, master, err)
			}
		}
	}
	var m StreamMeta
	ids := []*uint64{&m.Length, &m.LastID.Ms, &m.LastID.Seq}
	if typ >= TypeStreamListpacks2 {
		ids = append(ids, &m.FirstID.Ms, &m.FirstID.Seq, &m.MaxDeletedID.Ms, &m.MaxDeletedID.Seq, &m.EntriesAdded)
	}
	for _, p := range ids {
		if *p, err = in.plainLength(); err != nil {
			return fmt.Errorf("stream metadata: %w", err)
		}
	}
	if typ < TypeStreamListpacks2 {
		m.EntriesAdded = m.Length
	}
	if m.Groups, err = in.plainLength(); err != nil {
		return fmt.Errorf("consumer group count: %w", err)
	}
	e := &d.elem
	if fn != nil {
		*e = Element{Stream: &m}
		if err := fn(e); err != nil {
			return err
		}
	}
	for i := uint64(0); i < m.Groups; i++ {
		g, err := d.readGroup(typ)
		if err != nil {
			return fmt.Errorf("consumer group %d of %d: %w", i, m.Groups, err)
		}
		if fn != nil {
			*e = Element{Group: g}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func rawStreamID(b []byte) StreamID {
	return StreamID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (d *Decoder) readStreamID() (StreamID, error) {
	ms, err := d.in.plainLength()
	if err != nil {
		return StreamID{}, err
	}
	seq, err := d.in.plainLength()
	return StreamID{ms, seq}, err
}

// readGroup reads one consumer group. A group is held whole: its pending
// entries are as many as the consumers have not acknowledged.
func (d *Decoder) readGroup(typ byte) (*StreamGroup, error) {
	in := d.in
	name, err := in.str()
	if err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	g := &StreamGroup{Name: append([]byte(nil), name...), EntriesRead: -1}
	if g.LastDeliveredID, err = d.readStreamID(); err != nil {
		return nil, fmt.Errorf("group %q last delivered ID: %w", g.Name, err)
	}
	if typ >= TypeStreamListpacks2 {
		n, err := in.plainLength()
		if err != nil {
			return nil, fmt.Errorf("group %q entries read: %w", g.Name, err)
		}
		g.EntriesRead = int64(n) // a saved -1 (unknown) reads back as 2^64-1
	}
	n, err := in.plainLength()
	if err != nil {
		return nil, fmt.Errorf("group %q pending count: %w", g.Name, err)
	}
	for i := uint64(0); i < n; i++ {
		raw, err := in.next(16)
		if err != nil {
			return nil, fmt.Errorf("group %q pending entry %d: %w", g.Name, i, err)
		}
		p := StreamPending{ID: rawStreamID(raw)}
		ms, err := in.uint64LE()
		if err != nil {
			return nil, fmt.Errorf("group %q pending entry %d: %w", g.Name, i, err)
		}
		p.DeliveryMs = int64(ms)
		if p.DeliveryCount, err = in.plainLength(); err != nil {
			return nil, fmt.Errorf("group %q pending entry %d: %w", g.Name, i, err)
		}
		g.Pending = append(g.Pending, p)
	}
	if n, err = in.plainLength(); err != nil {
		return nil, fmt.Errorf("group %q consumer count: %w", g.Name, err)
	}
	for i := uint64(0); i < n; i++ {
		name, err := in.str()
		if err != nil {
			return nil, fmt.Errorf("group %q consumer %d: %w", g.Name, i, err)
		}
		c := StreamConsumer{Name: append([]byte(nil), name...), ActiveMs: -1}
		ms, err := in.uint64LE()
		if err != nil {
			return nil, fmt.Errorf("group %q consumer %q seen time: %w", g.Name, c.Name, err)
		}
		c.SeenMs = int64(ms)
		if typ >= TypeStreamListpacks3 {
			if ms, err = in.uint64LE(); err != nil {
				return nil, fmt.Errorf("group %q consumer %q active time: %w", g.Name, c.Name, err)
			}
			c.ActiveMs = int64(ms)
		}
		np, err := in.plainLength()
		if err != nil {
			return nil, fmt.Errorf("group %q consumer %q pending count: %w", g.Name, c.Name, err)
		}
		for j := uint64(0); j < np; j++ {
			raw, err := in.next(16)
			if err != nil {
				return nil, fmt.Errorf("group %q consumer %q pending entry %d: %w", g.Name, c.Name, j, err)
			}
			c.Pending = append(c.Pending, rawStreamID(raw))
		}
		g.Consumers = append(g.Consumers, c)
	}
	return g, nil
}

// walkStreamListpack hands each live entry of one stream listpack to fn.
// The listpack starts with a master entry (count, deleted count, the
// master fields, a 0 terminator); each entry then holds flags, the ID as
// a delta from the master ID, its fields (only values when they are the
// master's) and its own element count.
func (d *Decoder) walkStreamListpack(master StreamID, b []byte, fn visit) error {
	lp, err := newListpack(b)
	if err != nil {
		return err
	}
	var v blobEntry
	nextInt := func(what string) (int64, error) {
		if lp.done() {
			return 0, fmt.Errorf("listpack ends before the %s", what)
		}
		if err := lp.next(&v); err != nil {
			return 0, err
		}
		n, err := v.integer()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		return n, nil
	}
	nextStr := func(what string) ([]byte, error) {
		if lp.done() {
			return nil, fmt.Errorf("listpack ends before the %s", what)
		}
		if err := lp.next(&v); err != nil {
			return nil, err
		}
		if v.isInt {
			return fmt.Appendf(nil, "%d", v.ival), nil
		}
		return v.str, nil
	}
	if _, err := nextInt("entry count"); err != nil {
		return err
	}
	if _, err := nextInt("deleted count"); err != nil {
		return err
	}
	nf, err := nextInt("master field count")
	if err != nil {
		return err
	}
	if nf < 0 || nf > int64(len(b)) {
		return fmt.Errorf("master field count %d", nf)
	}
	masterFields := make([][]byte, nf)
	for i := range masterFields {
		if masterFields[i], err = nextStr("master field"); err != nil {
			return err
		}
	}
	if _, err := nextInt("master entry terminator"); err != nil {
		return err
	}
	entry := StreamEntry{}
	for !lp.done() {
		flags, err := nextInt("entry flags")
		if err != nil {
			return err
		}
		dms, err := nextInt("entry ID")
		if err != nil {
			return err
		}
		dseq, err := nextInt("entry ID")
		if err != nil {
			return err
		}
		entry.ID = StreamID{master.Ms + uint64(dms), master.Seq + uint64(dseq)}
		entry.Fields = entry.Fields[:0]
		if flags&streamEntrySameFields != 0 {
			for _, f := range masterFields {
				v, err := nextStr("value")
				if err != nil {
					return err
				}
				entry.Fields = append(entry.Fields, f, v)
			}
		} else {
			n, err := nextInt("field count")
			if err != nil {
				return err
			}
			if n < 0 || n > int64(len(b)) {
				return fmt.Errorf("entry %s has a field count of %d", entry.ID, n)
			}
			for range 2 * n {
				v, err := nextStr("field")
				if err != nil {
					return err
				}
				entry.Fields = append(entry.Fields, v)
			}
		}
		if _, err := nextInt("entry element count"); err != nil {
			return err
		}
		if flags&streamEntryDeleted != 0 {
			continue
		}
		d.elem = Element{Entry: &entry}
		if err := fn(&d.elem); err != nil {
			return err
		}
	}
	return nil
}
