package rewrite

import (
	"fmt"

	"github.com/resync/resync/internal/rdb"
)

func (k *Key) addStream(e *rdb.Element) error {
	switch {
	case e.Entry != nil:
		return k.addEntry(e.Entry)
	case e.Stream != nil:
		return k.addStreamMeta(e.Stream)
	case e.Group != nil:
		return k.addGroup(e.Group)
	}
	return fmt.Errorf("rewrite key %s: stream element without an entry, metadata or group", k.o.Keys.Quote(k.key))
}

// addEntry sends XADD key id field value ...: an entry is one command
// however big, sent straight from the decoder's bytes.
func (k *Key) addEntry(en *rdb.StreamEntry) error {
	if k.gotMeta {
		return fmt.Errorf("rewrite key %s: stream entry %s after the stream's metadata", k.o.Keys.Quote(k.key), en.ID)
	}
	if len(en.Fields) == 0 || len(en.Fields)%2 != 0 {
		return fmt.Errorf("rewrite key %s: stream entry %s has %d fields and values, not pairs", k.o.Keys.Quote(k.key), en.ID, len(en.Fields))
	}
	k.cmd.reset()
	k.cmd.addString("XADD")
	k.cmd.add(k.key)
	k.cmd.addID(en.ID)
	if err := k.send(k.cmd.build(en.Fields...)); err != nil {
		return err
	}
	k.entries++
	return nil
}

// addStreamMeta creates the stream if no entry did, and sets what XADD
// cannot: the last ID, and on 7.0+ the count of entries ever added and
// the greatest deleted ID (which lag and entries-read depend on).
func (k *Key) addStreamMeta(m *rdb.StreamMeta) error {
	if k.gotMeta {
		return fmt.Errorf("rewrite key %s: stream metadata comes twice", k.o.Keys.Quote(k.key))
	}
	k.gotMeta, k.wantGroups = true, m.Groups
	if k.entries == 0 {
		// An empty stream still exists, with its last ID and groups: add
		// an entry and trim it away at once. XADD refuses 0-0, which the
		// XSETID below restores; XSETID may lower the ID of an empty stream.
		id := m.LastID
		if id == (rdb.StreamID{}) {
			id.Seq = 1
		}
		k.cmd.reset()
		k.cmd.addString("XADD")
		k.cmd.add(k.key)
		k.cmd.addString("MAXLEN")
		k.cmd.addString("0")
		k.cmd.addID(id)
		k.cmd.addString("x")
		k.cmd.addString("x")
		if err := k.send(k.cmd.build()); err != nil {
			return err
		}
	}
	k.cmd.reset()
	k.cmd.addString("XSETID")
	k.cmd.add(k.key)
	k.cmd.addID(m.LastID)
	if k.o.Target.AtLeast(7, 0) {
		k.cmd.addString("ENTRIESADDED")
		k.cmd.addUint(m.EntriesAdded)
		k.cmd.addString("MAXDELETEDID")
		k.cmd.addID(m.MaxDeletedID)
	}
	return k.send(k.cmd.build())
}

// addGroup creates a consumer group, its consumers, and its pending
// entries list (PEL), each entry claimed by the consumer that holds it,
// with its delivery time and count.
func (k *Key) addGroup(g *rdb.StreamGroup) error {
	if !k.gotMeta {
		return fmt.Errorf("rewrite key %s: consumer group %q before the stream's metadata", k.o.Keys.Quote(k.key), g.Name)
	}
	k.groups++
	k.cmd.reset()
	k.cmd.addString("XGROUP")
	k.cmd.addString("CREATE")
	k.cmd.add(k.key)
	k.cmd.add(g.Name)
	k.cmd.addID(g.LastDeliveredID)
	if k.o.Target.AtLeast(7, 0) && g.EntriesRead >= 0 {
		k.cmd.addString("ENTRIESREAD")
		k.cmd.addInt(g.EntriesRead)
	}
	if err := k.send(k.cmd.build()); err != nil {
		return err
	}

	owner := make(map[rdb.StreamID]int) // pending ID -> index of its consumer
	for i, c := range g.Consumers {
		for _, id := range c.Pending {
			owner[id] = i
		}
		// Created on their own, so that consumers without pending entries
		// (or whose entries' messages are gone) exist too.
		k.cmd.reset()
		if k.o.Target.AtLeast(6, 2) {
			k.cmd.addString("XGROUP")
			k.cmd.addString("CREATECONSUMER")
			k.cmd.add(k.key)
			k.cmd.add(g.Name)
			k.cmd.add(c.Name)
		} else {
			// Before 6.2 only a read creates a consumer: reading its own
			// history, empty in a new group, changes nothing else.
			k.cmd.addString("XREADGROUP")
			k.cmd.addString("GROUP")
			k.cmd.add(g.Name)
			k.cmd.add(c.Name)
			k.cmd.addString("COUNT")
			k.cmd.addString("1")
			k.cmd.addString("STREAMS")
			k.cmd.add(k.key)
			k.cmd.addString("0")
		}
		if err := k.send(k.cmd.build()); err != nil {
			return err
		}
	}

	// One XCLAIM for a run of entries that share consumer, delivery time
	// and count (entries delivered by one read), up to a chunk's worth.
	for i := 0; i < len(g.Pending); {
		p := g.Pending[i]
		c, ok := owner[p.ID]
		if !ok {
			return fmt.Errorf("rewrite key %s: consumer group %q: pending entry %s belongs to no consumer", k.o.Keys.Quote(k.key), g.Name, p.ID)
		}
		k.cmd.reset()
		k.cmd.addString("XCLAIM")
		k.cmd.add(k.key)
		k.cmd.add(g.Name)
		k.cmd.add(g.Consumers[c].Name)
		k.cmd.addString("0")
		j := i
		for ; j < len(g.Pending) && j-i < k.o.ChunkElements; j++ {
			q := g.Pending[j]
			if qc, ok := owner[q.ID]; !ok || qc != c || q.DeliveryMs != p.DeliveryMs || q.DeliveryCount != p.DeliveryCount {
				break
			}
			k.cmd.addID(q.ID)
		}
		k.cmd.addString("TIME")
		k.cmd.addInt(p.DeliveryMs)
		// JUSTID leaves the delivery count alone; RETRYCOUNT sets it.
		k.cmd.addString("RETRYCOUNT")
		k.cmd.addUint(p.DeliveryCount)
		k.cmd.addString("FORCE")
		k.cmd.addString("JUSTID")
		if err := k.send(k.cmd.build()); err != nil {
			return err
		}
		i = j
	}
	return nil
}
