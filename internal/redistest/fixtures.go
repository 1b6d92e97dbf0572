package redistest

import (
	"os"
	"path/filepath"
	"testing"
)

// RDBFixtures returns the directory of the shared RDB fixtures
// (shared/fixtures/rdb, with index.json): $RESYNC_FIXTURES, or the first
// shared/fixtures/rdb on the way up from the test's directory. The
// fixtures are part of the suite: their absence fails the test.
func RDBFixtures(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("RESYNC_FIXTURES"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "index.json")); err != nil {
			t.Fatalf("RESYNC_FIXTURES=%s: %v", d, err)
		}
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		d := filepath.Join(dir, "shared", "fixtures", "rdb")
		if _, err := os.Stat(filepath.Join(d, "index.json")); err == nil {
			return d
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("RDB fixtures not found: no shared/fixtures/rdb/index.json above the package; set RESYNC_FIXTURES")
		}
		dir = up
	}
}
