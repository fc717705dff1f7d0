package sshdtest_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers/emis/sshdtest"
)

func TestStartServesReadOnlySFTPAndStops(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.csv.gpg"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	var addr string
	t.Run("running", func(t *testing.T) {
		srv := sshdtest.Start(t, dir, sshdtest.WithCiphers("aes128-gcm@openssh.com"))
		addr = srv.Addr
		conn, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
			User:            srv.User,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(srv.ClientKey)},
			HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
			Timeout:         10 * time.Second,
		})
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, srv.Logs())
		}
		defer conn.Close()
		c, err := sftp.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		infos, err := c.ReadDir(srv.Dir)
		if err != nil || len(infos) != 1 || infos[0].Name() != "a.csv.gpg" {
			t.Fatalf("ReadDir = %v, %v", infos, err)
		}
		if f, err := c.Create(srv.Dir + "/new"); err == nil {
			f.Close()
			t.Error("Create succeeded: internal-sftp should run read-only")
		}
	})
	// The subtest's cleanup stopped sshd.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("sshd still listening on %s after cleanup", addr)
	}
}
