package sftpsite

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pkg/sftp"
)

// Fetch streams the remote file name (an element of RemoteDir, as List
// returned it) to w and returns the number of bytes written to w.
//
// The read keeps Concurrency requests of MaxPacket bytes in flight (see
// Config) and writes their answers to w in order. Before reading, the file's
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
		return c.fetchOnce(s, wd, p, w, expectSize, &written, &before)
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
// of the first attempt. It reads through a raw channel of the session
// (raw.go, rawfetch.go) where the server serves one, else through
// pkg/sftp.
func (c *Client) fetchOnce(s *session, wd *watchdog, p string, w io.Writer, expectSize int64, written *int64, before *os.FileInfo) error {
	if rc := s.rawChan(); rc != nil {
		c.rawReads.Add(1)
		reusable, err := fetchRaw(rc, wd, p, w, expectSize, written, before, s.reqSize, s.conc)
		if reusable {
			s.putRaw(rc)
		} else {
			rc.close()
		}
		return err
	}
	c.sftpReads.Add(1)
	f, err := s.sftp.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := checkBefore(st, expectSize, before); err != nil {
		return err
	}
	past, err := copyRange(f, wd, w, st.Size(), written, s.reqSize, s.conc)
	if err != nil {
		return err
	}
	after, err := f.Stat()
	if err != nil {
		return err
	}
	return checkAfter(after, p, *before, *written, past)
}

// checkBefore compares the first stat of an attempt with the listing
// (first attempt) or the first attempt's stat (a resume).
func checkBefore(st os.FileInfo, expectSize int64, before *os.FileInfo) error {
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
	return nil
}

// checkAfter compares the stat after the read with the first one and the
// bytes read with the size.
func checkAfter(after os.FileInfo, p string, before os.FileInfo, written int64, past bool) error {
	if changed(before, after) {
		return fmt.Errorf("%w during the read: size %d→%d, mtime %s→%s",
			ErrChanged, before.Size(), after.Size(), before.ModTime(), after.ModTime())
	}
	switch {
	case past:
		return &SizeError{Name: p, Want: after.Size(), Got: written + 1}
	case written != after.Size():
		return &SizeError{Name: p, Want: after.Size(), Got: written}
	}
	return nil
}

// copyRange writes bytes [*written, size) of f to w, in order, counting
// them into *written, with up to conc read requests of reqSize bytes in
// flight; then it reads at size, which must be the end of the file (past
// says it was not). Each request is one ReadAt into a buffer of its own,
// which pkg/sftp answers with one read request, asking again for the rest
// of a short answer, so a server that serves less than reqSize per read
// is slower, not wrong. A read that ends early (the file shrank) stops the
// copy without error: the caller compares *written with the size.
func copyRange(f *sftp.File, wd *watchdog, w io.Writer, size int64, written *int64, reqSize, conc int) (past bool, err error) {
	type slot struct {
		buf  []byte
		n    int
		err  error
		done chan struct{}
	}
	start, rs := *written, int64(reqSize)
	if start > size {
		return true, nil
	}
	chunks := (size-start+rs-1)/rs + 1 // the last one is the read at size
	ring := make([]slot, min(int64(conc), chunks))
	bufSize := max(min(rs, size-start), 1)
	for i := range ring {
		ring[i] = slot{buf: make([]byte, bufSize), done: make(chan struct{}, 1)}
	}
	issue := func(i int64) {
		s := &ring[i%int64(len(ring))]
		off := start + i*rs
		n := min(rs, size-off)
		if i == chunks-1 {
			off, n = size, 1
		}
		go func() {
			s.n, s.err = f.ReadAt(s.buf[:n], off)
			s.done <- struct{}{}
		}()
	}
	next, used := int64(0), int64(0)
	for ; next < int64(len(ring)); next++ {
		issue(next)
	}
	defer func() {
		// Reads still in flight fill buffers of the ring: wait for them.
		// They end with their answer, or when the connection is closed.
		for ; used < next; used++ {
			<-ring[used%int64(len(ring))].done
		}
	}()
	for used < chunks {
		s := &ring[used%int64(len(ring))]
		<-s.done
		used++
		if used == chunks {
			if s.err != nil && s.err != io.EOF {
				return false, s.err
			}
			return s.n > 0, nil
		}
		if s.n > 0 {
			if _, err := wd.write(w, s.buf[:s.n], written); err != nil {
				return false, err
			}
		}
		if s.err == io.EOF {
			return false, nil
		}
		if s.err != nil {
			return false, s.err
		}
		if next < chunks {
			issue(next)
			next++
		}
	}
	return false, nil
}

func changed(a, b os.FileInfo) bool {
	return a.Size() != b.Size() || !a.ModTime().Equal(b.ModTime())
}
