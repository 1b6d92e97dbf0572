package task

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/resync/resync/internal/checkpoint"
	"github.com/resync/resync/internal/dialer"
)

// lockTTL is how long a task's lock outlives its process: a second
// process on another machine waits that long after a crash. A process
// on the same machine takes over at once when the holder is gone.
const lockTTL = 30 * time.Second

// Scripts that act on the lock only while it holds the caller's value.
const (
	// refresh: extend ours; take it again when a FLUSHALL in the stream
	// removed it; 0 when another process holds it.
	refreshScript = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0`
	// swap: replace the value ARGV[1] (a dead holder's) with ARGV[2].
	swapScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return false`
	releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`
)

// taskLock is a task's lock key on the target, held while it runs.
type taskLock struct {
	t     *Task
	key   string
	value string
}

// ErrLocked says another process runs the same task.
var ErrLocked = errors.New("the task is running elsewhere")

// acquireLock takes the task's lock on the target, or says who holds it.
func (t *Task) acquireLock(ctx context.Context) (*taskLock, error) {
	host, _ := os.Hostname()
	var tok [8]byte
	rand.Read(tok[:])
	me := checkpoint.Owner{Host: host, PID: os.Getpid(), Token: hex.EncodeToString(tok[:]), SinceMs: time.Now().UnixMilli()}
	l := &taskLock{t: t, key: checkpoint.LockKey(ReservedPrefix, t.cfg.Name), value: me.Format()}
	c, err := t.keyConn(ctx, l.key)
	if err != nil {
		return nil, fmt.Errorf("target: taking the task's lock: %w", err)
	}
	defer c.Close()
	ttl := strconv.FormatInt(lockTTL.Milliseconds(), 10)
	for range 3 {
		v, err := c.Do("SET", l.key, l.value, "NX", "PX", ttl)
		if err != nil {
			return nil, fmt.Errorf("target: taking the task's lock: %w", err)
		}
		if !v.Nil() {
			return l, nil
		}
		held, err := c.Do("GET", l.key)
		if err != nil {
			return nil, fmt.Errorf("target: reading the task's lock: %w", err)
		}
		if held.Nil() {
			continue // expired meanwhile
		}
		pttl, _ := c.Do("PTTL", l.key)
		o, perr := checkpoint.ParseOwner(held.Text())
		if perr == nil && o.Host == host && o.PID != me.PID && !alive(o.PID) {
			v, err := c.Do("EVAL", swapScript, "1", l.key, held.Text(), l.value, ttl)
			if err != nil {
				return nil, fmt.Errorf("target: taking over the task's lock: %w", err)
			}
			if !v.Nil() {
				t.log.Warn("took over the lock of a process that is gone", "key", l.key, "pid", o.PID)
				return l, nil
			}
			continue
		}
		who := held.Text()
		if perr == nil {
			who = fmt.Sprintf("process %d on %s, since %s", o.PID, o.Host, time.UnixMilli(o.SinceMs).UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: task %q is locked by %s (key %s on %s, expires in %s unless renewed): stop that process, or give this one another --name",
			ErrLocked, t.cfg.Name, who, l.key, c.Addr(), time.Duration(pttl.Int)*time.Millisecond)
	}
	return nil, fmt.Errorf("%w: the lock %s keeps changing hands", ErrLocked, l.key)
}

// alive reports whether a process of this machine exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// hold renews the lock until ctx ends; it calls lost when another process
// holds it (the task must stop: two writers would break exactness). A
// target it cannot reach is the sync's business: it retries.
func (l *taskLock) hold(ctx context.Context, lost func(error)) {
	tick := time.NewTicker(lockTTL / 3)
	defer tick.Stop()
	var c *dialer.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	ttl := strconv.FormatInt(lockTTL.Milliseconds(), 10)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c == nil {
			var err error
			if c, err = l.t.keyConn(ctx, l.key); err != nil {
				c = nil
				continue
			}
		}
		v, err := c.Do("EVAL", refreshScript, "1", l.key, l.value, ttl)
		switch {
		case err != nil:
			l.t.log.Debug("renewing the lock", "err", err)
			c.Close()
			c = nil
		case v.Int == 0:
			held, _ := c.Do("GET", l.key)
			lost(fmt.Errorf("%w: another process took the lock of task %q (%s): stopping", ErrLocked, l.t.cfg.Name, held.Text()))
			return
		case v.Int == 2:
			l.t.log.Info("the lock was gone (a FLUSHALL?): taken again", "key", l.key)
		}
	}
}

// release gives the lock up, if it is still ours.
func (l *taskLock) release(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l.t.keyConn(ctx, l.key)
	if err == nil {
		_, err = c.Do("EVAL", releaseScript, "1", l.key, l.value)
		c.Close()
	}
	if err != nil {
		log.Warn("releasing the task's lock (it expires by itself)", "key", l.key, "err", err)
	}
}

// holdLock renews the task's lock, if it took one, while the returned
// context lives; the context ends with ErrLocked as its cause when
// another process took the lock. release stops renewing and gives it up.
func (t *Task) holdLock(ctx context.Context) (_ context.Context, release func()) {
	if t.lock == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.lock.hold(ctx, cancel)
	}()
	return ctx, func() {
		cancel(nil)
		<-done
		t.lock.release(t.log)
	}
}
