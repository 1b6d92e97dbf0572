package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/task"
)

// runDemo is "resync demo": it starts a throwaway source and target
// redis-server, writes sample data into the source, syncs the target from
// it, writes more while the sync runs, shows both servers and the task's
// status, and stops the task cleanly.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resync demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "keep the servers running until interrupted (Ctrl-C)")
	bin := fs.String("redis-server", os.Getenv("REDIS_SERVER"), "redis-server binary (default: $REDIS_SERVER, else from PATH)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	binary, err := redisproc.FindBinary(*bin)
	if err != nil {
		fmt.Fprintln(stderr, "resync demo:", err)
		return exitUsage
	}
	if err := demo(ctx, binary, *keep, stdout); err != nil {
		fmt.Fprintln(stderr, "resync demo:", err)
		return exitFailed
	}
	return exitOK
}

func demo(ctx context.Context, binary string, keep bool, out io.Writer) error {
	opts := redisproc.Options{Binary: binary}
	source, err := redisproc.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("start source: %w", err)
	}
	defer source.Stop()
	target, err := redisproc.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("start target: %w", err)
	}
	defer target.Stop()
	fmt.Fprintf(out, "started redis-server %s: source %s, target %s\n\n", source.Version, source.Addr, target.Addr)

	src, err := source.Dial(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := writeSample(src, source.Version)
	if err != nil {
		return fmt.Errorf("write sample data: %w", err)
	}
	fmt.Fprintf(out, "wrote %d commands of sample data into the source\n\n", n)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t := task.New(task.Config{Name: "demo", Source: source.DialOptions(), Target: target.DialOptions(), Logger: log})
	done := make(chan error, 1)
	go func() { done <- t.Run(ctx) }()
	if err := waitFor(ctx, t, done, func(st task.Status) bool { return st.State == task.StateSynchronizing }); err != nil {
		return err
	}

	live := [][]string{{"SET", "live:1", "written while syncing"}, {"INCRBY", "visits", "1"}, {"LPUSH", "queue:jobs", "urgent"}, {"DEL", "item:0"}}
	for _, cmd := range live {
		if _, err := src.Do(cmd...); err != nil {
			return err
		}
	}
	info, err := src.Do("INFO", "replication")
	if err != nil {
		return err
	}
	offset, _ := strconv.ParseInt(redisproc.InfoField(info.Text(), "master_repl_offset"), 10, 64)
	if err := waitFor(ctx, t, done, func(st task.Status) bool { return st.Applied >= offset }); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nwrote %d more commands into the source while the sync runs; the target follows:\n\n", len(live))

	for _, s := range []struct {
		name string
		srv  *redisproc.Server
	}{{"source", source}, {"target", target}} {
		c, err := s.srv.Dial(ctx)
		if err != nil {
			return err
		}
		err = show(c, s.name, out)
		c.Close()
		if err != nil {
			return err
		}
	}
	st := t.Status()
	fmt.Fprintf(out, "task %s: state %s, %d keys by full sync, %d commands applied, offset %d applied of %d received\n\n",
		st.Name, st.State, st.KeysWritten, st.Commands, st.Applied, st.Received)
	if keep {
		fmt.Fprintf(out, "the sync runs until Ctrl-C: redis-cli -p %d (source), redis-cli -p %d (target)\n", source.Port, target.Port)
		<-ctx.Done()
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintf(out, "task %s: state %s\n", t.Status().Name, t.Status().State)
	return nil
}

// waitFor polls the task's status until cond holds, the task ends or a
// few seconds pass.
func waitFor(ctx context.Context, t *task.Task, done <-chan error, cond func(task.Status) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond(t.Status()) {
		select {
		case err := <-done:
			return fmt.Errorf("the task ended: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the task is %s after 30s", t.Status().State)
		}
	}
	return nil
}

// writeSample writes a small data set with every common type and some
// TTLs, pipelined, and checks every reply.
func writeSample(c *dialer.Conn, v redisproc.Version) (int, error) {
	cmds := [][]string{
		{"SET", "greeting", "hello from the source"},
		{"SET", "session:42", "alice", "EX", "3600"},
		{"INCRBY", "visits", "1234"},
		{"HMSET", "user:1", "name", "Ada", "lang", "en", "plan", "pro"}, // HSET takes one field before 4.0
		{"RPUSH", "queue:jobs", "resize", "thumbnail", "publish"},
		{"SADD", "tags", "redis", "sync", "replication"},
		{"ZADD", "leaderboard", "310", "ada", "275", "grace", "190", "linus"},
		{"PEXPIRE", "leaderboard", "86400000"},
	}
	if v.AtLeast(5, 0) {
		cmds = append(cmds, []string{"XADD", "events", "*", "type", "signup", "user", "ada"})
	}
	for i := range 5 {
		cmds = append(cmds, []string{"SET", "item:" + strconv.Itoa(i), strings.Repeat("x", i)})
	}
	w := c.Writer()
	for _, cmd := range cmds {
		w.WriteCommandStrings(cmd...)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	for _, cmd := range cmds {
		if _, err := c.Receive(cmd[0]); err != nil {
			return 0, err
		}
	}
	return len(cmds), nil
}

// show prints a server's keys with their type, TTL and a short view of the value.
func show(c *dialer.Conn, name string, out io.Writer) error {
	size, err := c.Do("DBSIZE")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s: %d keys\n", name, c.Addr(), size.Int)
	keys, err := c.Do("KEYS", "*") // a demo's handful of keys; never on a real server
	if err != nil {
		return err
	}
	names := make([]string, 0, len(keys.Elems))
	for _, k := range keys.Elems {
		names = append(names, k.Text())
	}
	sort.Strings(names)
	for _, k := range names {
		typ, err := c.Do("TYPE", k)
		if err != nil {
			return err
		}
		ttl, err := c.Do("PTTL", k)
		if err != nil {
			return err
		}
		val, err := peek(c, typ.Text(), k)
		if err != nil {
			return err
		}
		expiry := ""
		if ttl.Int > 0 {
			expiry = fmt.Sprintf(" (expires in %ds)", ttl.Int/1000)
		}
		fmt.Fprintf(out, "  %-14s %-6s %s%s\n", k, typ.Text(), val, expiry)
	}
	fmt.Fprintln(out)
	return nil
}

func peek(c *dialer.Conn, typ, key string) (string, error) {
	var args []string
	switch typ {
	case "string":
		args = []string{"GET", key}
	case "hash":
		args = []string{"HGETALL", key}
	case "list":
		args = []string{"LRANGE", key, "0", "-1"}
	case "set":
		args = []string{"SMEMBERS", key}
	case "zset":
		args = []string{"ZRANGE", key, "0", "-1", "WITHSCORES"}
	case "stream":
		args = []string{"XLEN", key}
	default:
		return "", errors.New("unexpected type " + typ)
	}
	v, err := c.Do(args...)
	if err != nil {
		return "", err
	}
	s := v.String()
	if typ == "set" {
		// SMEMBERS has no order; sort for a stable picture.
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = e.Text()
		}
		sort.Strings(parts)
		s = "[" + strings.Join(parts, ", ") + "]"
	}
	if typ == "stream" {
		s = v.Text() + " entries"
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s, nil
}
