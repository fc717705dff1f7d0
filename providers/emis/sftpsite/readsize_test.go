package sftpsite_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/emis/sftpsite"
)

// The read request size comes from limits@openssh.com where the server
// offers it (OpenSSH: 261120 bytes), else 32 KiB; a configured size wins.
func TestRequestSize(t *testing.T) {
	ctx := testCtx(t)
	sshd := startSSHD(t, emissim.TransportFaults{})
	emis := startEmissim(t, emissim.TransportFaults{})
	for _, tc := range []struct {
		name     string
		cfg      sftpsite.Config
		set      int
		wantSize int
		wantConc int
	}{
		{name: "sshd offers limits", cfg: sshd.cfg, wantSize: 261120, wantConc: 32},
		{name: "sshd, configured", cfg: sshd.cfg, set: 65536, wantSize: 65536, wantConc: 64},
		{name: "emissim has no limits", cfg: emis.cfg, wantSize: 32768, wantConc: 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.MaxPacket = tc.set
			c := dial(t, ctx, cfg)
			if size, conc := c.ReadParams(); size != tc.wantSize || conc != tc.wantConc {
				t.Errorf("request size %d × %d in flight, want %d × %d", size, conc, tc.wantSize, tc.wantConc)
			}
		})
	}
	t.Run("above 255 KiB refused", func(t *testing.T) {
		cfg := sshd.cfg
		cfg.MaxPacket = 256 << 10
		if c, err := sftpsite.Dial(ctx, cfg); err == nil {
			c.Close()
			t.Fatal("Dial accepted a 256 KiB request size")
		}
	})
}

// A server that answers each read with at most 32 KiB (pkg/sftp's own
// server) is asked again for the rest: large requests are then slower,
// never wrong.
func TestShortReads(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	cfg := startGoServer(t, dir, func(ch ssh.Channel) {
		srv, err := sftp.NewServer(ch, sftp.ReadOnly())
		if err != nil {
			return
		}
		srv.Serve()
		srv.Close()
	})
	const name = "short.csv.gpg"
	for _, size := range []int64{0, 1, 32 << 10, 261120, 261121, 5<<20 + 12345} {
		sum := writeRandom(t, dir, name, size, uint64(size))
		for _, rs := range []int{0, 65536, 261120} {
			for _, p := range readPaths {
				c := p.cfg(cfg)
				c.MaxPacket, c.Concurrency = rs, 3
				cl := dial(t, ctx, c)
				if got := fetchSum(t, ctx, cl, name, size); got != sum {
					t.Fatalf("%s: size %d, request size %d: sha256 differs", p.name, size, rs)
				}
				checkPath(t, cl, p.raw)
				cl.Close()
			}
		}
	}
}

// A file that yields more or fewer bytes than its (unchanging) size is a
// *SizeError, never a complete download.
func TestSizeError(t *testing.T) {
	ctx := testCtx(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes
	for _, tc := range []struct {
		name     string
		statSize int64
	}{
		{"more bytes than its size", int64(len(data)) - 10},
		{"more bytes than its size, at a request boundary", 2 * 65536},
		{"fewer bytes than its size", int64(len(data)) + 10},
	} {
		for _, p := range readPaths {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				h := &lyingFS{data: data, size: tc.statSize, mtime: time.Unix(1700000000, 0)}
				cfg := startGoServer(t, "/", func(ch ssh.Channel) {
					rs := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
					rs.Serve()
					rs.Close()
				})
				cfg = p.cfg(cfg)
				cfg.MaxPacket, cfg.Retries = 65536, -1
				c := dial(t, ctx, cfg)
				_, err := c.Fetch(ctx, "f.csv.gpg", io.Discard, tc.statSize)
				var se *sftpsite.SizeError
				if !errors.As(err, &se) || se.Want != tc.statSize {
					t.Fatalf("err = %v, want a SizeError with size %d", err, tc.statSize)
				}
				checkPath(t, c, p.raw)
				t.Log(err)
			})
		}
	}
}

// lyingFS serves one file, f.csv.gpg, whose stat reports size while reads
// yield data.
type lyingFS struct {
	data  []byte
	size  int64
	mtime time.Time
}

func (l *lyingFS) Fileread(*sftp.Request) (io.ReaderAt, error) { return bytes.NewReader(l.data), nil }
func (l *lyingFS) Filewrite(*sftp.Request) (io.WriterAt, error) {
	return nil, os.ErrPermission
}
func (l *lyingFS) Filecmd(*sftp.Request) error { return os.ErrPermission }
func (l *lyingFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	if filepath.Base(r.Filepath) != "f.csv.gpg" {
		return nil, os.ErrNotExist
	}
	return listerAt{fileInfo{name: "f.csv.gpg", size: l.size, mtime: l.mtime}}, nil
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(f []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(f, l[off:])
	if n+int(off) == len(l) {
		return n, io.EOF
	}
	return n, nil
}

type fileInfo struct {
	name  string
	size  int64
	mtime time.Time
}

func (f fileInfo) Name() string       { return f.name }
func (f fileInfo) Size() int64        { return f.size }
func (f fileInfo) Mode() os.FileMode  { return 0o644 }
func (f fileInfo) ModTime() time.Time { return f.mtime }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }

// startGoServer runs an in-process SSH server on 127.0.0.1 whose "sftp"
// subsystem is served by serve, and returns a configuration that reaches
// it with RemoteDir dir. The server stops at the end of the test.
func startGoServer(t *testing.T, dir string, serve func(ssh.Channel)) sftpsite.Config {
	t.Helper()
	return startGoServerWith(t, dir, 0, serve)
}

// startGoServerWith is startGoServer with a limit on the session channels
// one connection may open (0: none), as OpenSSH's MaxSessions.
func startGoServerWith(t *testing.T, dir string, maxSessions int, serve func(ssh.Channel)) sftpsite.Config {
	t.Helper()
	hostKey, err := ssh.NewSignerFromKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	clientPriv := newKey(t)
	clientPub := pubKey(t, clientPriv).Marshal()
	sc := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), clientPub) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	sc.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveConn(nc, sc, maxSessions, serve)
			}()
		}
	}()
	cfg := baseConfig()
	cfg.Port, cfg.User, cfg.RemoteDir = ln.Addr().(*net.TCPAddr).Port, "im1", dir
	cfg.AuthKeyFile = writeKeyFile(t, clientPriv, "")
	cfg.HostKeys = []string{string(ssh.MarshalAuthorizedKey(hostKey.PublicKey()))}
	return cfg
}

func serveConn(nc net.Conn, sc *ssh.ServerConfig, maxSessions int, serve func(ssh.Channel)) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, sc)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	sessions := 0
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		if sessions++; maxSessions > 0 && sessions > maxSessions {
			nch.Reject(ssh.Prohibited, "too many sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp"
				req.Reply(ok, nil)
				if ok {
					go func() {
						serve(ch)
						ch.Close()
					}()
				}
			}
		}()
	}
}
