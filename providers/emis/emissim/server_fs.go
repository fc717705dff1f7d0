package emissim

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
)

// sftpHandler serves one SFTP session from the server's directory. Every method
// maps the (already cleaned, absolute) SFTP path to a single name inside
// the directory and opens it through os.Root, so no path can leave it.
type sftpHandler struct {
	srv      *Server
	conn     net.Conn // closed by the drop fault
	connDone <-chan struct{}
}

var errFaultDropped = errors.New("emissim: connection dropped (fault injection)")

// sftpLocalName maps an SFTP path to a name in the served directory: "/" is the
// directory itself ("."), "/NAME" is NAME. Anything deeper is not served,
// because the site is one flat directory.
func sftpLocalName(p string) (string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return ".", nil
	}
	name := p[1:]
	if strings.ContainsRune(name, '/') || !filepath.IsLocal(name) {
		return "", os.ErrNotExist
	}
	return name, nil
}

// Fileread opens a regular file for reading.
func (h *sftpHandler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	name, err := sftpLocalName(r.Filepath)
	if err != nil {
		return nil, err
	}
	if _, err := h.regular(name); err != nil {
		return nil, err
	}
	f, err := h.srv.root.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, os.ErrNotExist
	}
	return &faultyReader{h: h, f: f, name: name, size: fi.Size()}, nil
}

// Filewrite refuses every upload: the site is read-only to its reader.
func (h *sftpHandler) Filewrite(*sftp.Request) (io.WriterAt, error) {
	return nil, os.ErrPermission
}

// Filecmd refuses setstat, rename, remove, mkdir, link and the rest.
func (h *sftpHandler) Filecmd(*sftp.Request) error { return os.ErrPermission }

// Filelist answers List (the directory only), Stat and Lstat.
func (h *sftpHandler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name, err := sftpLocalName(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		if name != "." {
			return nil, os.ErrNotExist
		}
		return h.list()
	case "Stat", "Lstat":
		if name == "." {
			fi, err := h.srv.root.Stat(".")
			if err != nil {
				return nil, err
			}
			return dirLister{fi}, nil
		}
		fi, err := h.regular(name)
		if err != nil {
			return nil, err
		}
		return dirLister{h.srv.reported(fi)}, nil
	default: // Readlink: there are no symlinks on this site
		return nil, os.ErrPermission
	}
}

// regular stats name without following symlinks and accepts only regular
// files.
func (h *sftpHandler) regular(name string) (fs.FileInfo, error) {
	fi, err := h.srv.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, os.ErrNotExist
	}
	return fi, nil
}

func (h *sftpHandler) list() (sftp.ListerAt, error) {
	d, err := h.srv.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out dirLister
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue // subdirectories, symlinks, devices: not served
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		out = append(out, h.srv.reported(fi))
	}
	slices.SortFunc(out, func(a, b fs.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// dirLister serves a fixed slice of entries.
type dirLister []fs.FileInfo

func (l dirLister) ListAt(dst []fs.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// grownInfo overrides the size a FileInfo reports.
type grownInfo struct {
	fs.FileInfo
	size int64
}

func (s grownInfo) Size() int64 { return s.size }

// reported is fi as the client is shown it: the growing-file fault makes
// each look at GrowingFile report a larger share of its real size.
func (s *Server) reported(fi fs.FileInfo) fs.FileInfo {
	if fi.Name() != s.cfg.Faults.GrowingFile {
		return fi
	}
	s.mu.Lock()
	s.grows++
	s.mu.Unlock()
	return grownInfo{fi, s.uploaded(fi.Name(), fi.Size())}
}

// uploaded is how much of a file of real size has "arrived" so far.
func (s *Server) uploaded(name string, size int64) int64 {
	f := s.cfg.Faults
	if name != f.GrowingFile {
		return size
	}
	s.mu.Lock()
	n := min(s.grows, f.GrowSteps)
	s.mu.Unlock()
	return size * int64(n) / int64(f.GrowSteps)
}

// stall holds a read of StallFile until StallFor after its first read.
func (s *Server) stall(name string, connDone <-chan struct{}) error {
	f := s.cfg.Faults
	if f.StallFile == "" || name != f.StallFile || f.StallFor <= 0 {
		return nil
	}
	s.mu.Lock()
	if s.stallAt.IsZero() {
		s.stallAt = time.Now()
	}
	wait := time.Until(s.stallAt.Add(f.StallFor))
	s.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-connDone:
	case <-s.done:
	}
	return net.ErrClosed
}

// shouldDrop reports, once per file name, that served bytes of name reached
// DropAfterBytes.
func (s *Server) shouldDrop(name string, served int64) bool {
	f := s.cfg.Faults
	if f.DropAfterBytes <= 0 || (f.DropFile != "" && f.DropFile != name) || served < f.DropAfterBytes {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped[name] {
		return false
	}
	s.dropped[name] = true
	return true
}

// faultyReader reads one open file, applying the transport faults.
type faultyReader struct {
	h      *sftpHandler
	f      *os.File
	name   string
	size   int64
	served atomic.Int64
}

func (r *faultyReader) ReadAt(p []byte, off int64) (int, error) {
	s := r.h.srv
	if err := s.stall(r.name, r.h.connDone); err != nil {
		return 0, err
	}
	if limit := s.uploaded(r.name, r.size); off+int64(len(p)) > limit {
		if off >= limit {
			return 0, io.EOF
		}
		p = p[:limit-off]
	}
	n, err := r.f.ReadAt(p, off)
	if s.shouldDrop(r.name, r.served.Add(int64(n))) {
		// Close before answering, so the client sees a dropped connection
		// rather than an SFTP error status for this read.
		r.h.conn.Close()
		return 0, errFaultDropped
	}
	return n, err
}

func (r *faultyReader) Close() error { return r.f.Close() }
