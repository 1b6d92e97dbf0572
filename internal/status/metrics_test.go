package status

import (
	"bufio"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/task"
)

// fullStatus has every field a metric comes from set, so that every
// family the collector can serve is in the scrape: a cluster source of
// two shards, their snapshots' sizes known, their lags too.
func fullStatus() task.Status {
	shard := func(addr string) task.Status {
		return task.Status{SourceAddr: addr, State: task.StateSynchronizing, ReplID: "r", Received: 100, Applied: 90,
			KeysWritten: 10, KeysFiltered: 1, KeysEmpty: 1, KeysRewritten: 1, BigKeys: 1, Dropped: 1, CommandsFiltered: 1,
			PartialSkipped: 1, RDBBytes: 1000, RDBBytesTotal: 1000, RDBBytesApplied: 900, PublishSkipped: 1, Commands: 5,
			LagMs: 250, TargetAddr: "10.0.1.1:6379", BytesWritten: 5000, CommandsByName: map[string]int64{"SET": 5},
			Retries: 1, SpoolMemBytes: 10, SpoolDiskBytes: 20, BackPressure: true, ErrorsTotal: 1,
			Errors: []task.ErrorEvent{{Time: time.Unix(1700000000, 0), Text: "lost"}}}
	}
	a, b := shard("10.0.0.1:7000"), shard("10.0.0.2:7000")
	return task.Status{Name: "full", State: task.StateSynchronizing, LagMs: 250, RDBBytesTotal: 2000, TargetAddr: "10.0.1.1:6379",
		Received: 200, Applied: 180, KeysWritten: 20, Commands: 10, BytesWritten: 10000, CommandsByName: map[string]int64{"SET": 10},
		Retries: 2, ErrorsTotal: 2, Shards: []task.Status{a, b}}
}

// family is one metric family of a scrape: its type and its series'
// label names.
type family struct {
	typ, help string
	labels    map[string]bool
	series    int
}

// scrape reads /metrics of a handler over st, family by family.
func scrape(t *testing.T, st task.Status) map[string]*family {
	t.Helper()
	rec := httptest.NewRecorder()
	handler(func() task.Status { return st }, Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	fams := map[string]*family{}
	get := func(name string) *family {
		if fams[name] == nil {
			fams[name] = &family{labels: map[string]bool{}}
		}
		return fams[name]
	}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			get(f[2]).typ = f[3]
			continue
		}
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "HELP" {
			get(f[2]).help = strings.Join(f[3:], " ")
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsed line %q", line)
		}
		name := m[1]
		// A summary's or histogram's series carry suffixes.
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && fams[base] != nil && fams[base].typ != "counter" && fams[base].typ != "gauge" {
				name = base
			}
		}
		f := get(name)
		f.series++
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			f.labels[l[1]] = true
		}
	}
	return fams
}

// resync's own families follow Prometheus's naming: _total on counters
// and only there, base units, a task label, help that says something,
// and a shard label where the value belongs to a source shard.
func TestMetricsFollowConventions(t *testing.T) {
	fams := scrape(t, fullStatus())
	var names []string
	for name, f := range fams {
		if !strings.HasPrefix(name, "resync_") {
			continue
		}
		names = append(names, name)
		if (f.typ == "counter") != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %s", name, f.typ)
		}
		if regexp.MustCompile(`_(milli|micro|kilo|mega)|_ms\b|_percent`).MatchString(name) {
			t.Errorf("%s: not in base units", name)
		}
		if len(f.help) < 20 {
			t.Errorf("%s: help %q", name, f.help)
		}
		if !f.labels["task"] || f.series == 0 {
			t.Errorf("%s: no task label, or no series: %+v", name, f)
		}
	}
	slices.Sort(names)
	// The families, and the labels each has besides task.
	want := map[string][]string{
		"resync_state":                              {"state"},
		"resync_errors_total":                       nil,
		"resync_commands_applied_total":             {"command"},
		"resync_lag_seconds":                        {"shard"},
		"resync_received_offset_bytes":              {"shard"},
		"resync_applied_offset_bytes":               {"shard"},
		"resync_full_sync_keys_written_total":       {"shard"},
		"resync_full_sync_rdb_received_bytes_total": {"shard"},
		"resync_full_sync_rdb_applied_bytes_total":  {"shard"},
		"resync_full_sync_rdb_size_bytes":           {"shard"},
		"resync_full_sync_keys_rewritten_total":     {"shard", "why"},
		"resync_retries_total":                      {"shard"},
		"resync_spool_bytes":                        {"shard", "where"},
		"resync_back_pressure":                      {"shard"},
		"resync_publish_skipped_total":              {"shard"},
		"resync_skipped_total":                      {"shard", "reason"},
		"resync_target_lag_seconds":                 {"target"},
		"resync_target_throttled_seconds_total":     {"target"},
		"resync_written_bytes_total":                {"target"},
	}
	for name, labels := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("no %s", name)
			continue
		}
		got := []string{}
		for l := range f.labels {
			if l != "task" {
				got = append(got, l)
			}
		}
		slices.Sort(got)
		slices.Sort(labels)
		if !slices.Equal(got, labels) {
			t.Errorf("%s labels %v, want task and %v", name, got, labels)
		}
	}
	if len(names) != len(want) {
		t.Errorf("families %v, want %d", names, len(want))
	}
	// Per shard: one series each of the two.
	if n := fams["resync_lag_seconds"].series; n != 2 {
		t.Errorf("%d lag series, want one per shard", n)
	}
}

