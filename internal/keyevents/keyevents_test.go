package keyevents

import "testing"

func TestComplete(t *testing.T) {
	for flags, want := range map[string]bool{
		"": false, "KA": true, "AK": true, "Ex": false, "KEA": true, "Kg$lshzxet": true, "Kg$lshzx": false, "A": false, "KAm": true,
	} {
		if got := Complete(flags); got != want {
			t.Errorf("Complete(%q) = %v", flags, got)
		}
		if c := Completed(flags); !Complete(c) {
			t.Errorf("Completed(%q) = %q, not complete", flags, c)
		}
	}
	if c := Completed("Ex"); c != "ExKA" {
		t.Errorf("Completed(Ex) = %q: the flags there must stay", c)
	}
}
