package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/resync/resync/internal/cluster"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789": 0x31c3 % cluster.Slots, "foo": 12182, "bar": 5061, "": 0,
		"{user1000}.following": cluster.Slot([]byte("user1000")),
		"a{}b":                 cluster.Slot([]byte("a{}b")), // an empty tag hashes the whole key
		"{}{x}":                cluster.Slot([]byte("{}{x}")),
		"x{y}{z}":              cluster.Slot([]byte("y")),
	} {
		if got := cluster.Slot([]byte(key)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestSlotAgreesWithRedis(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	c := redistest.StartCluster(t, 1, 0)
	conn := redistest.Dial(t, c.Masters[0])
	for i := range 2000 {
		b := make([]byte, rand.IntN(20))
		for j := range b {
			b[j] = "ab{}c\x00\xff"[rand.IntN(7)]
		}
		if i%3 == 0 {
			b = []byte("key:" + strconv.Itoa(i))
		}
		v, err := conn.Do("CLUSTER", "KEYSLOT", string(b))
		if err != nil {
			t.Fatal(err)
		}
		if got := cluster.Slot(b); int64(got) != v.Int {
			t.Fatalf("Slot(%q) = %d, Redis says %d", b, got, v.Int)
		}
	}
}

func TestLoad(t *testing.T) {
	redistest.RequireVersion(t, 3, 0, "introduced Redis Cluster")
	c := redistest.StartCluster(t, 3, 1)
	for _, n := range c.Nodes() {
		conn := redistest.Dial(t, n)
		on, err := cluster.Enabled(conn)
		if err != nil || !on {
			t.Fatalf("%s: Enabled %v %v", n.Addr, on, err)
		}
		top, err := cluster.Load(conn)
		if err != nil {
			t.Fatal(err)
		}
		if len(top.Masters) != 3 || top.Uncovered() != 0 {
			t.Fatalf("from %s: %d masters, %d slots uncovered", n.Addr, len(top.Masters), top.Uncovered())
		}
		for i, m := range c.Masters {
			first, last := redisproc.SlotRange(i, 3)
			for _, s := range []int{first, last} {
				if o := top.Owner(s); o < 0 || top.Masters[o].Addr != m.Addr {
					t.Fatalf("slot %d: owner %d, want %s (%+v)", s, o, m.Addr, top.Masters)
				}
			}
		}
	}
	if on, err := cluster.Enabled(redistest.Dial(t, redistest.Start(t))); err != nil || on {
		t.Fatalf("standalone: Enabled %v %v", on, err)
	}
}

func TestParseNodes(t *testing.T) {
	// 3.2's format (no cluster bus port), a failed master, a replica, a
	// migrating slot, and 7.x's hostname.
	text := "a1 10.0.0.1:7000 myself,master - 0 0 1 connected 0-100 200 [201->-b2]\n" +
		"b2 10.0.0.2:7001@17001,host-b master - 0 0 2 connected 101-199 201-16383\n" +
		"c3 10.0.0.3:7002@17002 slave a1 0 0 1 connected\n" +
		"d4 10.0.0.4:7003@17003 master,fail - 0 0 3 disconnected\n" +
		"e5 :7004@17004 master - 0 0 4 connected\n"
	top, err := cluster.ParseNodes(text, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Masters) != 2 || top.Uncovered() != 0 {
		t.Fatalf("%+v, %d uncovered", top.Masters, top.Uncovered())
	}
	for slot, want := range map[int]string{0: "10.0.0.1:7000", 200: "10.0.0.1:7000", 201: "10.0.0.2:7001", 16383: "10.0.0.2:7001"} {
		if got := top.Masters[top.Owner(slot)].Addr; got != want {
			t.Errorf("slot %d: %s, want %s", slot, got, want)
		}
	}
	lone, err := cluster.ParseNodes("e5 :7004@17004 myself,master - 0 0 4 connected 0-16383\n", "127.0.0.1")
	if err != nil || lone.Masters[0].Addr != "127.0.0.1:7004" {
		t.Fatalf("lone node: %v %+v", err, lone)
	}
	for _, bad := range []string{"", "x y\n", "a 1.2.3.4:1 master - 0 0 1 connected 5-3\n", "a 1.2.3.4:1 master - 0 0 1 connected 16384\n", "a nohost master - 0 0 1 connected 1\n"} {
		if _, err := cluster.ParseNodes(bad, "h"); err == nil {
			t.Errorf("ParseNodes(%q): no error", bad)
		}
	}
}

func FuzzParseNodes(f *testing.F) {
	f.Add("a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100 200 [201->-b2]\n")
	f.Add("b2 [::1]:7001@17001,host master - 0 0 2 connected 101-16383\n")
	f.Fuzz(func(t *testing.T, text string) {
		top, err := cluster.ParseNodes(text, "h")
		if err != nil {
			return
		}
		for s := range cluster.Slots {
			if o := top.Owner(s); o >= len(top.Masters) {
				t.Fatalf("slot %d owner %d of %d masters", s, o, len(top.Masters))
			}
		}
		_ = fmt.Sprint(top.Masters)
	})
}

func TestTag(t *testing.T) {
	for s := range cluster.Slots {
		if got := cluster.Slot([]byte("resync:checkpoint:x:{" + cluster.Tag(s) + "}")); got != s {
			t.Fatalf("Tag(%d) = %q, in slot %d", s, cluster.Tag(s), got)
		}
	}
}
