package checkpoint

import (
	"slices"
	"strings"
	"testing"
)

func TestPointRoundTrip(t *testing.T) {
	p := Point{ReplID: strings.Repeat("ab", 20), Offset: 123456789, DB: 3, State: Streaming, TimeMs: 1700000000000}
	got, err := Parse(p.Format())
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	// A later version may add fields: they are skipped.
	got, err = Parse(p.Format() + " shard=0-5460")
	if err != nil || got != p {
		t.Fatalf("with an unknown field: %+v, %v", got, err)
	}
}

func TestParseRefusesBadValues(t *testing.T) {
	id := strings.Repeat("a", 40)
	for _, s := range []string{
		"",
		"replid=" + id + " offset=1 db=0", // no state
		"replid=" + id + " offset=x db=0 state=stream",         // bad number
		"replid=" + id + " offset=-1 db=0 state=stream",        // negative
		"replid=short offset=1 db=0 state=stream",              // bad replid
		"replid=" + id + " offset=1 db=0 state=maybe",          // unknown state
		"replid=" + id + " offset=1 db=0 state=stream garbage", // not field=value
	} {
		if p, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, p)
		}
	}
}

func TestOwnerRoundTrip(t *testing.T) {
	o := Owner{Host: "db-sync-1", PID: 4242, Token: "f00d", SinceMs: 17}
	got, err := ParseOwner(o.Format())
	if err != nil || got != o {
		t.Fatalf("got %+v, %v; want %+v", got, err, o)
	}
	if _, err := ParseOwner("host=x pid=1"); err == nil {
		t.Fatal("a lock value without a token parsed")
	}
}

func TestPatternEscapesGlobs(t *testing.T) {
	got := Patterns("resync:", "a*b")
	if want := []string{`resync:checkpoint:a\*b`, `resync:checkpoint:a\*b:*`}; !slices.Equal(got, want) {
		t.Fatalf("Patterns = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Point{ReplID: strings.Repeat("c", 40), Offset: 9, State: FullSync}.Format())
	f.Add("replid= offset= db= state=")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		q, err := Parse(p.Format())
		if err != nil || q != p {
			t.Fatalf("%q parsed to %+v, which reads back as %+v, %v", s, p, q, err)
		}
	})
}
