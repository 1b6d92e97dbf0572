package rewrite_test

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/rewrite"
)

// recorder keeps a copy of every command emitted, as text.
type recorder struct{ cmds []string }

func (r *recorder) emit(args [][]byte) error {
	r.cmds = append(r.cmds, string(bytes.Join(args, []byte(" "))))
	return nil
}

func unsupported(t *testing.T, err error) *rewrite.UnsupportedError {
	t.Helper()
	var u *rewrite.UnsupportedError
	if !errors.As(err, &u) {
		t.Fatalf("error %v is not an *UnsupportedError", err)
	}
	return u
}

// checkMessage checks that an UnsupportedError's message says what, for
// which key and target, and how to go on.
func checkMessage(t *testing.T, err error, key string, target redisproc.Version, what string) {
	t.Helper()
	u := unsupported(t, err)
	if string(u.Key) != key || u.Target != target || !strings.Contains(u.What, what) {
		t.Errorf("UnsupportedError %+v, want key %q, target %s, what %q", u, key, target, what)
	}
	msg := err.Error()
	for _, part := range []string{`"` + key + `"`, target.String(), what, "--drop-unsupported"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q does not mention %q", msg, part)
		}
	}
}

var v70 = redisproc.Version{Major: 7, Minor: 0, Patch: 15}

// hashWithFieldTTLs is a hash as a 7.4 source hands it: two of its three
// fields expire.
func hashWithFieldTTLs(k *rewrite.Key) error {
	for _, e := range []rdb.Element{
		{Member: []byte("a"), Value: []byte("1"), ExpireMs: 4102444800000},
		{Member: []byte("b"), Value: []byte("2")},
		{Member: []byte("c"), Value: []byte("3"), ExpireMs: 4102444800001},
	} {
		if err := k.Add(&e); err != nil {
			return err
		}
	}
	return k.Finish()
}

func TestFieldTTLsUnsupported(t *testing.T) {
	var r recorder
	rec := &rdb.Record{Key: []byte("h"), Type: rdb.TypeHashListpackEx, Kind: rdb.KindHash}
	k, err := rewrite.Start(rec, rewrite.Options{Target: v70}, r.emit)
	if err != nil {
		t.Fatal(err)
	}
	err = hashWithFieldTTLs(k)
	checkMessage(t, err, "h", v70, "hash field TTLs")
	if err := k.Finish(); unsupported(t, err) == nil {
		t.Error("Finish after the error did not return it")
	}
}

// With DropUnsupported the fields are kept, without their TTLs, on a
// real server.
func TestFieldTTLsDropped(t *testing.T) {
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	do(t, c, "RPUSH", "h", "was a list")
	snk := newSink(c, rewrite.Options{})
	// The server's version, or 7.0 for a server that has field TTLs.
	target := s.Version
	if target.AtLeast(7, 4) {
		target = v70
	}
	rec := &rdb.Record{Key: []byte("h"), Type: rdb.TypeHashListpackEx, Kind: rdb.KindHash, ExpireMs: 4102444800000}
	k, err := rewrite.Start(rec, rewrite.Options{Target: target, DropUnsupported: true}, snk.emit)
	if err != nil {
		t.Fatal(err)
	}
	if err := hashWithFieldTTLs(k); err != nil {
		t.Fatal(err)
	}
	if err := snk.sync(); err != nil {
		t.Fatal(err)
	}
	if k.Skip() {
		t.Error("the hash is skipped")
	}
	if got, want := k.Dropped(), "field TTLs of 2 fields (target "+target.String()+" has no hash field expiry)"; got != want {
		t.Errorf("Dropped() = %q, want %q", got, want)
	}
	if v := do(t, c, "HGET", "h", "c").Text(); v != "3" {
		t.Errorf("HGET h c = %q, want 3", v)
	}
	if n := do(t, c, "HLEN", "h").Int; n != 3 {
		t.Errorf("HLEN h = %d, want 3", n)
	}
	if ms := do(t, c, "PTTL", "h").Int; ms <= 0 {
		t.Errorf("PTTL h = %d, want the key's expiry", ms)
	}
	if snk.counts["HPEXPIREAT"] != 0 {
		t.Errorf("%d HPEXPIREAT sent to a 7.0 target", snk.counts["HPEXPIREAT"])
	}
}

