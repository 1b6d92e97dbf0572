package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/redisproc"
)

// serverCPU is the CPU time a server has used, in seconds: its own
// process, and the children it has reaped (a snapshot's fork).
type serverCPU struct{ main, children float64 }

func readServerCPU(ctx context.Context, servers []*redisproc.Server) (serverCPU, error) {
	var c serverCPU
	for _, s := range servers {
		v, err := s.Do(ctx, "INFO", "cpu")
		if err != nil {
			return c, err
		}
		for _, f := range []struct {
			name string
			to   *float64
		}{{"used_cpu_user", &c.main}, {"used_cpu_sys", &c.main}, {"used_cpu_user_children", &c.children}, {"used_cpu_sys_children", &c.children}} {
			x, err := strconv.ParseFloat(redisproc.InfoField(v, f.name), 64)
			if err != nil {
				return c, fmt.Errorf("%s: INFO cpu %s: %w", s.Addr, f.name, err)
			}
			*f.to += x
		}
	}
	return c, nil
}

func (c serverCPU) since(before serverCPU) serverCPU {
	return serverCPU{c.main - before.main, c.children - before.children}
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times:
// 100 on every architecture Go runs Linux on.
const clockTicks = 100

// cpuSeconds is the CPU time (user and system) the resync process has
// used so far.
func (p *resyncProc) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("resync's CPU time (Linux's /proc only): %w", err)
	}
	// The fields after the command name, which is in parentheses and
	// may hold spaces: utime and stime are the 14th and 15th of all.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", p.cmd.Process.Pid, len(f))
	}
	var ticks float64
	for _, x := range f[11:13] {
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", p.cmd.Process.Pid, err)
		}
		ticks += n
	}
	return ticks / clockTicks, nil
}

// waitNoFork waits until no server has a snapshot's fork running.
func waitNoFork(ctx context.Context, servers []*redisproc.Server) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range servers {
		for {
			v, err := s.Do(ctx, "INFO", "persistence")
			if err != nil {
				return err
			}
			if redisproc.InfoField(v, "rdb_bgsave_in_progress") == "0" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: its snapshot's fork still runs", s.Addr)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// machineStat is what /proc/stat tells of the whole machine: the time its
// CPUs spent busy and in all (in ticks), and how many tasks are runnable
// now, on a CPU or waiting for one.
type machineStat struct {
	busy, total float64
	runnable    int
}

func readMachineStat() (machineStat, error) {
	var m machineStat
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, fmt.Errorf("the machine's CPU use (Linux's /proc only): %w", err)
	}
	cpuSeen := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) > 5 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal ...: idle
			// and iowait are the idle time.
			for i, x := range f[1:] {
				n, err := strconv.ParseFloat(x, 64)
				if err != nil {
					return m, fmt.Errorf("/proc/stat: %w", err)
				}
				m.total += n
				if i != 3 && i != 4 {
					m.busy += n
				}
			}
			cpuSeen = true
		case len(f) == 2 && f[0] == "procs_running":
			m.runnable, _ = strconv.Atoi(f[1])
		}
	}
	if !cpuSeen {
		return m, errors.New("/proc/stat has no cpu line")
	}
	return m, nil
}

// busyPct is the share of the CPUs' time spent busy between two readings.
func busyPct(before, after machineStat) float64 {
	if after.total <= before.total {
		return 0
	}
	return 100 * (after.busy - before.busy) / (after.total - before.total)
}
