package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i) // 100 … 1, unsorted on purpose
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 1: 1, 0.1: 1} {
		if got := percentile(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
	if v[0] != 100 {
		t.Error("percentile sorted its input in place")
	}
}

func TestParseBenchmarkCSV(t *testing.T) {
	for name, c := range map[string]struct {
		out  string
		want float64
	}{
		"7.x": {`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"` + "\n" +
			`"SET","1041666.69","0.691","0.240","0.631","1.151","1.671","2.087"` + "\n", 1041666.69},
		"no header (before 6.2)": {`"SET","84033.61"` + "\n", 84033.61},
	} {
		got, err := parseBenchmarkCSV([]byte(c.out))
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", name, got, err, c.want)
		}
	}
	for _, bad := range []string{"", `"GET","100"`, `"SET","lots"`, `"SET","0"`, "\"SET\",\"1\n"} {
		if _, err := parseBenchmarkCSV([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestOffsetClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var c offsetClock
	if got := c.lag(t0, 5); got != 0 {
		t.Fatalf("no samples: lag %v", got)
	}
	c.add(t0, 1000)
	c.add(t0.Add(100*time.Millisecond), 2000)
	c.add(t0.Add(200*time.Millisecond), 1500) // a regression is noise
	c.add(t0.Add(300*time.Millisecond), 4000)
	now := t0.Add(300 * time.Millisecond)
	for applied, want := range map[int64]time.Duration{
		4000: 0,                      // caught up
		5000: 0,                      // ahead of the last sample: caught up too
		1500: 250 * time.Millisecond, // half way between the first two samples
		2000: 100 * time.Millisecond, // the source stayed at 2000 until 200 ms: byte 2001 came after
		3000: 50 * time.Millisecond,  // half way from 2000 (200 ms) to 4000 (300 ms)
		500:  300 * time.Millisecond, // behind the first sample: at least its age
	} {
		if got := c.lag(now, applied); got != want {
			t.Errorf("applied %d: lag %v, want %v", applied, got, want)
		}
	}
}

func TestActivityFigures(t *testing.T) {
	t0 := time.Unix(0, 0)
	var times []time.Time
	for i := range 6 {
		times = append(times, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	// Two masters: idle, then both busy, then only the first, then idle.
	counts := [][]int64{{0, 0}, {1, 1}, {1001, 501}, {2001, 1001}, {3001, 1002}, {3002, 1003}}
	rates, busy := activityFigures(times, counts, 2)
	// The busy window is intervals 2 to 4: 300 ms from the sample at 100 ms.
	if want := []float64{3000 / 0.3, 1001 / 0.3}; !near(rates[0], want[0]) || !near(rates[1], want[1]) {
		t.Errorf("rates %v, want %v", rates, want)
	}
	if !near(busy, 200.0/3) {
		t.Errorf("busy %v%%, want 66.7%%", busy)
	}
	if rates, busy := activityFigures(times[:2], counts[:2], 2); rates[0] != 0 || busy != 0 {
		t.Errorf("idle: rates %v busy %v", rates, busy)
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

func TestReport(t *testing.T) {
	r := &Report{Schema: SchemaVersion, Machine: Machine{CPUs: 2, RedisVersion: "7.0.15"}, Settings: Settings{Runs: 3},
		DataSet: &DataSetInfo{Keys: 2800, Strings: 2000, Hashes: 200}, Figures: []Figure{}, Goals: []Goal{}, Notes: []string{"a note"}}
	r.add("full.native_replica.seconds", "limit A", "s", []float64{2, 1, 4})
	r.add("full.resync.seconds", "resync", "s", []float64{3, 4, 5})
	r.ratio("full.resync.seconds", "full.native_replica.seconds", "limit A")
	r.ratio("full.resync.seconds", "no.such.figure", "nothing")
	r.add("incremental.x.ops", "ops", "ops/s", []float64{123456, 234567, 345678})
	r.Goals = append(r.Goals, Goal{Figure: "full.resync.seconds", Want: "<= 10 ms", Got: 4, Met: true})
	if f := r.figure("full.resync.seconds"); f.Median != 4 || len(f.Ratios) != 1 || f.Ratios[0].Value != 2 {
		t.Fatalf("figure %+v", f)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[full]", "[incremental]", "limit A", "2.00× limit A", "3.00 4.00 5.00", "235k", "goal: full.resync.seconds <= 10 ms: got 4.00, met", "note: a note", "2800 keys"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"schema", "started", "seconds", "machine", "settings", "data_set", "big_data_set", "figures", "goals", "notes"} {
		if _, ok := back[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, js.String())
		}
	}
	fig := back["figures"].([]any)[0].(map[string]any)
	for _, key := range []string{"id", "label", "unit", "median", "runs", "ratios"} {
		if _, ok := fig[key]; !ok {
			t.Errorf("a figure lacks %q: %v", key, fig)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0.00", 1.234: "1.23", 9.996: "10.0", 12.34: "12.3", 99.96: "100", 123.4: "123", 1234: "1234", 9999.6: "10.0k",
		12345: "12.3k", 99960: "100k", 123456: "123k", 999600: "1.00M", 1234567: "1.23M", 9996000: "10.0M", 12345678: "12.3M"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
