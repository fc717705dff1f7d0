package sftpsite_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/emis/sshdtest"
)

// onBytes calls fn once, after n bytes went through it.
type onBytes struct {
	buf  bytes.Buffer
	n    int
	once sync.Once
	fn   func()
}

func (w *onBytes) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) >= w.n {
		w.once.Do(w.fn)
	}
	return w.buf.Write(p)
}

// Transport faults against real OpenSSH: the connection dropped mid-file
// (sshd's session processes killed) is resumed at the offset reached; a
// stalled connection (the session processes stopped) fails within the
// idle timeout instead of hanging.
func TestRealSSHDTransportFaults(t *testing.T) {
	dir := t.TempDir()
	srv := sshdtest.Start(t, dir)
	data := make([]byte, 24<<20)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "big.csv.gpg"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Port, cfg.User, cfg.AuthKeyFile, cfg.RemoteDir = srv.Port, srv.User, srv.ClientKeyFile, srv.Dir
	cfg.HostKeys = []string{srv.HostKeyLine}
	signalled := 0
	signal := func(sig syscall.Signal) {
		for _, pid := range srv.Sessions() {
			if syscall.Kill(pid, sig) == nil {
				signalled++
			}
		}
	}

	for _, p := range readPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Run("dropped mid-file", func(t *testing.T) {
				signalled = 0
				c := p.cfg(cfg)
				c.Retries, c.Backoff = 3, 50*time.Millisecond
				cl, err := sftpsite.Dial(testCtx(t), c)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				w := &onBytes{n: 4 << 20, fn: func() { signal(syscall.SIGKILL) }}
				n, err := cl.Fetch(testCtx(t), "big.csv.gpg", w, int64(len(data)))
				if signalled == 0 {
					t.Fatal("no sshd session process was found to kill: the drop did not happen")
				}
				if err != nil || n != int64(len(data)) || sha256.Sum256(w.buf.Bytes()) != sha256.Sum256(data) {
					t.Fatalf("fetch after a drop: n=%d err=%v", n, err)
				}
				checkPath(t, cl, p.raw)
			})

			t.Run("stalled past the idle timeout", func(t *testing.T) {
				c := p.cfg(cfg)
				c.Retries, c.IdleTimeout = -1, 500*time.Millisecond
				cl, err := sftpsite.Dial(testCtx(t), c)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				defer signal(syscall.SIGCONT)
				w := &onBytes{n: 2 << 20, fn: func() { signal(syscall.SIGSTOP) }}
				start := time.Now()
				_, err = cl.Fetch(testCtx(t), "big.csv.gpg", w, int64(len(data)))
				if !errors.Is(err, sftpsite.ErrIdle) {
					t.Fatalf("want ErrIdle, got %v", err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("took %s to notice the stall", d)
				}
				checkPath(t, cl, p.raw)
			})
		})
	}
}
