package keyname

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	plain := Style{}
	if got := plain.Quote([]byte("user:1\n")); got != `"user:1\n"` {
		t.Errorf("plain: %s", got)
	}
	r := Style{Redact: true}
	a, b := r.Quote([]byte("alice@example.com")), r.QuoteString("bob@example.com")
	if a == b || !strings.HasPrefix(a, "key#") || len(a) != len("key#")+8 {
		t.Errorf("redacted: %s %s", a, b)
	}
	if a != r.QuoteString("alice@example.com") {
		t.Error("the same name must show the same hash")
	}
	if got := r.List([]string{"alice@example.com", "x"}); strings.Contains(got, "alice") || !strings.HasPrefix(got, "[key#") {
		t.Errorf("list: %s", got)
	}
	if got := plain.List([]string{"a", "b"}); got != `["a" "b"]` {
		t.Errorf("plain list: %s", got)
	}
}
