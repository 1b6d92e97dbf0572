// Package keyevents reads a server's notify-keyspace-events setting: what
// resync's scan mode needs of it is keyspace channels (K) for every
// class of event (A, or each class by its letter).
package keyevents

import "strings"

// classes are the letters A stands for.
const classes = "g$lshzxet"

// Complete reports whether flags publish a keyspace channel for every
// class of event.
func Complete(flags string) bool {
	if !strings.Contains(flags, "K") {
		return false
	}
	if strings.Contains(flags, "A") {
		return true
	}
	for _, c := range classes {
		if !strings.ContainsRune(flags, c) {
			return false
		}
	}
	return true
}

// Completed returns flags with what Complete needs added (K and A), the
// rest kept.
func Completed(flags string) string {
	for _, f := range "KA" {
		if !strings.ContainsRune(flags, f) {
			flags += string(f)
		}
	}
	return flags
}
