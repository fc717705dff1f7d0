package emissim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// testServer serves a directory holding one regular file, a subdirectory
// with a file, a symlink leading out of the directory and one to the
// regular file; a secret lies next to the directory.
func testServer(t *testing.T, faults TransportFaults) (*Server, ssh.Signer, string) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "site")
	must(t, os.Mkdir(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(parent, "secret"), []byte("secret"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "a.csv.gpg"), []byte("hello"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "b.csv.gpg"), []byte("nested"), 0o644))
	must(t, os.Symlink("../secret", filepath.Join(dir, "out.csv.gpg")))
	must(t, os.Symlink("a.csv.gpg", filepath.Join(dir, "in.csv.gpg")))

	keyFile := filepath.Join(t.TempDir(), "id")
	pub, err := GenerateClientKey(keyFile)
	must(t, err)
	pem, err := os.ReadFile(keyFile)
	must(t, err)
	signer, err := ssh.ParsePrivateKey(pem)
	must(t, err)
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		t.Fatal("GenerateClientKey: file and returned key differ")
	}
	srv, err := StartServer(context.Background(), ServerConfig{Dir: dir, AuthorizedKeys: []ssh.PublicKey{pub}, Faults: faults})
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv, signer, dir
}

func connect(t *testing.T, srv *Server, user string, auth ssh.AuthMethod) (*sftp.Client, error) {
	t.Helper()
	conn, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()), Timeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c, nil
}

func TestServerAuth(t *testing.T) {
	srv, signer, _ := testServer(t, TransportFaults{})
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	strangerSigner, err := ssh.NewSignerFromKey(stranger)
	must(t, err)
	cases := []struct {
		name string
		user string
		auth ssh.AuthMethod
		ok   bool
	}{
		{"authorized key", "im1", ssh.PublicKeys(signer), true},
		{"password refused", "im1", ssh.Password("im1"), false},
		{"keyboard-interactive refused", "im1", ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil }), false},
		{"unknown key", "im1", ssh.PublicKeys(strangerSigner), false},
		{"other user", "root", ssh.PublicKeys(signer), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect(t, srv, tc.user, tc.auth)
			if (err == nil) != tc.ok {
				t.Fatalf("connect: err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestServerServesOneFlatDirectoryReadOnly(t *testing.T) {
	srv, signer, dir := testServer(t, TransportFaults{})
	c, err := connect(t, srv, "im1", ssh.PublicKeys(signer))
	must(t, err)

	infos, err := c.ReadDir("/")
	must(t, err)
	if len(infos) != 1 || infos[0].Name() != "a.csv.gpg" || infos[0].Size() != 5 {
		t.Fatalf("ReadDir = %v, want only a.csv.gpg", names(infos))
	}
	f, err := c.Open("a.csv.gpg")
	must(t, err)
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != "hello" {
		t.Fatalf("read a.csv.gpg = %q, %v", b, err)
	}

	for _, p := range []string{"../secret", "/../secret", "/../../../../etc/passwd", "sub/b.csv.gpg", "sub", "out.csv.gpg", "in.csv.gpg", "/", "/etc/passwd"} {
		t.Run("open "+p, func(t *testing.T) {
			if f, err := c.Open(p); err == nil {
				b, _ := io.ReadAll(f)
				f.Close()
				t.Fatalf("Open(%q) served %q", p, b)
			}
			if p != "/" {
				if _, err := c.Stat(p); err == nil {
					t.Errorf("Stat(%q) succeeded", p)
				}
			}
		})
	}
	if _, err := c.ReadDir("sub"); err == nil {
		t.Error("ReadDir(sub) succeeded")
	}
	if _, err := c.ReadLink("out.csv.gpg"); err == nil {
		t.Error("ReadLink succeeded")
	}

	writes := map[string]func() error{
		"create":       func() error { f, err := c.Create("new.csv.gpg"); closeIf(f); return err },
		"open rw":      func() error { f, err := c.OpenFile("a.csv.gpg", os.O_RDWR); closeIf(f); return err },
		"remove":       func() error { return c.Remove("a.csv.gpg") },
		"rename":       func() error { return c.Rename("a.csv.gpg", "b.csv.gpg") },
		"posix rename": func() error { return c.PosixRename("a.csv.gpg", "b.csv.gpg") },
		"mkdir":        func() error { return c.Mkdir("d") },
		"chmod":        func() error { return c.Chmod("a.csv.gpg", 0o777) },
		"truncate":     func() error { return c.Truncate("a.csv.gpg", 0) },
		"symlink":      func() error { return c.Symlink("a.csv.gpg", "l") },
	}
	for op, fn := range writes {
		if err := fn(); err == nil {
			t.Errorf("%s succeeded on a read-only site", op)
		}
	}
	b, err = os.ReadFile(filepath.Join(dir, "a.csv.gpg"))
	if err != nil || string(b) != "hello" {
		t.Errorf("a.csv.gpg changed: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("directory changed: %d entries", len(ents))
	}
}

// Close must end connections whose reads are stalled, without waiting for
// the stall.
func TestServerCloseEndsStalledConnections(t *testing.T) {
	srv, signer, _ := testServer(t, TransportFaults{StallFile: "a.csv.gpg", StallFor: time.Hour})
	c, err := connect(t, srv, "im1", ssh.PublicKeys(signer))
	must(t, err)
	f, err := c.Open("a.csv.gpg")
	must(t, err)
	readErr := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 5))
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the read reach the stall
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a stalled read")
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("stalled read succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client read not ended by Close")
	}
}

func TestConnectInfo(t *testing.T) {
	srv, _, _ := testServer(t, TransportFaults{})
	path := filepath.Join(t.TempDir(), "emissim.json")
	must(t, srv.WriteConnectInfo(path, ConnectInfo{ClientKeyFile: "/keys/id"}))
	got, err := ReadConnectInfo(path)
	must(t, err)
	want := ConnectInfo{
		Version: ConnectInfoVersion, Host: "127.0.0.1", Port: srv.Port(), User: "im1",
		HostKey: AuthorizedKeyLine(srv.HostKey()), RemoteDir: "/", ClientKeyFile: "/keys/id",
	}
	if got != want {
		t.Fatalf("ConnectInfo = %+v, want %+v", got, want)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(got.HostKey)); err != nil {
		t.Errorf("host key line does not parse: %v", err)
	}
}

func names(infos []os.FileInfo) []string {
	var out []string
	for _, fi := range infos {
		out = append(out, fi.Name())
	}
	return out
}

func closeIf(f *sftp.File) {
	if f != nil {
		f.Close()
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestServerStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := StartServer(ctx, ServerConfig{Dir: t.TempDir()})
	must(t, err)
	addr := srv.Addr()
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still listening after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, srv.Close()) // idempotent, and waits
}
