package compare_test

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
)

var benchKeys = flag.Int("compare.keys", 200_000, "keys in BenchmarkCompare's data set (README's figure uses 1000000)")

// mixedData writes n small keys of mixed types: 70% 64-byte strings, and
// 6% each of 10-field hashes, 10-element lists, sets and zsets, the
// last 6% strings with a TTL.
func mixedData(b testing.TB, s *redisproc.Server, n int) {
	c := redistest.Dial(b, s)
	c.SetIOTimeout(time.Minute)
	value := strings.Repeat("v", 64)
	var cmds [][]string
	flush := func() {
		pipe(b, c, cmds)
		cmds = cmds[:0]
	}
	for i := range n {
		k := "key:" + strconv.Itoa(i)
		switch i % 50 {
		case 0, 1, 2:
			cmds = append(cmds, []string{"HMSET", k, "f0", "0", "f1", "1", "f2", "2", "f3", "3", "f4", "4", "f5", "5", "f6", "6", "f7", "7", "f8", "8", "f9", "9"})
		case 3, 4, 5:
			cmds = append(cmds, []string{"RPUSH", k, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"})
		case 6, 7, 8:
			cmds = append(cmds, []string{"SADD", k, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"})
		case 9, 10, 11:
			cmds = append(cmds, []string{"ZADD", k, "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f", "7", "g", "8", "h", "9", "i", "10", "j"})
		case 12, 13, 14:
			cmds = append(cmds, []string{"SET", k, value, "EX", "100000"})
		default:
			cmds = append(cmds, []string{"SET", k, value})
		}
		if len(cmds) == 1000 {
			flush()
		}
	}
	flush()
}

// copyOf makes dst a copy of src through replication, then detaches it.
func copyOf(b testing.TB, src, dst *redisproc.Server) {
	host, port, _ := strings.Cut(src.Addr, ":")
	redistest.Do(b, dst, "SLAVEOF", host, port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := dst.Do(context.Background(), "INFO", "replication") // LOADING while it loads
		if err == nil && strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("replica did not sync: %s %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	redistest.Do(b, dst, "SLAVEOF", "NO", "ONE")
}

// BenchmarkCompare measures keys compared per second on small keys of
// mixed types; the data set's size is -compare.keys:
//
//	go test ./internal/compare -run '^$' -bench Compare -benchtime 3x -compare.keys 1000000
func BenchmarkCompare(b *testing.B) {
	src, dst := redistest.Start(b), redistest.Start(b)
	mixedData(b, src, *benchKeys)
	copyOf(b, src, dst)
	for _, workers := range []int{2, 4, 8} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			var keys int
			start := time.Now()
			for b.Loop() {
				rep, err := compare.Compare(context.Background(), src.DialOptions(), dst.DialOptions(), compare.Options{Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				if !rep.Equal() || rep.Keys != *benchKeys {
					b.Fatalf("%d keys, %d diffs: %v", rep.Keys, len(rep.Diffs), rep.Diffs[:min(5, len(rep.Diffs))])
				}
				keys += rep.Keys
			}
			b.ReportMetric(float64(keys)/time.Since(start).Seconds(), "keys/s")
		})
	}
}