// On a 7.4 target the field TTLs are set, one HPEXPIREAT per expiry time.
func TestFieldTTLsOn74(t *testing.T) {
	redistest.RequireVersion(t, 7, 4, "introduced hash field expiry")
	s := redistest.Start(t)
	c := redistest.Dial(t, s)
	snk := newSink(c, rewrite.Options{})
	rec := &rdb.Record{Key: []byte("h"), Type: rdb.TypeHashListpackEx, Kind: rdb.KindHash}
	k, err := rewrite.Start(rec, rewrite.Options{Target: s.Version}, snk.emit)
	if err != nil {
		t.Fatal(err)
	}
	if err := hashWithFieldTTLs(k); err != nil {
		t.Fatal(err)
	}
	if err := snk.sync(); err != nil {
		t.Fatal(err)
	}
	if k.Dropped() != "" {
		t.Errorf("Dropped() = %q", k.Dropped())
	}
	var got []int64
	for _, e := range do(t, c, "HPEXPIRETIME", "h", "FIELDS", "3", "a", "b", "c").Elems {
		got = append(got, e.Int)
	}
	if want := []int64{4102444800000, -1, 4102444800001}; !slices.Equal(got, want) {
		t.Errorf("HPEXPIRETIME = %v, want %v", got, want)
	}
	if snk.counts["HPEXPIREAT"] != 2 {
		t.Errorf("%d HPEXPIREAT, want 2 (two expiry times)", snk.counts["HPEXPIREAT"])
	}
}

func TestStreamUnsupported(t *testing.T) {
	v40 := redisproc.Version{Major: 4, Minor: 0, Patch: 14}
	rec := &rdb.Record{Key: []byte("s"), Type: rdb.TypeStreamListpacks3, Kind: rdb.KindStream}
	var r recorder
	k, err := rewrite.Start(rec, rewrite.Options{Target: v40}, r.emit)
	if k != nil {
		t.Error("a Key with the error")
	}
	checkMessage(t, err, "s", v40, "stream")
	if len(r.cmds) != 0 {
		t.Errorf("emitted %q", r.cmds)
	}

	k, err = rewrite.Start(rec, rewrite.Options{Target: v40, DropUnsupported: true}, r.emit)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Skip() {
		t.Error("the stream is not skipped")
	}
	if got, want := k.Dropped(), "the whole key: a stream (target 4.0.14 has no streams)"; got != want {
		t.Errorf("Dropped() = %q, want %q", got, want)
	}
	entry := &rdb.StreamEntry{ID: rdb.StreamID{Ms: 1, Seq: 1}, Fields: [][]byte{[]byte("f"), []byte("v")}}
	if err := k.Add(&rdb.Element{Entry: entry}); err != nil {
		t.Error(err)
	}
	if err := k.Add(&rdb.Element{Stream: &rdb.StreamMeta{Length: 1, LastID: entry.ID}}); err != nil {
		t.Error(err)
	}
	if err := k.Finish(); err != nil {
		t.Error(err)
	}
	if len(r.cmds) != 0 {
		t.Errorf("emitted %q for a dropped key", r.cmds)
	}
}

func TestModuleUnsupported(t *testing.T) {
	v74 := redisproc.Version{Major: 7, Minor: 4, Patch: 1}
	rec := &rdb.Record{Key: []byte("m"), Type: rdb.TypeModule2, Kind: rdb.KindModule}
	var r recorder
	_, err := rewrite.Start(rec, rewrite.Options{Target: v74}, r.emit)
	checkMessage(t, err, "m", v74, "module value")
	k, err := rewrite.Start(rec, rewrite.Options{Target: v74, DropUnsupported: true}, r.emit)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Skip() || !strings.Contains(k.Dropped(), "whole key: a module value") {
		t.Errorf("Skip() %v, Dropped() %q", k.Skip(), k.Dropped())
	}
	if err := k.Add(&rdb.Element{Member: []byte("x")}); err != nil {
		t.Error(err)
	}
	if err := k.Finish(); err != nil {
		t.Error(err)
	}
	if len(r.cmds) != 0 {
		t.Errorf("emitted %q for a dropped key", r.cmds)
	}
}

