package status_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/status"
	"github.com/resync/resync/internal/task"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// /status has the fields DESIGN.md pins, through the task's life; /metrics
// speaks Prometheus text.
func TestStatusAndMetrics(t *testing.T) {
	src, dst := redistest.Start(t, "repl-diskless-sync yes"), redistest.Start(t)
	redistest.Do(t, src, "SET", "k", "v")
	redistest.Do(t, src, "SELECT", "1")
	redistest.Do(t, src, "DEBUG", "POPULATE", "20000") // a full sync long enough to be seen
	tk := task.New(task.Config{Name: "st", Source: src.DialOptions(), Target: dst.DialOptions(), HeartbeatInterval: 50 * time.Millisecond})
	srv, err := status.Start("127.0.0.1:0", tk, nil, status.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr()

	var d status.Doc
	if err := json.Unmarshal([]byte(get(t, base+"/status")), &d); err != nil || d.State != task.StatePrecheck || d.LagMs != nil {
		t.Fatalf("before Run: %+v %v", d, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	var seen []string
	for {
		raw := get(t, base+"/status")
		d = status.Doc{}
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != d.State {
			seen = append(seen, d.State)
		}
		if d.State == task.StateSynchronizing && d.LagMs != nil {
			// null, not 0, for what is unknown: the snapshot was diskless.
			if !strings.Contains(raw, `"rdb_bytes_total":null`) {
				t.Fatalf("diskless snapshot size should be null: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s", raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(strings.Join(seen, ","), task.StateFullSync+","+task.StateSynchronizing) {
		t.Fatalf("states seen: %v, want full_sync then synchronizing", seen)
	}
	sh := d.Shards[0]
	if d.Name != "st" || d.Mode != "psync" || sh.Source != src.Addr || sh.ReplID == "" || sh.FullSync.KeysWritten != 20001 ||
		sh.FullSync.RDBBytesReceived == 0 || d.Targets[0].Address != dst.Addr || d.Targets[0].LastError != "" {
		t.Fatalf("status %+v", d)
	}
	redistest.Do(t, src, "SET", "k2", "v")
	for deadline := time.Now().Add(10 * time.Second); redistest.Do(t, dst, "EXISTS", "k2") != "1"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("k2 never arrived")
		}
	}
	time.Sleep(150 * time.Millisecond) // the next progress tick
	if err := json.Unmarshal([]byte(get(t, base+"/status")), &d); err != nil || d.CommandsApplied < 1 || d.KeysWritten != 20001 ||
		d.Errors == nil || len(d.Errors) != 0 || d.ErrorsTotal != 0 || d.Shards[0].LagMs == nil || d.Shards[0].FullSync.RDBBytesApplied == 0 {
		t.Fatalf("status %+v %v", d, err)
	}
	m := get(t, base+"/metrics")
	shard, target := `shard="`+src.Addr+`"`, `target="`+dst.Addr+`"`
	for _, want := range []string{
		`resync_state{state="synchronizing",task="st"} 1`,
		`resync_commands_applied_total{command="SET",task="st"}`,
		`resync_full_sync_keys_written_total{` + shard + `,task="st"} 20001`,
		`resync_applied_offset_bytes{` + shard + `,task="st"}`, `resync_received_offset_bytes{` + shard + `,task="st"}`,
		`resync_lag_seconds{` + shard + `,task="st"}`, `resync_target_lag_seconds{` + target + `,task="st"}`,
		`resync_full_sync_rdb_received_bytes_total{` + shard + `,task="st"}`, `resync_full_sync_rdb_applied_bytes_total{` + shard + `,task="st"}`,
		`resync_written_bytes_total{` + target + `,task="st"}`, `resync_errors_total{task="st"} 0`,
		`resync_publish_skipped_total{` + shard + `,task="st"} 0`, "go_goroutines", "process_resident_memory_bytes",
		`resync_retries_total{` + shard + `,task="st"} 0`, `resync_spool_bytes{` + shard + `,task="st",where="disk"} 0`,
		`resync_back_pressure{` + shard + `,task="st"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// A diskless snapshot's size is unknown: no series rather than 0.
	for _, not := range []string{"resync_full_sync_rdb_size_bytes{", "_milliseconds"} {
		if strings.Contains(m, not) {
			t.Errorf("/metrics has %s", not)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(get(t, base+"/status")), &d); err != nil || d.State != task.StateStopped {
		t.Fatalf("after stop: %+v %v", d, err)
	}
}

// A cluster source's status lists one shard per master, each with its
// own offsets and lag; the task's lag is the worst.
func TestShardsOfAClusterSource(t *testing.T) {
	st := task.Status{Name: "c", State: task.StateSynchronizing, LagMs: 9, RDBBytesTotal: -1,
		Shards: []task.Status{
			{SourceAddr: "10.0.0.1:7000", State: task.StateSynchronizing, Received: 10, Applied: 9, LagMs: 3, RDBBytesTotal: -1},
			{SourceAddr: "10.0.0.2:7000", State: task.StateSynchronizing, Received: 20, Applied: 20, LagMs: 9, RDBBytesTotal: 100},
		}}
	d := status.FromTask(st)
	if len(d.Shards) != 2 || d.Shards[0].Source != "10.0.0.1:7000" || d.Shards[1].AppliedOffset != 20 ||
		*d.Shards[0].LagMs != 3 || d.Shards[0].FullSync.RDBBytesTotal != nil || *d.Shards[1].FullSync.RDBBytesTotal != 100 || *d.LagMs != 9 {
		b, _ := json.Marshal(d)
		t.Fatalf("%s", b)
	}
}
