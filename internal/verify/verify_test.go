package verify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/compare"
	"github.com/resync/resync/internal/filter"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/verify"
)

// TestBinaryKeysRoundsAndRepair follows keys whose names are not UTF-8
// through the rounds (kept exact in the files between them), the report
// (base64 beside the text) and the repair, in a mapped database.
func TestBinaryKeysRoundsAndRepair(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := redistest.Dial(t, src), redistest.Dial(t, dst)
	bin := "k\xff\x00\xfe"
	for _, cmd := range [][]string{{"SELECT", "1"}, {"SET", bin, "v"}, {"SET", "same", "1"}, {"HSET", "h", "f", "1"}} {
		if _, err := sc.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range [][]string{{"SELECT", "4"}, {"SET", "same", "1"}, {"HSET", "h", "f", "2"}, {"SET", "only\xff", "1"}} {
		if _, err := dc.Do(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	o := verify.Options{Source: src.DialOptions(), Target: dst.DialOptions(),
		Filter:     filter.Config{DBs: []int{1}, MapDB: map[int]int{1: 4}},
		Compare:    compare.Options{Reverse: true},
		Rounds:     2,
		RoundDelay: 10 * time.Millisecond}
	var report bytes.Buffer
	o.Report = &report
	sum, err := verify.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Equal || sum.Missing != 1 || sum.Extra != 1 || sum.Value != 1 || sum.Rounds != 2 || sum.Keys != 3 {
		t.Fatalf("summary %+v", sum)
	}
	var keys []string
	for line := range strings.Lines(report.String()) {
		var d verify.Difference
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		k := d.Key
		if d.KeyBase64 != "" {
			b, _ := base64.StdEncoding.DecodeString(d.KeyBase64)
			k = string(b)
		}
		keys = append(keys, k)
	}
	if got := strings.Join(keys, ","); !strings.Contains(got, bin) || !strings.Contains(got, "only\xff") {
		t.Fatalf("report keys %q", keys)
	}

	o.Repair, o.Report = true, nil
	if sum, err = verify.Run(context.Background(), o); err != nil || !sum.Equal || sum.Repaired == nil ||
		sum.Repaired.Copied != 2 || sum.Repaired.Deleted != 1 || sum.Repaired.StillDiffs != 0 {
		t.Fatalf("repair: %v %+v %+v", err, sum, sum.Repaired)
	}
	o.Repair = false
	if sum, err = verify.Run(context.Background(), o); err != nil || !sum.Equal || sum.Differences != 0 {
		t.Fatalf("after the repair: %v %+v", err, sum)
	}
}
