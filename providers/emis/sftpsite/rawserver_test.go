package sftpsite_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/emis/sftpsite"
)

var noFaults = emissim.TransportFaults{}

// readPaths are the two ways Fetch reads a file: its own SFTP channel
// (the default) and pkg/sftp (the fallback). Tests of Fetch's guarantees
// run on both.
var readPaths = []struct {
	name string
	raw  bool
	cfg  func(sftpsite.Config) sftpsite.Config
}{
	{"raw", true, func(c sftpsite.Config) sftpsite.Config { return c }},
	{"pkgsftp", false, sftpsite.WithoutRaw},
}

// checkPath fails the test unless c's fetches read through the path
// wanted, and only through it.
func checkPath(t *testing.T, c *sftpsite.Client, raw bool) {
	t.Helper()
	r, p := c.Reads()
	if raw && (r == 0 || p != 0) || !raw && (r != 0 || p == 0) {
		t.Errorf("%d fetch attempts read through raw channels, %d through pkg/sftp; want only %s", r, p,
			map[bool]string{true: "raw", false: "pkg/sftp"}[raw])
	}
}

// fakeSFTP is a scripted SFTP v3 server for one file, "f.csv.gpg", on the
// raw channels Fetch opens; the first channel of each connection (pkg/sftp's
// own session) is served by pkg/sftp's server. It misbehaves as told.
type fakeSFTP struct {
	script
	inits atomic.Int32 // INITs answered: pkg/sftp's session and raw channels
	opens atomic.Int32 // OPENs answered: one per attempt of a fetch
}

// script is what a fakeSFTP serves and how it misbehaves.
type script struct {
	data  []byte
	size  int64 // what FSTAT says
	mtime uint32

	maxRead   int  // answer at most this many bytes per read (0: all)
	reorder   bool // answer two reads at a time, the later first
	oversize  bool // answer a read with one byte more than asked
	failAt    int64
	badTypeAt int64 // answer the read at this offset with an unknown type
	version   uint32
	hugeAt    int64 // answer the read at this offset with a 1 GiB length
}

func (f *fakeSFTP) start(t *testing.T) sftpsite.Config {
	t.Helper()
	return startGoServer(t, "/", f.serve)
}

