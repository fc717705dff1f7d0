// Package landing is the part of the delivery pipeline both suppliers share:
// directories that no server-supplied name can escape, files that appear
// under their final name only when complete and durable, a streaming CSV
// check that validates and decodes a table as it is written, and the
// manifest.json that marks a landed batch ready.
package landing

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PartialSuffix marks a file still being written. A file with this suffix
// is never a landed file; Partials lists them for repair.
const PartialSuffix = ".partial"

// writeBuffer batches the small writes of a decrypting stream into
// fewer system calls.
const writeBuffer = 128 << 10

// syncChunk is how much a Pending file is written between early syncs
// (see Pending.Write). Smaller files are synced once, by Commit. Each
// fsync also commits the journal and flushes the disk's cache, and
// writes wait for it: for a 256 MiB table, decrypt + check + land took
// 0.60 s with 16 MiB steps, 0.56 s with 32 and 0.54-0.55 s with 48-64,
// while one fsync at the end left Commit 0.2 s of waiting. A batch
// commits all its files at its end, where bigger steps leave more to
// sync: 32 MiB keeps most of the gain (bench/README.md, decrypt.sh).
const syncChunk = 32 << 20

// Dir is a directory tree that every name is resolved inside. It is built
// on os.Root, so neither ".." nor a symlink planted in the tree can lead
// outside it.
type Dir struct {
	root     *os.Root
	path     string
	fileMode os.FileMode
	dirMode  os.FileMode
}

// OpenDir creates path (and its parents) with dirMode if needed and opens
// it as a root for files created with fileMode.
func OpenDir(path string, fileMode, dirMode os.FileMode) (*Dir, error) {
	if err := os.MkdirAll(path, dirMode.Perm()); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &Dir{root: root, path: path, fileMode: fileMode.Perm(), dirMode: dirMode.Perm()}, nil
}

// Path is the directory's path as given to OpenDir.
func (d *Dir) Path() string { return d.path }

// Close releases the directory handle.
func (d *Dir) Close() error { return d.root.Close() }

// checkRel is the rule for paths the program itself builds from validated
// parts: local, and free of characters that break logs and line-based tools
// or mean a separator elsewhere.
func checkRel(rel string) error {
	if rel == "" || !filepath.IsLocal(rel) {
		return fmt.Errorf("landing: %q is not a local path", rel)
	}
	if strings.ContainsAny(rel, "\x00\n\r\\") {
		return fmt.Errorf("landing: %q contains a NUL, line break or backslash", rel)
	}
	return nil
}