// The Grafana dashboard is importable (a datasource input, a task
// variable) and asks only for what /metrics serves: every metric its
// queries name, with the labels they select and group by.
// A command name that is not UTF-8 (it comes from the source's stream)
// costs its own series, not the scrape or the process.
func TestMetricsSurviveBadLabels(t *testing.T) {
	st := fullStatus()
	st.CommandsByName = map[string]int64{"\xff\xfe": 3, "set": 5}
	fams := scrape(t, st)
	if f := fams["resync_commands_applied_total"]; f == nil || f.series != 2 {
		t.Fatalf("commands applied: %+v", f)
	}
}

func TestGrafanaDashboardMatchesMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "resync-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		ID      int                      `json:"id"`
		Type    string                   `json:"type"`
		Title   string                   `json:"title"`
		Targets []target                 `json:"targets"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Panels  []panel                  `json:"panels"`
	}
	var dash struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		SchemaVersion int     `json:"schemaVersion"`
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("resync-dashboard.json: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" ||
		dash.SchemaVersion < 36 || dash.UID == "" || dash.Title == "" {
		t.Fatalf("dashboard header: %+v %d %q %q", dash.Inputs, dash.SchemaVersion, dash.UID, dash.Title)
	}
	var exprs []string
	for _, v := range dash.Templating.List {
		if v.Name == "task" {
			exprs = append(exprs, v.Definition)
		}
	}
	if len(exprs) != 1 {
		t.Fatal("no templating variable task")
	}

	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range all {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%q: gridPos %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("%q overlaps %q", p.Title, other)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("%q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("%q: datasource %q", p.Title, tg.Datasource.UID)
			}
			if !strings.Contains(tg.Expr, `task=~"$task"`) {
				t.Errorf("%q: %s does not select $task", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}

	fams := scrape(t, fullStatus())
	metric := regexp.MustCompile(`\b((?:resync|go|process)_[a-zA-Z0-9_]+)\b(\{[^}]*\})?`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping := regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	used := map[string]bool{}
	for _, expr := range exprs {
		labels := map[string]bool{"instance": true, "job": true} // added by the scrape
		for _, m := range metric.FindAllStringSubmatch(expr, -1) {
			f := fams[m[1]]
			if f == nil {
				t.Errorf("the dashboard asks for %s, which /metrics does not serve: %s", m[1], expr)
				continue
			}
			used[m[1]] = true
			for l := range f.labels {
				labels[l] = true
			}
			for _, l := range matcher.FindAllStringSubmatch(m[2], -1) {
				if !f.labels[l[1]] {
					t.Errorf("%s has no label %s: %s", m[1], l[1], expr)
				}
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !labels[l] {
					t.Errorf("grouping by %s, which none of its metrics has: %s", l, expr)
				}
			}
		}
	}
	// The other way round, resync's families the dashboard leaves out
	// are a choice worth seeing.
	for name := range fams {
		if strings.HasPrefix(name, "resync_") && !used[name] {
			t.Logf("not on the dashboard: %s", name)
		}
	}
}

// A task of several targets lists each in the status document, with its
// own state, lag, error and applied offset, and each target's lag,
// bytes and throttle are series of their own.
func TestSeveralTargets(t *testing.T) {
	one := func(addr, state string, lag, applied int64, last string) task.Status {
		return task.Status{TargetAddr: addr, State: state, LagMs: lag, Applied: applied, LastError: last, SourceAddr: "10.0.0.1:6379",
			BytesWritten: 100, RDBBytesTotal: -1}
	}
	st := task.Status{Name: "many", State: task.StateRetrying, LagMs: -1, RDBBytesTotal: -1, TargetAddr: "10.0.1.1:6379",
		Targets: []task.Status{one("10.0.1.1:6379", task.StateSynchronizing, 3, 90, ""), one("10.0.1.2:6379", task.StateSynchronizing, 4, 91, ""),
			one("10.0.1.3:6379", task.StateRetrying, -1, 40, "connection refused")}}
	d := FromTask(st)
	if len(d.Targets) != 3 || d.Targets[2].Address != "10.0.1.3:6379" || d.Targets[2].State != task.StateRetrying ||
		d.Targets[2].LagMs != nil || d.Targets[2].LastError != "connection refused" || d.Targets[2].AppliedOffset != 40 ||
		*d.Targets[1].LagMs != 4 || d.Targets[0].LastError != "" {
		b, _ := json.Marshal(d.Targets)
		t.Fatalf("targets: %s", b)
	}
	fams := scrape(t, st)
	for name, want := range map[string]int{"resync_target_lag_seconds": 2, "resync_written_bytes_total": 3, "resync_target_throttled_seconds_total": 3} {
		if f := fams[name]; f == nil || f.series != want {
			t.Errorf("%s: %+v, want %d series", name, f, want)
		}
	}
}
