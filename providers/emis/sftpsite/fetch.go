package sftpsite

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Fetch streams the remote file name (an element of RemoteDir, as List
// returned it) to w and returns the number of bytes written to w.
//
// The read uses pkg/sftp's concurrent WriteTo. Before reading, the file's
// size must equal expectSize (the listed size; pass -1 to skip that check),
// and after reading, its size and modification time must be those seen
// before, else the error wraps ErrChanged. A read that yields a different
// number of bytes than the size is a *SizeError. If the connection drops
// or stalls for IdleTimeout, Fetch re-dials and resumes at the offset
// reached, up to Retries times; w sees each byte once, in order.
//
// When ctx is done Fetch returns promptly; no write to w happens after it
// returns. On error, w holds a prefix of the file that the caller must
// discard (or keep, to resume with its own offset bookkeeping).
func (c *Client) Fetch(ctx context.Context, name string, w io.Writer, expectSize int64) (int64, error) {
	if !plainName(name) {
		return 0, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	p := c.remotePath(name)
	var written int64
	var before os.FileInfo
	err := c.retry(ctx, func(s *session, wd *watchdog) error {
		return fetchOnce(s, wd, p, w, expectSize, &written, &before)
	})
	if err != nil {
		return written, fmt.Errorf("sftpsite: fetch %s: %w", name, err)
	}
	return written, nil
}

// plainName accepts one path element: no separators (either kind, as some
// servers treat a backslash as one), no dot names, no NUL.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00")
}

// fetchOnce is one attempt, resuming at *written; *before holds the stat
// of the first attempt.
func fetchOnce(s *session, wd *watchdog, p string, w io.Writer, expectSize int64, written *int64, before *os.FileInfo) error {
	f, err := s.sftp.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", st.Mode())
	}
	switch {
	case *before == nil && expectSize >= 0 && st.Size() != expectSize:
		return fmt.Errorf("%w: size is %d, listed as %d", ErrChanged, st.Size(), expectSize)
	case *before == nil:
		*before = st
	case changed(*before, st):
		return fmt.Errorf("%w: size %d, mtime %s before reconnecting; size %d, mtime %s after",
			ErrChanged, (*before).Size(), (*before).ModTime(), st.Size(), st.ModTime())
	}
	if *written > 0 {
		if _, err := f.Seek(*written, io.SeekStart); err != nil {
			return err
		}
	}
	if _, err := f.WriteTo(writerFunc(func(b []byte) (int, error) { return wd.write(w, b, written) })); err != nil {
		return err
	}
	after, err := f.Stat()
	if err != nil {
		return err
	}
	if changed(*before, after) {
		return fmt.Errorf("%w during the read: size %d→%d, mtime %s→%s",
			ErrChanged, (*before).Size(), after.Size(), (*before).ModTime(), after.ModTime())
	}
	if *written != after.Size() {
		return &SizeError{Name: p, Want: after.Size(), Got: *written}
	}
	return nil
}

func changed(a, b os.FileInfo) bool {
	return a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
