package rdb_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/rewrite"
	"github.com/resync/resync/internal/task"
)

// TestRestoreReleaseFixtures loads every release fixture (2.8.24 … 7.4.1)
// into an empty server with resync's restore and checks that the server
// then holds the keys the fixture's JSON lists. Files newer than the
// server loads (7.2's and 7.4's into the 7.0 test server) go through the
// rewrite as commands. Hash field TTLs a server before 7.4 cannot hold are
// refused by default, and dropped, counted, with DropUnsupported. (The
// test lives here for the fixture models this package's tests have.)
func TestRestoreReleaseFixtures(t *testing.T) {
	v := redistest.Version(t)
	dir := filepath.Join(fixtureDir(t), "generated")
	files, err := filepath.Glob(filepath.Join(dir, "release-*.rdb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no release fixtures in %s (%v)", dir, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, err := readExpectation(strings.TrimSuffix(file, ".rdb") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			fieldTTLs := 0
			for _, k := range want.keys {
				fieldTTLs += len(k.FieldExpire)
			}
			restore := func(drop bool) (task.Status, error) {
				dst := redistest.Start(t)
				f, err := os.Open(file)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				tk := task.New(task.Config{Target: dst.DialOptions(), DropUnsupported: drop})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				err = tk.Restore(ctx, f, -1)
				st := tk.Status()
				if err == nil {
					checkRestored(t, dst, want)
				}
				return st, err
			}
			if fieldTTLs > 0 && !v.AtLeast(7, 4) {
				_, err := restore(false)
				var ue *rewrite.UnsupportedError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--drop-unsupported") {
					t.Fatalf("hash field TTLs into Redis %s: got %v, want a refusal naming --drop-unsupported", v, err)
				}
				t.Logf("refused as it should be: %v", err)
				st, err := restore(true)
				if err != nil {
					t.Fatal(err)
				}
				if st.Dropped == 0 {
					t.Fatalf("%d field TTLs dropped but none counted", fieldTTLs)
				}
				t.Logf("%d keys, %d rewritten as commands, %d with dropped field TTLs", st.KeysWritten, st.KeysRewritten, st.Dropped)
				return
			}
			st, err := restore(false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d keys, %d rewritten as commands, %d empty skipped", st.KeysWritten, st.KeysRewritten, st.KeysEmpty)
		})
	}
}

// checkRestored compares the server's keys with the expectation's
// (leaving out those that expire within a minute: they may be gone) and
// checks that it holds no other key.
func checkRestored(t *testing.T, s *redisproc.Server, want *expectation) {
	t.Helper()
	v := redistest.Version(t)
	c := redistest.Dial(t, s)
	now := time.Now().UnixMilli()
	expires := map[string]int64{}
	listed := map[string]bool{}
	for _, k := range want.keys {
		expires[fmt.Sprintf("%d:%s", k.DB, k.Key)] = k.ExpireMs
		listed[k.id()] = true
	}
	checked := 0
	for _, w := range want.keys {
		if w.ExpireMs != 0 && w.ExpireMs < now+60_000 || w.empty() {
			continue
		}
		got := readKey(t, c, v, w.DB, w.Key, expires)
		exp := *w
		if !v.AtLeast(7, 4) {
			exp.FieldExpire = nil // dropped: the server cannot hold them
		}
		if sum, ok := want.wholeValueChecksum[w.id()]; ok {
			h := sha256.Sum256([]byte(got.Str))
			if len(got.Str) != sum.len || hex.EncodeToString(h[:]) != sum.sum {
				t.Errorf("%s: %d bytes with SHA-256 %x, want %d bytes with %s", w.id(), len(got.Str), h, sum.len, sum.sum)
			}
			exp.Str = got.Str
		}
		if got.Stream != nil && exp.Stream != nil {
			// A 7.0+ server derives a group's entries-read, which files
			// before 7.0 do not hold, where it can.
			for i := range min(len(got.Stream.Groups), len(exp.Stream.Groups)) {
				if exp.Stream.Groups[i].EntriesRead == nil {
					got.Stream.Groups[i].EntriesRead = nil
				}
			}
		}
		if d := diffLoaded(got, &exp); d != "" { // the JSON marks what a pre-7.0 file does not hold
			t.Errorf("%s restored differs: %s", w.id(), d)
		}
		checked++
	}
	for db := 0; db < 16; db++ {
		if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
			t.Fatal(err)
		}
		keys, err := c.Do("KEYS", "*")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys.Elems {
			if id := fmt.Sprintf("db%d:%q", db, k.Text()); !listed[id] {
				t.Errorf("%s restored but not in the fixture's JSON", id)
			}
		}
	}
	t.Logf("%d keys equal the fixture's JSON", checked)
}
