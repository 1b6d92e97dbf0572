// Package keyname shows key names in messages: quoted, or, for users
// whose key names are sensitive (--redact-keys), as a short hash that
// tells keys apart without naming them.
package keyname

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Style says how messages show key names; the zero value quotes them.
type Style struct {
	// Redact shows "key#" and the first 8 hex digits of the name's
	// SHA-256 instead of the name. The hash lets an operator who knows a
	// name confirm it in a log; it does not give the name back.
	Redact bool
}

// Quote shows one key name: "name" (Go quoting), or key#1a2b3c4d.
func (s Style) Quote(key []byte) string {
	if s.Redact {
		sum := sha256.Sum256(key)
		return "key#" + hex.EncodeToString(sum[:4])
	}
	return strconv.Quote(string(key))
}

// QuoteString is Quote for a name held as a string.
func (s Style) QuoteString(key string) string { return s.Quote([]byte(key)) }

// List shows several names, space-separated in brackets.
func (s Style) List(keys []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.QuoteString(k))
	}
	b.WriteByte(']')
	return b.String()
}
