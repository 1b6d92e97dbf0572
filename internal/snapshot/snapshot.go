// Package snapshot takes an RDB snapshot from a running source over the
// replication protocol, as a replica would get it: no shell access to
// the source's machine is needed.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/resync/resync/internal/rdb"
	"github.com/resync/resync/internal/receiver"
)

// Info describes a snapshot taken.
type Info struct {
	ReplID  string // the source's replication id and offset at the snapshot
	Offset  int64
	Bytes   int64 // the file's size
	Keys    int64
	Version int // its RDB version
}

// Take asks the source for a full sync and copies the RDB it sends to w,
// decoding it on the way so that its structure and checksum are verified
// before Take returns nil. progress, when not nil, is called about once a
// second with the bytes received and the total (-1 for a diskless
// transfer, whose size is not announced).
func Take(ctx context.Context, o receiver.Options, w io.Writer, progress func(received, total int64)) (Info, error) {
	o.ReplID, o.Offset = "", 0
	link, err := receiver.Connect(ctx, o)
	if err != nil {
		return Info{}, err
	}
	defer link.Close()
	if !link.Full() {
		return Info{}, errors.New("the source offered a partial resync, not a snapshot")
	}
	info := Info{ReplID: link.ReplID(), Offset: link.StartOffset()}
	c := &counter{r: link.RDB(), total: link.RDBSize(), progress: progress}
	tee := io.TeeReader(c, w)
	d, err := rdb.NewDecoder(tee)
	if err != nil {
		return info, fmt.Errorf("snapshot: %w", err)
	}
	info.Version = d.Version()
	for {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		_, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, fmt.Errorf("snapshot: %w", err)
		}
		info.Keys++
	}
	// Whatever follows the checksum (nothing, from a sane source) is
	// copied too: the file is the bytes the source sent.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return info, fmt.Errorf("snapshot: %w", err)
	}
	info.Bytes = c.n
	if progress != nil {
		progress(c.n, c.total)
	}
	return info, nil
}

// counter counts the bytes read and reports progress now and then.
type counter struct {
	r        io.Reader
	n, total int64
	progress func(received, total int64)
	last     time.Time
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && time.Since(c.last) >= time.Second {
		c.last = time.Now()
		c.progress(c.n, c.total)
	}
	return n, err
}