// The commands of a key, chunk by chunk, as the target receives them.
func TestCommands(t *testing.T) {
	v28 := redisproc.Version{Major: 2, Minor: 8, Patch: 24}
	v74 := redisproc.Version{Major: 7, Minor: 4, Patch: 1}
	members := func(ms ...string) []rdb.Element {
		var es []rdb.Element
		for _, m := range ms {
			es = append(es, rdb.Element{Member: []byte(m)})
		}
		return es
	}
	for _, c := range []struct {
		name  string
		rec   rdb.Record
		o     rewrite.Options
		elems []rdb.Element
		want  []string
	}{
		{"string", rdb.Record{Kind: rdb.KindString}, rewrite.Options{}, members("v"),
			[]string{"DEL k", "SET k v"}},
		{"empty string", rdb.Record{Kind: rdb.KindString, ExpireMs: 1700000000000}, rewrite.Options{}, []rdb.Element{{}},
			[]string{"DEL k", "SET k ", "PEXPIREAT k 1700000000000"}},
		{"string in pieces", rdb.Record{Kind: rdb.KindString}, rewrite.Options{ChunkBytes: 4}, members("0123456789"),
			[]string{"DEL k", "SET k 0123", "APPEND k 4567", "APPEND k 89"}},
		{"list by count", rdb.Record{Kind: rdb.KindList}, rewrite.Options{ChunkElements: 2}, members("a", "b", "c", "", "e"),
			[]string{"DEL k", "RPUSH k a b", "RPUSH k c ", "RPUSH k e"}},
		// "SADD" and "k" count: 5 bytes of head, then 3 bytes a member.
		{"set by bytes", rdb.Record{Kind: rdb.KindSet}, rewrite.Options{ChunkBytes: 11}, members("aaa", "bbb", "ccc", "ddddddddd", "e"),
			[]string{"DEL k", "SADD k aaa bbb", "SADD k ccc", "SADD k ddddddddd", "SADD k e"}},
		{"zset scores", rdb.Record{Kind: rdb.KindZSet}, rewrite.Options{ChunkElements: 3}, []rdb.Element{
			{Member: []byte("a"), Score: math.Inf(1)}, {Member: []byte("b"), Score: math.Inf(-1)},
			{Member: []byte("c"), Score: 0.1}, {Member: []byte(""), Score: 1e300}},
			[]string{"DEL k", "ZADD k inf a -inf b 0.1 c", "ZADD k 1e+300 "}},
		{"hash before 4.0", rdb.Record{Kind: rdb.KindHash}, rewrite.Options{Target: v28}, []rdb.Element{
			{Member: []byte("f"), Value: []byte("v")}, {Member: []byte("g")}},
			[]string{"DEL k", "HMSET k f v g "}},
		{"hash field TTLs", rdb.Record{Kind: rdb.KindHash, ExpireMs: 5}, rewrite.Options{Target: v74, ChunkElements: 4}, []rdb.Element{
			{Member: []byte("a"), Value: []byte("1"), ExpireMs: 20}, {Member: []byte("b"), Value: []byte("2"), ExpireMs: 10},
			{Member: []byte("c"), Value: []byte("3")}, {Member: []byte("d"), Value: []byte("4"), ExpireMs: 20},
			{Member: []byte("e"), Value: []byte("5"), ExpireMs: 10}},
			[]string{"DEL k", "HSET k a 1 b 2 c 3 d 4", "HPEXPIREAT k 10 FIELDS 1 b", "HPEXPIREAT k 20 FIELDS 2 a d",
				"HSET k e 5", "HPEXPIREAT k 10 FIELDS 1 e", "PEXPIREAT k 5"}},
		{"big pair alone", rdb.Record{Kind: rdb.KindHash}, rewrite.Options{Target: v74, ChunkBytes: 12}, []rdb.Element{
			{Member: []byte("a"), Value: []byte("1")}, {Member: []byte("big"), Value: []byte("0123456789"), ExpireMs: 7},
			{Member: []byte("b"), Value: []byte("2")}},
			[]string{"DEL k", "HSET k a 1", "HSET k big 0123456789", "HPEXPIREAT k 7 FIELDS 1 big", "HSET k b 2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r recorder
			c.rec.Key = []byte("k")
			k, err := rewrite.Start(&c.rec, c.o, r.emit)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range c.elems {
				if err := k.Add(&e); err != nil {
					t.Fatal(err)
				}
			}
			if err := k.Finish(); err != nil {
				t.Fatal(err)
			}
			if strings.Join(r.cmds, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(r.cmds, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestStreamCommands(t *testing.T) {
	id := func(ms, seq uint64) rdb.StreamID { return rdb.StreamID{Ms: ms, Seq: seq} }
	group := &rdb.StreamGroup{
		Name: []byte("g"), LastDeliveredID: id(3, 0), EntriesRead: 2,
		Pending: []rdb.StreamPending{
			{ID: id(1, 0), DeliveryMs: 100, DeliveryCount: 1},
			{ID: id(2, 0), DeliveryMs: 100, DeliveryCount: 1},
			{ID: id(3, 0), DeliveryMs: 100, DeliveryCount: 1},
			{ID: id(3, 1), DeliveryMs: 200, DeliveryCount: 4},
		},
		Consumers: []rdb.StreamConsumer{
			{Name: []byte("alice"), Pending: []rdb.StreamID{id(1, 0), id(2, 0), id(3, 1)}},
			{Name: []byte("bob"), Pending: []rdb.StreamID{id(3, 0)}},
			{Name: []byte("carol")},
		},
	}
	unknown := &rdb.StreamGroup{Name: []byte("u"), EntriesRead: -1}
	meta := &rdb.StreamMeta{Length: 2, LastID: id(9, 9), MaxDeletedID: id(3, 1), EntriesAdded: 6, Groups: 2}
	for _, c := range []struct {
		target redisproc.Version
		want   []string
	}{
		{redisproc.Version{Major: 7, Minor: 0}, []string{
			"DEL s", "XADD s 1-0 f v", "XADD s 2-0 f v",
			"XSETID s 9-9 ENTRIESADDED 6 MAXDELETEDID 3-1",
			"XGROUP CREATE s g 3-0 ENTRIESREAD 2",
			"XGROUP CREATECONSUMER s g alice", "XGROUP CREATECONSUMER s g bob", "XGROUP CREATECONSUMER s g carol",
			"XCLAIM s g alice 0 1-0 2-0 TIME 100 RETRYCOUNT 1 FORCE JUSTID",
			"XCLAIM s g bob 0 3-0 TIME 100 RETRYCOUNT 1 FORCE JUSTID",
			"XCLAIM s g alice 0 3-1 TIME 200 RETRYCOUNT 4 FORCE JUSTID",
			"XGROUP CREATE s u 0-0",
			"PEXPIREAT s 77"}},
		{redisproc.Version{Major: 5, Minor: 0}, []string{
			"DEL s", "XADD s 1-0 f v", "XADD s 2-0 f v",
			"XSETID s 9-9",
			"XGROUP CREATE s g 3-0",
			"XREADGROUP GROUP g alice COUNT 1 STREAMS s 0", "XREADGROUP GROUP g bob COUNT 1 STREAMS s 0",
			"XREADGROUP GROUP g carol COUNT 1 STREAMS s 0",
			"XCLAIM s g alice 0 1-0 2-0 TIME 100 RETRYCOUNT 1 FORCE JUSTID",
			"XCLAIM s g bob 0 3-0 TIME 100 RETRYCOUNT 1 FORCE JUSTID",
			"XCLAIM s g alice 0 3-1 TIME 200 RETRYCOUNT 4 FORCE JUSTID",
			"XGROUP CREATE s u 0-0",
			"PEXPIREAT s 77"}},
	} {
		var r recorder
		rec := &rdb.Record{Key: []byte("s"), Kind: rdb.KindStream, ExpireMs: 77}
		k, err := rewrite.Start(rec, rewrite.Options{Target: c.target}, r.emit)
		if err != nil {
			t.Fatal(err)
		}
		fields := [][]byte{[]byte("f"), []byte("v")}
		for _, e := range []rdb.Element{
			{Entry: &rdb.StreamEntry{ID: id(1, 0), Fields: fields}},
			{Entry: &rdb.StreamEntry{ID: id(2, 0), Fields: fields}},
			{Stream: meta}, {Group: group}, {Group: unknown},
		} {
			if err := k.Add(&e); err != nil {
				t.Fatal(err)
			}
		}
		if err := k.Finish(); err != nil {
			t.Fatal(err)
		}
		if strings.Join(r.cmds, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("target %s: commands:\n%s\nwant:\n%s", c.target, strings.Join(r.cmds, "\n"), strings.Join(c.want, "\n"))
		}
	}

	// An empty stream is created by an entry trimmed at once; 0-0, which
	// XADD refuses, is set by XSETID.
	for _, c := range []struct {
		last rdb.StreamID
		want string
	}{
		{id(0, 0), "DEL s\nXADD s MAXLEN 0 0-1 x x\nXSETID s 0-0 ENTRIESADDED 0 MAXDELETEDID 0-0"},
		{id(5, 2), "DEL s\nXADD s MAXLEN 0 5-2 x x\nXSETID s 5-2 ENTRIESADDED 0 MAXDELETEDID 0-0"},
	} {
		var r recorder
		k, err := rewrite.Start(&rdb.Record{Key: []byte("s"), Kind: rdb.KindStream}, rewrite.Options{Target: v70}, r.emit)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Add(&rdb.Element{Stream: &rdb.StreamMeta{LastID: c.last}}); err != nil {
			t.Fatal(err)
		}
		if err := k.Finish(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.cmds, "\n"); got != c.want {
			t.Errorf("empty stream %s: commands:\n%s\nwant:\n%s", c.last, got, c.want)
		}
	}
}

// Malformed input is an error naming the key, never a panic.
func TestBadInput(t *testing.T) {
	var r recorder
	start := func(kind rdb.Kind) *rewrite.Key {
		t.Helper()
		k, err := rewrite.Start(&rdb.Record{Key: []byte("bad"), Kind: kind}, rewrite.Options{Target: v70}, r.emit)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), `"bad"`) {
			t.Errorf("%s: error %v, want one naming the key", what, err)
		}
	}
	k := start(rdb.KindString)
	k.Add(&rdb.Element{Member: []byte("a")})
	check("second string value", k.Add(&rdb.Element{Member: []byte("b")}))
	check("Finish after an error", k.Finish())

	check("string without value", start(rdb.KindString).Finish())
	check("nil element", start(rdb.KindList).Add(nil))
	check("NaN score", start(rdb.KindZSet).Add(&rdb.Element{Member: []byte("m"), Score: math.NaN()}))
	check("negative field expiry", start(rdb.KindHash).Add(&rdb.Element{Member: []byte("f"), ExpireMs: -1}))

	k = start(rdb.KindList)
	if err := k.Finish(); err != nil {
		t.Fatal(err)
	}
	check("Add after Finish", k.Add(&rdb.Element{Member: []byte("a")}))
	k = start(rdb.KindSet)
	if err := k.Finish(); err != nil {
		t.Fatal(err)
	}
	check("Finish twice", k.Finish())

	check("empty stream element", start(rdb.KindStream).Add(&rdb.Element{}))
	check("stream without metadata", start(rdb.KindStream).Finish())
	check("entry without fields", start(rdb.KindStream).Add(&rdb.Element{Entry: &rdb.StreamEntry{}}))
	check("group before metadata", start(rdb.KindStream).Add(&rdb.Element{Group: &rdb.StreamGroup{}}))
	k = start(rdb.KindStream)
	k.Add(&rdb.Element{Stream: &rdb.StreamMeta{Groups: 1}})
	check("missing group", k.Finish())
	k = start(rdb.KindStream)
	k.Add(&rdb.Element{Stream: &rdb.StreamMeta{Groups: 1}})
	check("pending entry without consumer", k.Add(&rdb.Element{Group: &rdb.StreamGroup{
		Name: []byte("g"), Pending: []rdb.StreamPending{{ID: rdb.StreamID{Ms: 1}}}}}))

	if _, err := rewrite.Start(&rdb.Record{Key: []byte("bad"), Type: 99}, rewrite.Options{}, r.emit); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := rewrite.Start(nil, rewrite.Options{}, r.emit); err == nil {
		t.Error("nil record: no error")
	}

	failing := func([][]byte) error { return errors.New("connection lost") }
	_, err := rewrite.Start(&rdb.Record{Key: []byte("bad"), Kind: rdb.KindList}, rewrite.Options{}, failing)
	check("emit failure", err)
	if err == nil || !strings.Contains(err.Error(), "DEL") || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("emit failure: %v", err)
	}
}
