package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/fanout"
	"github.com/resync/resync/internal/writer"
)

// DefaultRetryFor is how long a task keeps retrying a lost connection.
const DefaultRetryFor = 12 * time.Hour

// healthyAfter is how long a task must run without a fault for its retry
// window to start over.
const healthyAfter = time.Minute

// retryWindow paces the retries of a lost connection: exponential backoff
// with jitter, capped at a few seconds, for at most limit since the first
// fault; a healthy period starts the window over. The source's and the
// target's retries share one window (it is safe for concurrent use): an
// outage lasts --retry-for at most, whichever side it is on.
type retryWindow struct {
	limit   time.Duration
	mu      sync.Mutex
	first   time.Time // the first fault of this window; zero when none
	attempt int
}

// gaveUp is a fault the retry window ran out on: not retried again.
type gaveUp struct {
	limit time.Duration
	err   error
}

func (g *gaveUp) Error() string {
	return fmt.Sprintf("gave up after retrying for %s (--retry-for): %v", g.limit, g.err)
}

func (g *gaveUp) Unwrap() error { return g.err }

// next returns how long to wait before the next try, or false when the
// window is spent. healthy is when the failed session began streaming
// (zero if it never did): the backoff starts over after a session that
// streamed, the window after one that streamed for a while.
func (r *retryWindow) next(now, healthy time.Time) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !healthy.IsZero() {
		r.attempt = 0
		if now.Sub(healthy) >= healthyAfter {
			r.first = time.Time{}
		}
	}
	if r.first.IsZero() {
		r.first = now
	}
	if now.Sub(r.first) >= r.limit {
		return 0, false
	}
	d := min(100*time.Millisecond<<min(r.attempt, 10), 5*time.Second)
	r.attempt++
	// Up to a quarter less, so that many tasks do not retry in step.
	return d - time.Duration(rand.Int64N(int64(d/4)+1)), true
}

func (t *Task) healthySince() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.healthy
}

// retryable reports whether err is a lost or refused connection, which a
// retry can cure, rather than something the task cannot do (a command
// the target refuses, a policy, bad credentials).
func retryable(err error) bool {
	if err == nil {
		return true // a session that ended without an error: the link closed
	}
	var g *gaveUp
	if errors.As(err, &g) {
		return false
	}
	if errors.Is(err, errNeedPSYNC) || errors.Is(err, errNoMaster) || errors.Is(err, errFullResync) || errors.Is(err, fanout.ErrBehind) {
		return true
	}
	var we *writer.Error
	if errors.As(err, &we) {
		return we.Reply == "" // no reply: the connection failed
	}
	for _, permanent := range []error{dialer.ErrWrongPassword, dialer.ErrUserAuth, dialer.ErrPasswordRequired,
		dialer.ErrNoPasswordSet, dialer.ErrNoACL, dialer.ErrTLS} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	for _, transient := range []error{dialer.ErrRefused, dialer.ErrTimeout, dialer.ErrUnreachable, dialer.ErrClosed,
		dialer.ErrNotReady, dialer.ErrRefusedByServer, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.EPIPE} {
		if errors.Is(err, transient) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// resyncFromScratch prepares the target for a new full sync the source
// asked for after a disconnect. In intercept mode resync owns the
// selected target databases: they are emptied, so that keys the source
// deleted during the gap go too. In overwrite mode they are left, and the
// task says what that means.
func (t *Task) resyncFromScratch(ctx context.Context, w sink) error {
	if t.cfg.OnConflict == ConflictOverwrite {
		t.log.Warn("the source asked for a full resync: keys are overwritten, but keys it deleted during the gap may remain on the target (resync verify --reverse finds them)")
		return nil
	}
	if t.child || t.targetCluster {
		// Resync's own keys (its lock, checkpoints) stay.
		t.log.Warn("the source asked for a full resync: emptying the slots it writes on the target first (on-conflict intercept)")
		return t.flushShard(w)
	}
	t.log.Warn("the source asked for a full resync: emptying the selected target databases first (on-conflict intercept)")
	dst, err := dialer.Dial(ctx, t.targetOpts())
	if err != nil {
		return err
	}
	defer dst.Close()
	for _, db := range t.filter.TargetDBs(databases(dst)) {
		if _, err := dst.Do("SELECT", strconv.Itoa(db)); err != nil {
			return fmt.Errorf("target: %w", err)
		}
		if _, err := dst.Do("FLUSHDB"); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	return nil
}

// retryAfter records a retryable fault (state retrying, the error, the
// count), logs it with msg and waits the retry window's next backoff.
// healthy is when the failed connection began working (zero if it did
// not). It returns a gaveUp when the window is spent, ctx's error when
// ctx ends first.
func (t *Task) retryAfter(ctx context.Context, healthy time.Time, cause error, msg string) error {
	wait, ok := t.window.next(time.Now(), healthy)
	if !ok {
		return &gaveUp{t.cfg.RetryFor, cause}
	}
	t.mu.Lock()
	t.noteError(cause)
	t.retries++
	t.mu.Unlock()
	t.setState(StateRetrying)
	t.log.Warn(msg, "err", cause, "in", wait.Round(time.Millisecond))
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