// mkdirAll creates the directories of rel inside the root. Directories it
// creates get dirMode exactly (chmod through the open descriptor, so the
// umask does not loosen or tighten what was configured and no symlink
// race applies); existing ones are left as they are.
func (d *Dir) mkdirAll(rel string) error {
	if rel == "." {
		return nil
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		err := d.root.Mkdir(p, d.dirMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		f, err := d.root.Open(p)
		if err != nil {
			return err
		}
		err = f.Chmod(d.dirMode)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Pending is a file being written under rel+".partial". Commit makes it
// appear, complete and durable, under its final name; Abort removes it.
// A Pending is used by one goroutine at a time.
type Pending struct {
	d       *Dir
	rel     string
	partial string
	f       *os.File
	bw      *bufio.Writer
	err     error // first write error; Commit refuses after one
	done    bool

	// Early syncing: bytes written so far and when the last early sync
	// was asked for; the syncer, once started.
	written, kicked int64
	syncEvery       int64 // syncChunk; tests make it smaller
	sync            *syncer
}

// Create starts writing rel inside d. Parent directories are created with
// the directory mode. A stale rel+".partial" from an earlier crash is
// replaced; a symlink in its place is removed, never followed.
func (d *Dir) Create(rel string) (*Pending, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	rel = filepath.Clean(rel)
	if rel == "." {
		return nil, fmt.Errorf("landing: cannot create the landing root")
	}
	if strings.HasSuffix(rel, PartialSuffix) {
		return nil, fmt.Errorf("landing: %q ends in %s", rel, PartialSuffix)
	}
	if err := d.mkdirAll(filepath.Dir(rel)); err != nil {
		return nil, err
	}
	partial := rel + PartialSuffix
	if err := d.root.Remove(partial); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// O_EXCL: if anything reappeared under the name, fail rather than
	// write through it.
	f, err := d.root.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, d.fileMode)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(d.fileMode); err != nil {
		f.Close()
		d.root.Remove(partial)
		return nil, err
	}
	return &Pending{d: d, rel: rel, partial: partial, f: f, bw: bufio.NewWriterSize(f, writeBuffer), syncEvery: syncChunk}, nil
}

// Write appends to the partial file.
//
// Every syncChunk bytes it also asks a goroutine of its own to fsync the
// file while writing goes on, so the data reaches the disk (and, on a VM,
// the host's disk: most of the cost) in steps that overlap the rest of the
// work, and Commit's fsync is left with the last step instead of the whole
// file: for a 256 MiB table that fsync took about a quarter of the wall
// time of decrypt + check + land (bench/README.md, decrypt.sh). The early
// syncs only make data durable sooner; Commit still fsyncs the complete
// file, renames and fsyncs the directory, and fails if an early sync
// failed (a write-back error is reported to one fsync only).
func (p *Pending) Write(b []byte) (int, error) {
	if p.done {
		return 0, fmt.Errorf("landing: write to %s after commit or abort", p.rel)
	}
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.bw.Write(b)
	if err != nil {
		p.err = err
		return n, err
	}
	if p.written += int64(n); p.written-p.kicked >= p.syncEvery {
		p.kicked = p.written
		if p.sync == nil {
			p.sync = startSyncer(p.f.Sync)
		}
		p.sync.kick()
	}
	return n, nil
}

// syncer fsyncs a file (sync is its Sync) on its own goroutine whenever
// kicked, while the file is being written (os.File allows that).
type syncer struct {
	req  chan struct{} // one pending request at most
	done chan struct{} // closed when the goroutine ended; err is set then
	err  error         // the first fsync error
}

func startSyncer(sync func() error) *syncer {
	s := &syncer{req: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for range s.req {
			if err := sync(); err != nil && s.err == nil {
				s.err = err
			}
		}
	}()
	return s
}

// kick asks for an fsync; if one is already waiting to start, that one
// will cover the newer data too.
func (s *syncer) kick() {
	select {
	case s.req <- struct{}{}:
	default:
	}
}

// stop waits for an fsync in progress and ends the goroutine; it returns
// the first early fsync error.
func (s *syncer) stop() error {
	if s == nil {
		return nil
	}
	select {
	case <-s.done:
	default:
		close(s.req)
		<-s.done
	}
	return s.err
}

// Commit flushes and fsyncs the file, renames it to its final name and
// fsyncs the directory, so after a crash the final name either is absent
// or names the complete file. On failure the partial file is removed; if
// only the final directory fsync fails, the file is in place but may not
// survive a power loss, and the error says so.
func (p *Pending) Commit() error {
	if p.done {
		return fmt.Errorf("landing: %s already committed or aborted", p.rel)
	}
	if err := p.commit(); err != nil {
		p.Abort()
		return fmt.Errorf("landing: commit %s: %w", p.rel, err)
	}
	return nil
}

func (p *Pending) commit() error {
	if p.err != nil {
		return p.err
	}
	if err := p.bw.Flush(); err != nil {
		return err
	}
	if err := p.sync.stop(); err != nil {
		return err
	}
	if err := p.f.Sync(); err != nil {
		return err
	}
	err := p.f.Close()
	p.f = nil
	if err != nil {
		return err
	}
	if err := p.d.root.Rename(p.partial, p.rel); err != nil {
		return err
	}
	p.done = true
	if err := p.d.syncDir(filepath.Dir(p.rel)); err != nil {
		return fmt.Errorf("renamed, but syncing the directory failed: %w", err)
	}
	return nil
}

// syncDir makes a rename in rel durable.
func (d *Dir) syncDir(rel string) error {
	f, err := d.root.Open(rel)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort discards the partial file. It is a no-op after Commit and when
// called again.
func (p *Pending) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	var err error
	p.sync.stop() // its error is moot: the file is discarded
	if p.f != nil {
		err = p.f.Close()
		p.f = nil
	}
	if rerr := p.d.root.Remove(p.partial); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}

// Open opens rel for reading.
func (d *Dir) Open(rel string) (*os.File, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	return d.root.Open(rel)
}

// Remove removes the file or empty directory rel.
func (d *Dir) Remove(rel string) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	return d.root.Remove(rel)
}

// RemoveAll removes rel and everything under it; it is not an error if
// rel does not exist. The root itself cannot be removed this way.
func (d *Dir) RemoveAll(rel string) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	if filepath.Clean(rel) == "." {
		return fmt.Errorf("landing: refusing to remove the landing root")
	}
	return d.root.RemoveAll(rel)
}

// Stat describes rel (following symlinks that stay inside the root).
func (d *Dir) Stat(rel string) (fs.FileInfo, error) {
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	return d.root.Stat(rel)
}

// Hash returns the SHA-256 (hex) and size of rel.
func (d *Dir) Hash(rel string) (string, int64, error) {
	f, err := d.Open(rel)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 256<<10))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Partials lists the *.partial files left in the tree by interrupted
// writes, as slash-separated paths relative to the root, in lexical order.
// Symlinked directories are not followed.
func (d *Dir) Partials() ([]string, error) {
	var out []string
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.HasSuffix(p, PartialSuffix) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// ValidName is the rule for a base name chosen by a server (a remote file
// name, a table name from a manifest) before any part of it is used in a
// path. It is stricter than the local file system needs, so a landed tree
// can be copied to Windows and a name cannot be mistaken for a flag.
func ValidName(name string) error {
	bad := func(why string) error { return fmt.Errorf("unsafe file name %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 255:
		return bad("longer than 255 bytes")
	case name == "." || name == "..":
		return bad("a directory reference")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.ContainsAny(name, `/\`):
		return bad("contains a path separator")
	case name[0] == '-':
		return bad("starts with '-'")
	case name[0] == '.':
		return bad("starts with '.'")
	case strings.HasSuffix(name, " ") || strings.HasSuffix(name, "."):
		return bad("ends with a space or '.'") // Windows drops these silently
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	if !filepath.IsLocal(name) {
		return bad("not a local name")
	}
	if windowsReserved(name) {
		return bad("a reserved device name on Windows")
	}
	return nil
}

// windowsReserved reports names Windows maps to devices, with or without
// an extension ("NUL", "com1.csv", "LPT¹").
func windowsReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) >= 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) {
		switch stem[3:] {
		case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
			return true
		}
	}
	return false
}