// serve answers every channel of the connection, pkg/sftp's session (which
// in these tests only says INIT: Fetch reads through its raw channel) and
// the raw channels alike.
func (f *fakeSFTP) serve(ch ssh.Channel) {
	out := &sync.Mutex{}
	send := func(typ byte, id uint32, body ...[]byte) {
		n := 1 + 4
		for _, b := range body {
			n += len(b)
		}
		p := binary.BigEndian.AppendUint32(nil, uint32(n))
		p = append(p, typ)
		p = binary.BigEndian.AppendUint32(p, id)
		for _, b := range body {
			p = append(p, b...)
		}
		out.Lock()
		ch.Write(p)
		out.Unlock()
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	str := func(s []byte) []byte { return append(u32(uint32(len(s))), s...) }
	status := func(id, code uint32, msg string) {
		send(101, id, u32(code), str([]byte(msg)), str(nil))
	}
	attrs := func() []byte {
		b := u32(0x1 | 0x4 | 0x8)
		b = binary.BigEndian.AppendUint64(b, uint64(f.size))
		b = append(b, u32(0o100644)...)
		b = append(b, u32(f.mtime)...)
		return append(b, u32(f.mtime)...)
	}
	type req struct {
		typ  byte
		id   uint32
		body []byte
	}
	reqs := make(chan req, 128)
	go func() {
		defer close(reqs)
		for {
			var hdr [4]byte
			if _, err := io.ReadFull(ch, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n < 1 || n > 1<<20 {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(ch, b); err != nil {
				return
			}
			r := req{typ: b[0]}
			if r.typ != 1 && len(b) >= 5 {
				r.id, r.body = binary.BigEndian.Uint32(b[1:]), b[5:]
			}
			reqs <- r
		}
	}()
	answerRead := func(r req) {
		hl := binary.BigEndian.Uint32(r.body)
		off := int64(binary.BigEndian.Uint64(r.body[4+hl:]))
		n := int64(binary.BigEndian.Uint32(r.body[4+hl+8:]))
		switch {
		case f.failAt > 0 && off+n > f.failAt:
			status(r.id, 4, "disk on fire")
			return
		case f.badTypeAt > 0 && off+n > f.badTypeAt:
			send(199, r.id, u32(0))
			return
		case f.hugeAt > 0 && off+n > f.hugeAt:
			p := u32(1 << 30)
			p = append(p, 103)
			p = append(p, u32(r.id)...)
			p = append(p, u32(1<<30-9)...)
			out.Lock()
			ch.Write(p)
			ch.Write(make([]byte, 64<<10))
			out.Unlock()
			return
		}
		if off >= int64(len(f.data)) {
			status(r.id, 1, "EOF")
			return
		}
		if f.maxRead > 0 {
			n = min(n, int64(f.maxRead))
		}
		end := min(off+n, int64(len(f.data)))
		d := f.data[off:end]
		if f.oversize {
			d = f.data[off:min(end+1, int64(len(f.data)))]
			if int64(len(d)) == end-off {
				d = append(append([]byte(nil), d...), 'x')
			}
		}
		send(103, r.id, str(d))
	}
	var held *req
	for {
		var r req
		var ok bool
		if held != nil {
			select {
			case r, ok = <-reqs:
			case <-time.After(5 * time.Millisecond):
				answerRead(*held)
				held = nil
				continue
			}
		} else {
			r, ok = <-reqs
		}
		if !ok {
			return
		}
		switch r.typ {
		case 1: // INIT
			f.inits.Add(1)
			v := f.version
			if v == 0 {
				v = 3
			}
			p := u32(5)
			p = append(p, 2)
			p = append(p, u32(v)...)
			ch.Write(p)
		case 3: // OPEN
			f.opens.Add(1)
			name := r.body[4 : 4+binary.BigEndian.Uint32(r.body)]
			if !strings.HasSuffix(string(name), "/f.csv.gpg") {
				status(r.id, 2, "no such file")
				continue
			}
			send(102, r.id, str([]byte("h1")))
		case 8, 7, 17: // FSTAT, LSTAT, STAT
			send(105, r.id, attrs())
		case 4: // CLOSE
			status(r.id, 0, "")
		case 5: // READ
			switch {
			case f.reorder && held == nil:
				held = &r
			case f.reorder:
				answerRead(r)
				answerRead(*held)
				held = nil
			default:
				answerRead(r)
			}
		default:
			status(r.id, 8, "unsupported")
		}
	}
}

// Fetch's own SFTP channel against scripted misbehaviour: answers out of
// order, one KiB at a time, more than asked, a failure or an unknown
// packet mid-file, a length of 1 GiB, another SFTP version.
func TestRawMisbehaviour(t *testing.T) {
	data := make([]byte, 3<<20+517)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	sum := sha256.Sum256(data)
	size := int64(len(data))
	for _, tc := range []struct {
		name string
		f    script
		// want: nil for a complete, correct fetch; else the error must
		// contain it.
		want    string
		wantIs  error
		retried bool // the error is the connection's: retried
	}{
		{name: "out of order", f: script{reorder: true}},
		{name: "1000 bytes per read", f: script{maxRead: 1000}},
		{name: "1000 bytes per read, out of order", f: script{maxRead: 1000, reorder: true}},
		{name: "more than asked", f: script{oversize: true}, want: "bytes of data for a read of", retried: true},
		{name: "failure mid-file", f: script{failAt: 1 << 20}, want: `sftp read: failure (server: "disk on fire")`},
		{name: "unknown reply mid-file", f: script{badTypeAt: 1 << 20}, want: "reply of type 199", retried: true},
		{name: "1 GiB data length", f: script{hugeAt: 1 << 20}, want: "bytes of data for a read of", retried: true},
		{name: "shorter than its size", f: script{size: size + 1000}, wantIs: &sftpsite.SizeError{}},
		{name: "shorter than its size by many requests", f: script{size: size + 2<<20}, wantIs: &sftpsite.SizeError{}},
		{name: "shorter by many requests, out of order", f: script{size: size + 2<<20, reorder: true}, wantIs: &sftpsite.SizeError{}},
		{name: "longer than its size", f: script{size: size - 1000}, wantIs: &sftpsite.SizeError{}},
		{name: "longer by exactly one request", f: script{size: size - 261120}, wantIs: &sftpsite.SizeError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			f := &fakeSFTP{script: tc.f}
			f.data, f.mtime = data, 1700000000
			if f.size == 0 {
				f.size = size
			}
			cfg := f.start(t)
			cfg.MaxPacket, cfg.Concurrency, cfg.Retries = 261120, 4, 1
			c := dial(t, ctx, cfg)
			h := sha256.New()
			n, err := c.Fetch(ctx, "f.csv.gpg", h, f.size)
			checkPath(t, c, true)
			switch {
			case tc.want == "" && tc.wantIs == nil:
				if err != nil || n != size || [32]byte(h.Sum(nil)) != sum {
					t.Fatalf("Fetch = %d, %v; want all %d bytes", n, err, size)
				}
				if _, idle := c.RawChannels(); idle != 1 {
					t.Errorf("%d idle raw channels after a clean fetch, want 1", idle)
				}
				// The channel is reused: no new one for a second fetch.
				before := f.inits.Load()
				if got := fetchSum(t, ctx, c, "f.csv.gpg", size); got != sum {
					t.Fatal("second fetch: sha256 differs")
				}
				if after := f.inits.Load(); after != before {
					t.Errorf("second fetch opened %d channels, want the idle one reused", after-before)
				}
			case tc.wantIs != nil:
				var se *sftpsite.SizeError
				if !errors.As(err, &se) || se.Want != f.size {
					t.Fatalf("err = %v, want a SizeError for size %d", err, f.size)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.want)
				}
				attempts := f.opens.Load()
				if tc.retried && attempts < 2 {
					t.Errorf("%d attempts, want a retry", attempts)
				}
				if !tc.retried && attempts != 1 {
					t.Errorf("%d attempts, want the answer taken as it is", attempts)
				}
			}
		})
	}
}

// A server that will not serve the raw channel is read through pkg/sftp:
// one that answers INIT with another version or not at all (the raw path
// is then off for the connection), and one that refuses a second channel
// (OpenSSH's MaxSessions; only that fetch falls back).
func TestRawFallback(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	const name = "f.csv.gpg"
	const size = 2<<20 + 3
	sum := writeRandom(t, dir, name, size, 9)
	pkgServer := func(ch ssh.Channel) {
		srv, err := sftp.NewServer(ch, sftp.ReadOnly())
		if err != nil {
			return
		}
		srv.Serve()
		srv.Close()
	}
	t.Run("version 2", func(t *testing.T) {
		var served atomic.Int32
		cfg := startGoServer(t, dir, func(ch ssh.Channel) {
			if served.Add(1) == 1 {
				pkgServer(ch)
				return
			}
			// Read INIT, answer version 2.
			io.ReadFull(ch, make([]byte, 9))
			ch.Write([]byte{0, 0, 0, 5, 2, 0, 0, 0, 2})
			io.Copy(io.Discard, ch)
		})
		c := dial(t, ctx, cfg)
		for range 2 {
			if got := fetchSum(t, ctx, c, name, size); got != sum {
				t.Fatal("sha256 differs")
			}
		}
		checkPath(t, c, false)
		if on, _ := c.RawChannels(); on {
			t.Error("raw channels still on after version 2")
		}
		if n := served.Load(); n != 2 {
			t.Errorf("%d channels opened, want 2 (pkg/sftp's, one refused raw channel)", n)
		}
	})
	t.Run("no answer to INIT", func(t *testing.T) {
		defer sftpsite.SetRawInitTimeout(200 * time.Millisecond)()
		var served atomic.Int32
		cfg := startGoServer(t, dir, func(ch ssh.Channel) {
			if served.Add(1) == 1 {
				pkgServer(ch)
				return
			}
			io.Copy(io.Discard, ch)
		})
		c := dial(t, ctx, cfg)
		for range 2 {
			if got := fetchSum(t, ctx, c, name, size); got != sum {
				t.Fatal("sha256 differs")
			}
		}
		checkPath(t, c, false)
		if n := served.Load(); n != 2 {
			t.Errorf("%d channels opened, want 2 (pkg/sftp's, one silent raw channel)", n)
		}
	})
	t.Run("one channel per connection", func(t *testing.T) {
		cfg := startGoServerWith(t, dir, 1, pkgServer)
		c := dial(t, ctx, cfg)
		for range 2 {
			if got := fetchSum(t, ctx, c, name, size); got != sum {
				t.Fatal("sha256 differs")
			}
		}
		checkPath(t, c, false)
		if on, _ := c.RawChannels(); !on {
			t.Error("a refused channel turned raw channels off")
		}
	})
}

// Concurrent fetches each get a raw channel of the one connection; they
// are kept for later fetches, a few of them.
func TestRawConcurrent(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := srv.start(t, noFaults)
			names := []string{"a.gpg", "b.gpg", "c.gpg", "d.gpg", "e.gpg", "f.gpg"}
			sums := map[string][32]byte{}
			for i, n := range names {
				sums[n] = writeRandom(t, s.dir, n, int64(1<<20+i*4097), uint64(200+i))
			}
			c := dial(t, ctx, s.cfg)
			for range 2 {
				errs := make(chan error, len(names))
				for i, n := range names {
					go func() {
						var b bytes.Buffer
						_, err := c.Fetch(ctx, n, &b, int64(1<<20+i*4097))
						if err == nil && sha256.Sum256(b.Bytes()) != sums[n] {
							err = errors.New(n + ": sha256 differs")
						}
						errs <- err
					}()
				}
				for range names {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
			}
			checkPath(t, c, true)
			if _, idle := c.RawChannels(); idle < 1 || idle > 4 {
				t.Errorf("%d idle raw channels, want 1 to 4", idle)
			}
		})
	}
}

// Missing and unreadable files are answers, not retried, on both paths.
func TestRawStatusErrors(t *testing.T) {
	for _, srv := range servers {
		for _, p := range readPaths {
			t.Run(srv.name+"/"+p.name, func(t *testing.T) {
				ctx := testCtx(t)
				s := srv.start(t, noFaults)
				writeRandom(t, s.dir, "locked.gpg", 100, 1)
				if err := os.Chmod(s.dir+"/locked.gpg", 0); err != nil {
					t.Fatal(err)
				}
				c := dial(t, ctx, p.cfg(s.cfg))
				start := time.Now()
				_, err := c.Fetch(ctx, "absent.gpg", io.Discard, -1)
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("missing: err = %v, want not exist", err)
				}
				if os.Geteuid() != 0 { // root reads anything
					_, err = c.Fetch(ctx, "locked.gpg", io.Discard, -1)
					if !errors.Is(err, os.ErrPermission) {
						t.Errorf("unreadable: err = %v, want permission", err)
					}
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("took %s: answers must not be retried", d)
				}
				checkPath(t, c, p.raw)
			})
		}
	}
}
