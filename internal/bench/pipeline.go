package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resync/resync/internal/dialer"
	"github.com/resync/resync/internal/redisproc"
	"github.com/resync/resync/internal/resp"
)

// ioTimeout bounds each read and write of the bench's own connections:
// generous, since a server loading a snapshot answers nothing until done.
const ioTimeout = 5 * time.Minute

// benchDialOptions are the options of the bench's connections to s.
func benchDialOptions(s *redisproc.Server) dialer.Options {
	o := s.DialOptions()
	o.IOTimeout = ioTimeout
	return o
}

// pipeline sends n commands on c, each written by write, while a second
// goroutine reads their replies and hands each to read (nil: the reply
// need only not be an error): neither side waits for the other. It stops
// at the first failure, or when ctx ends; c is closed then, and is of no
// further use.
func pipeline(ctx context.Context, c *dialer.Conn, n int, write func(w *resp.Writer, i int), read func(i int, v resp.Value) error) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	readErr := make(chan error, 1)
	go func() {
		for i := range n {
			v, err := c.Receive("command")
			if err == nil && read != nil {
				err = read(i, v)
			}
			if err != nil {
				readErr <- fmt.Errorf("reply %d of %d: %w", i+1, n, err)
				c.Close() // ends the writer's wait too
				return
			}
		}
		readErr <- nil
	}()
	w := c.Writer()
	for i := 0; i < n && w.Err() == nil; i++ {
		write(w, i)
	}
	werr := w.Flush()
	rerr := <-readErr
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case rerr != nil:
		return rerr // the first cause: a refused command closes the link
	case werr != nil:
		return fmt.Errorf("sending to %s: %w", c.Addr(), werr)
	}
	return nil
}

// errNotYet is a poll's "keep waiting".
var errNotYet = errors.New("not yet")

// poll calls check every interval until it returns nil or an error other
// than errNotYet, or ctx ends.
func poll(ctx context.Context, interval time.Duration, check func() error) error {
	for {
		err := check()
		if !errors.Is(err, errNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
