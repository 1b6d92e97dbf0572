package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// load is a redis-benchmark write load: SET of 64-byte values over a
// million keys.
type load struct {
	name                        string // heavy or moderate
	requests, pipeline, clients int
}

// heavyLoad is the throughput load: 16 commands pipelined by
// each of 50 clients.
func heavyLoad(n int) load { return load{name: "heavy", requests: n, pipeline: 16, clients: 50} }

// moderateLoad is the latency load: 10 clients, no pipelining.
func moderateLoad(n int) load { return load{name: "moderate", requests: n, pipeline: 1, clients: 10} }

// args are the redis-benchmark arguments, without the server's address.
func (l load) args() []string {
	return []string{"-t", "set", "-P", strconv.Itoa(l.pipeline), "-c", strconv.Itoa(l.clients),
		"-n", strconv.Itoa(l.requests), "-r", "1000000", "-d", "64"}
}

// runBenchmark runs redis-benchmark against port (--cluster for a
// cluster) and returns the requests per second it reports, and how long
// it ran.
func runBenchmark(ctx context.Context, bin string, port int, cluster bool, l load) (float64, time.Duration, error) {
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}
	if cluster {
		args = append(args, "--cluster")
	}
	args = append(append(args, l.args()...), "--csv")
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0 := time.Now()
	err := cmd.Run()
	elapsed := time.Since(t0)
	if err != nil {
		return 0, elapsed, fmt.Errorf("redis-benchmark %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()+out.String()))
	}
	rps, err := parseBenchmarkCSV(out.Bytes())
	if err != nil {
		return 0, elapsed, fmt.Errorf("redis-benchmark %s: %w", strings.Join(args, " "), err)
	}
	return rps, elapsed, nil
}

// parseBenchmarkCSV reads the SET test's requests per second from
// redis-benchmark --csv: with a header line ("test","rps",…) from 6.2
// on, without one before.
func parseBenchmarkCSV(out []byte) (float64, error) {
	r := csv.NewReader(bytes.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return 0, fmt.Errorf("its CSV output: %w", err)
	}
	col := 1
	for _, row := range rows {
		if len(row) > 0 && row[0] == "test" {
			for i, name := range row {
				if name == "rps" {
					col = i
				}
			}
			continue
		}
		if len(row) > col && row[0] == "SET" {
			rps, err := strconv.ParseFloat(row[col], 64)
			if err != nil || rps <= 0 {
				return 0, fmt.Errorf("its CSV output: requests per second %q", row[col])
			}
			return rps, nil
		}
	}
	return 0, fmt.Errorf("no SET line in its CSV output %q", out)
}
