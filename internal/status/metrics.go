package status

import (
	"github.com/prometheus/client_golang/prometheus"
	"strings"

	"github.com/resync/resync/internal/task"
)

// collector reads the task's status at each scrape: no state of its own.
//
// The names follow Prometheus's conventions: base units (seconds, bytes),
// _total on counters only, and one family with labels rather than
// parallel families. A series is per task and, where the task keeps it
// per source link, per shard (the source master's address: a standalone
// source is one shard); per target where it describes a target (one per
// task so far; the label leaves room for more).
type collector struct{ status func() task.Status }

var (
	taskLabels   = []string{"task"}
	shardLabels  = []string{"task", "shard"}
	targetLabels = []string{"task", "target"}

	descState = prometheus.NewDesc("resync_state",
		"1 for the task's current state, 0 for the others (precheck, full_sync, synchronizing, retrying, failed, stopped).",
		[]string{"task", "state"}, nil)
	descErrs = prometheus.NewDesc("resync_errors_total",
		"Errors the task met: lost connections it retried and the failure that ended it.", taskLabels, nil)
	descCmds = prometheus.NewDesc("resync_commands_applied_total",
		"Commands of the replication stream written to the target, by command name.", []string{"task", "command"}, nil)

	descLag = prometheus.NewDesc("resync_lag_seconds",
		"End-to-end lag of a source shard, measured by its heartbeat (absent while unknown).", shardLabels, nil)
	descRecv = prometheus.NewDesc("resync_received_offset_bytes",
		"Replication offset of the last byte read from a source shard.", shardLabels, nil)
	descAppl = prometheus.NewDesc("resync_applied_offset_bytes",
		"Replication offset of a source shard confirmed on the target (what a resume continues from).", shardLabels, nil)
	descKeys = prometheus.NewDesc("resync_full_sync_keys_written_total",
		"Keys the full sync of a source shard wrote (from 0 again at each full sync).", shardLabels, nil)
	descRDBRecv = prometheus.NewDesc("resync_full_sync_rdb_received_bytes_total",
		"Snapshot bytes received from a source shard (from 0 again at each full sync).", shardLabels, nil)
	descRDBAppl = prometheus.NewDesc("resync_full_sync_rdb_applied_bytes_total",
		"Snapshot bytes of a source shard read and written to the target (from 0 again at each full sync).", shardLabels, nil)
	descRDBSize = prometheus.NewDesc("resync_full_sync_rdb_size_bytes",
		"Size of a source shard's snapshot (absent when unknown: a diskless transfer does not announce it).", shardLabels, nil)
	descRetry = prometheus.NewDesc("resync_retries_total",
		"Reconnections after a lost source or target connection, by source shard.", shardLabels, nil)
	descSpool = prometheus.NewDesc("resync_spool_bytes",
		"Stream received from a source shard and not yet written, by where it waits: memory or disk.",
		[]string{"task", "shard", "where"}, nil)
	descBack = prometheus.NewDesc("resync_back_pressure",
		"1 while memory and spool are full and resync has stopped reading the source shard.", shardLabels, nil)
	descPub = prometheus.NewDesc("resync_publish_skipped_total",
		"PUBLISH commands of a source shard's stream not replayed.", shardLabels, nil)
	descSkip = prometheus.NewDesc("resync_skipped_total", "What the task deliberately did not write, by reason: "+
		"keys_filtered and commands_filtered (the selection and filters), partial_filter (--on-partial-filter skip), "+
		"empty (empty collections), dropped_unsupported (--drop-unsupported).", []string{"task", "shard", "reason"}, nil)
	descRewr = prometheus.NewDesc("resync_full_sync_keys_rewritten_total", "Keys the full sync wrote as commands, by why: "+
		"rewrite (the target cannot load the payload, or --rewrite always) or big (chunked).", []string{"task", "shard", "why"}, nil)

	descTargetLag = prometheus.NewDesc("resync_target_lag_seconds",
		"End-to-end lag of a target: the worst of the source shards' as applied there (absent while unknown).", targetLabels, nil)
	descThrottled = prometheus.NewDesc("resync_target_throttled_seconds_total",
		"Time the writes to a target waited on --target-max-ops and --target-max-bytes (since its connection opened).", targetLabels, nil)
	descBytes = prometheus.NewDesc("resync_written_bytes_total",
		"Bytes of commands and snapshot payloads written to a target.", targetLabels, nil)
)

