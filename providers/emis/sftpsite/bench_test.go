package sftpsite_test

import (
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/emis/sshdtest"
)

// BenchmarkFetch downloads a 64 MiB file over loopback, from real OpenSSH
// (per cipher, to compare with `sftp -c CIPHER`) and from emissim, on one
// reused connection. It reports MB/s and asserts nothing about speed:
// perf-baselines.md §2 holds the reference numbers, bench/ the ratios.
func BenchmarkFetch(b *testing.B) {
	const size = 64 << 20
	const name = "bench.csv.gpg"
	servers := []struct {
		name  string
		start func(b *testing.B) (dir string, cfg sftpsite.Config)
	}{
		{"sshd/aes128-gcm", sshdBench("aes128-gcm@openssh.com")},
		{"sshd/chacha20-poly1305", sshdBench("chacha20-poly1305@openssh.com")},
		{"emissim", func(b *testing.B) (string, sftpsite.Config) {
			dir := b.TempDir()
			keyFile := b.TempDir() + "/id"
			pub, err := emissim.GenerateClientKey(keyFile)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := emissim.StartServer(context.Background(), emissim.ServerConfig{Dir: dir, AuthorizedKeys: []ssh.PublicKey{pub}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.Close() })
			cfg := baseConfig()
			cfg.Port, cfg.User, cfg.AuthKeyFile, cfg.RemoteDir = srv.Port(), "im1", keyFile, "/"
			cfg.HostKeys = []string{emissim.AuthorizedKeyLine(srv.HostKey())}
			return dir, cfg
		}},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			dir, cfg := srv.start(b)
			writeRandom(b, dir, name, size, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			c, err := sftpsite.Dial(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				if n, err := c.Fetch(ctx, name, io.Discard, size); err != nil || n != size {
					b.Fatalf("Fetch = %d, %v", n, err)
				}
			}
		})
	}
}

// sshdBench starts sshd offering only cipher; the client's default order
// then has to use it.
func sshdBench(cipher string) func(b *testing.B) (string, sftpsite.Config) {
	return func(b *testing.B) (string, sftpsite.Config) {
		dir := b.TempDir()
		srv := sshdtest.Start(b, dir, sshdtest.WithCiphers(cipher))
		cfg := baseConfig()
		cfg.Port, cfg.User, cfg.AuthKeyFile, cfg.RemoteDir = srv.Port, srv.User, srv.ClientKeyFile, srv.Dir
		cfg.HostKeys = []string{srv.HostKeyLine}
		return dir, cfg
	}
}
