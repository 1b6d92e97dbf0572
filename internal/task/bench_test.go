package task_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/redistest"
	"github.com/resync/resync/internal/task"
)

// BenchmarkStream measures how fast the stream is applied: 200k SETs
// (64-byte values over 100k keys) written to the source in pipelines
// while the task streams, timed until the target has applied the last.
// For each delivery, into a standalone target and a cluster of three.
//
//	go test ./internal/task -run '^$' -bench Stream -benchtime 3x
func BenchmarkStream(b *testing.B) {
	const n = 200000
	for _, delivery := range []string{task.DeliveryExactlyOnce, task.DeliveryAtLeastOnce} {
		for _, into := range []string{"standalone", "cluster"} {
			b.Run(delivery+"/"+into, func(b *testing.B) {
				src := redistest.Start(b)
				var dst *redisproc.Server
				if into == "cluster" {
					dst = redistest.StartCluster(b, 3, 0).Masters[0]
				} else {
					dst = redistest.Start(b)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				tk := task.New(task.Config{Name: "bench", Source: src.DialOptions(), Target: dst.DialOptions(), Delivery: delivery})
				done := make(chan error, 1)
				go func() { done <- tk.Run(ctx) }()
				for tk.Status().State != task.StateSynchronizing {
					time.Sleep(10 * time.Millisecond)
				}
				c := redistest.Dial(b, src)
				value := string(make([]byte, 64))
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					for i := 0; i < n; i += 100 {
						for j := i; j < i+100; j++ {
							c.Writer().WriteCommandStrings("SET", "k:"+strconv.Itoa(j%100000), value)
						}
						if err := c.Writer().Flush(); err != nil {
							b.Fatal(err)
						}
						for range 100 {
							if _, err := c.Receive("SET"); err != nil {
								b.Fatal(err)
							}
						}
					}
					want, _ := strconv.ParseInt(redisproc.InfoField(redistest.Do(b, src, "INFO", "replication"), "master_repl_offset"), 10, 64)
					for tk.Status().Applied < want {
						if tk.Status().State == task.StateFailed {
							b.Fatal(tk.Status().LastError)
						}
						time.Sleep(time.Millisecond)
					}
				}
				b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "cmds/s")
				b.StopTimer()
				cancel()
				<-done
			})
		}
	}
}