var allDescs = []*prometheus.Desc{descState, descErrs, descCmds, descLag, descRecv, descAppl, descKeys, descRDBRecv, descRDBAppl,
	descRDBSize, descRetry, descSpool, descBack, descPub, descSkip, descRewr, descTargetLag, descThrottled, descBytes}

var states = []string{task.StatePrecheck, task.StateFullSync, task.StateSynchronizing, task.StateRetrying, task.StateFailed, task.StateStopped}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	// Label values come from the network (command names, addresses):
	// one Prometheus refuses (not UTF-8) drops its series, never the
	// process (Collect runs outside net/http's recovery).
	emit := func(d *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, typ, v, labels...); err == nil {
			ch <- m
		}
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		emit(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		emit(d, prometheus.CounterValue, float64(v), labels...)
	}
	seconds := func(ms int64) float64 { return float64(ms) / 1000 }
	flag := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}

	for _, s := range states {
		gauge(descState, flag(s == st.State), st.Name, s)
	}
	counter(descErrs, st.ErrorsTotal, st.Name)
	for name, n := range st.CommandsByName {
		counter(descCmds, n, st.Name, strings.ToValidUTF8(name, "\uFFFD"))
	}

	for _, sh := range shardsOf(st) {
		id := sh.SourceAddr
		if sh.LagMs >= 0 {
			emit(descLag, prometheus.GaugeValue, seconds(sh.LagMs), st.Name, id)
		}
		gauge(descRecv, sh.Received, st.Name, id)
		gauge(descAppl, sh.Applied, st.Name, id)
		counter(descKeys, sh.KeysWritten, st.Name, id)
		counter(descRDBRecv, sh.RDBBytes, st.Name, id)
		counter(descRDBAppl, sh.RDBBytesApplied, st.Name, id)
		if sh.RDBBytesTotal >= 0 {
			gauge(descRDBSize, sh.RDBBytesTotal, st.Name, id)
		}
		counter(descRetry, sh.Retries, st.Name, id)
		gauge(descSpool, sh.SpoolMemBytes, st.Name, id, "memory")
		gauge(descSpool, sh.SpoolDiskBytes, st.Name, id, "disk")
		gauge(descBack, flag(sh.BackPressure), st.Name, id)
		counter(descPub, sh.PublishSkipped, st.Name, id)
		for _, r := range []struct {
			reason string
			n      int64
		}{{"keys_filtered", sh.KeysFiltered}, {"commands_filtered", sh.CommandsFiltered},
			{"partial_filter", sh.PartialSkipped}, {"empty", sh.KeysEmpty}, {"dropped_unsupported", sh.Dropped}} {
			counter(descSkip, r.n, st.Name, id, r.reason)
		}
		counter(descRewr, sh.KeysRewritten, st.Name, id, "rewrite")
		counter(descRewr, sh.BigKeys, st.Name, id, "big")
	}

	for _, ts := range targetsOf(st) {
		if ts.LagMs >= 0 {
			emit(descTargetLag, prometheus.GaugeValue, seconds(ts.LagMs), st.Name, ts.TargetAddr)
		}
		counter(descBytes, ts.BytesWritten, st.Name, ts.TargetAddr)
		emit(descThrottled, prometheus.CounterValue, seconds(ts.ThrottledMs), st.Name, ts.TargetAddr)
	}
}
