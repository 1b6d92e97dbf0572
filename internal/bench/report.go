package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SchemaVersion is the version of Report's JSON shape; it changes only
// when a field changes meaning or goes away, so that saved reports stay
// comparable.
const SchemaVersion = 1

// Report is what a benchmark run measured: the settings and machine it
// ran with, the data set, and one Figure per measured quantity.
type Report struct {
	Schema   int       `json:"schema"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // the whole run's wall time
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// DataSet is the main data set, BigDataSet the big keys (--big);
	// nil when no part needed them.
	DataSet    *DataSetInfo `json:"data_set"`
	BigDataSet *DataSetInfo `json:"big_data_set"`
	Figures    []Figure     `json:"figures"`
	Goals      []Goal       `json:"goals"`
	// Notes say how figures were measured where the label cannot.
	Notes []string `json:"notes"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs         int    `json:"cpus"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	// LoadAverage is /proc/loadavg's first three fields when the run
	// began: a busy machine skews every figure.
	LoadAverage string `json:"load_average"`
}

// Settings are the run's parameters.
type Settings struct {
	Keys             int      `json:"keys"`
	Big              bool     `json:"big"`
	Runs             int      `json:"runs"`
	Parts            []string `json:"parts"`
	BenchRequests    int      `json:"bench_requests"`
	ModerateRequests int      `json:"moderate_requests"`
	HeavyLoad        string   `json:"heavy_load"`    // the redis-benchmark arguments
	ModerateLoad     string   `json:"moderate_load"` // the same, for the moderate load
	Heartbeat        string   `json:"heartbeat_interval"`
}

// DataSetInfo describes a data set as the source held it.
type DataSetInfo struct {
	Keys            int     `json:"keys"`
	Strings         int     `json:"strings"`
	Hashes          int     `json:"hashes"`
	Lists           int     `json:"lists"`
	Sets            int     `json:"sets"`
	Zsets           int     `json:"zsets"`
	BigElements     int     `json:"big_elements,omitempty"`
	BigStringBytes  int     `json:"big_string_bytes,omitempty"`
	UsedMemoryBytes int64   `json:"used_memory_bytes"`
	FillSeconds     float64 `json:"fill_seconds"`
}

// Figure is one measured quantity: every run's value and their median.
type Figure struct {
	// ID names the figure for machines; it stays the same from one
	// version to the next ("full.resync.seconds").
	ID     string    `json:"id"`
	Label  string    `json:"label"`
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs"`
	// Ratios compare the median with other figures' (a limit's, the
	// native replica's).
	Ratios []Ratio `json:"ratios"`
}

// Ratio is a figure's median over another's.
type Ratio struct {
	To    string  `json:"to"` // the other figure's ID, or what it is
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// Goal is a target the issue sets for a figure, and whether it was met.
type Goal struct {
	Figure string  `json:"figure"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
}

// add records a figure from its runs.
func (r *Report) add(id, label, unit string, runs []float64) *Figure {
	r.Figures = append(r.Figures, Figure{ID: id, Label: label, Unit: unit, Median: median(runs), Runs: slices.Clone(runs), Ratios: []Ratio{}})
	return &r.Figures[len(r.Figures)-1]
}

// figure finds a figure by ID.
func (r *Report) figure(id string) *Figure {
	for i := range r.Figures {
		if r.Figures[i].ID == id {
			return &r.Figures[i]
		}
	}
	return nil
}

// ratio adds to figure id its ratio to figure to (labelled label), when
// both exist and the other is not zero.
func (r *Report) ratio(id, to, label string) {
	f, g := r.figure(id), r.figure(to)
	if f == nil || g == nil || g.Median == 0 {
		return
	}
	f.Ratios = append(f.Ratios, Ratio{To: to, Label: label, Value: f.Median / g.Median})
}

// median is the middle value (the mean of the two middle ones for an
// even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100); 0 for
// no values.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a person: the setting, then one line
// per figure with its median, every run and its ratios.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "resync bench: redis-server %s, %d CPUs, %s/%s, %s, load average %s at the start; %d run(s) of each figure, median shown\n",
		r.Machine.RedisVersion, r.Machine.CPUs, r.Machine.OS, r.Machine.Arch, r.Machine.GoVersion, r.Machine.LoadAverage, r.Settings.Runs)
	for _, d := range []struct {
		name string
		info *DataSetInfo
	}{{"data set", r.DataSet}, {"big keys", r.BigDataSet}} {
		if d.info == nil {
			continue
		}
		i := d.info
		if i.BigElements > 0 {
			fmt.Fprintf(w, "%s: a hash of %d fields, a list of %d elements, a string of %d MiB; source used_memory %.1f MiB (filled in %.1fs)\n",
				d.name, i.BigElements, i.BigElements, i.BigStringBytes>>20, mib(i.UsedMemoryBytes), i.FillSeconds)
			continue
		}
		fmt.Fprintf(w, "%s: %d keys (%d 64-byte strings; %d each of 10-field hashes, 10-element lists, 10-member sets, 10-member zsets); source used_memory %.1f MiB (filled in %.1fs)\n",
			d.name, i.Keys, i.Strings, i.Hashes, mib(i.UsedMemoryBytes), i.FillSeconds)
	}
	fmt.Fprintf(w, "heavy load: redis-benchmark %s\nmoderate load: redis-benchmark %s\n\n", r.Settings.HeavyLoad, r.Settings.ModerateLoad)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmedian\tunit\truns\tratio")
	section := ""
	for _, f := range r.Figures {
		if s, _, _ := strings.Cut(f.ID, "."); s != section {
			section = s
			fmt.Fprintf(tw, "[%s]\t\t\t\t\n", section)
		}
		runs := make([]string, len(f.Runs))
		for i, v := range f.Runs {
			runs[i] = formatValue(v)
		}
		ratios := make([]string, len(f.Ratios))
		for i, q := range f.Ratios {
			ratios[i] = strconv.FormatFloat(q.Value, 'f', 2, 64) + "× " + q.Label
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Label, formatValue(f.Median), f.Unit, strings.Join(runs, " "), strings.Join(ratios, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w)
	}
	for _, g := range r.Goals {
		verdict := "met"
		if !g.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "goal: %s %s: got %s, %s\n", g.Figure, g.Want, formatValue(g.Got), verdict)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	_, err := fmt.Fprintf(w, "\nthe whole run took %s\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	return err
}

// formatValue prints a figure with three significant digits or so, and
// thousands as k or M. The bounds sit where rounding would carry a digit
// over (99.95 prints as 100, not 100.0).
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 9.995e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 999.5e3:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case a >= 99.95e3:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 9999.5:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
