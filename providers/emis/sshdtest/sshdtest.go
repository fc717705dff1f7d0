// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for tests and
// benchmarks, so that the SFTP client is proven against the server EMIS and
// most suppliers actually run, not only against our own simulator.
//
// Each Start launches /usr/sbin/sshd -D -e with a throwaway configuration,
// host key, authorized_keys and client key in a temporary directory, serving
// SFTP through internal-sftp (read-only unless WithWritable). The test is skipped when sshd is not installed;
// CI installs openssh-server, so there it always runs.
package sshdtest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the server binary; the test is skipped if it is absent.
const SSHD = "/usr/sbin/sshd"

// privsepDir is the privilege separation directory Debian's sshd insists on.
const privsepDir = "/run/sshd"

// Server is a running sshd.
type Server struct {
	Addr string // "127.0.0.1:port"
	Port int
	// HostKey and HostKeyLine (authorized_keys format) are what to pin.
	HostKey     ssh.PublicKey
	HostKeyLine string
	// ClientKeyFile is a passphrase-less OpenSSH private key sshd accepts.
	ClientKeyFile string
	ClientKey     ssh.Signer
	User          string // the login: the current user ("root" in CI)
	Dir           string // the directory passed to Start, absolute: the remote dir
	ConfigDir     string // temporary directory with sshd_config, keys and log

	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer
}

type options struct {
	writable  bool
	ciphers   []string
	extraKeys []ssh.PublicKey
	logLevel  string
}

// Option configures Start.
type Option func(*options)

// WithCiphers sets sshd's Ciphers, e.g. "aes128-gcm@openssh.com" or
// "chacha20-poly1305@openssh.com", so benchmarks compare like with like.
func WithCiphers(ciphers ...string) Option {
	return func(o *options) { o.ciphers = ciphers }
}

// WithWritable lets clients write; by default internal-sftp runs read-only
// (-R), like a supplier's site seen from its reader.
func WithWritable() Option {
	return func(o *options) { o.writable = true }
}

// WithAuthorizedKeys adds keys to authorized_keys besides the generated
// client key.
func WithAuthorizedKeys(keys ...ssh.PublicKey) Option {
	return func(o *options) { o.extraKeys = append(o.extraKeys, keys...) }
}

// WithLogLevel sets sshd's LogLevel (default ERROR; DEBUG for diagnosis).
func WithLogLevel(level string) Option {
	return func(o *options) { o.logLevel = level }
}

// Start starts sshd serving dir and registers its shutdown with t.Cleanup.
// It skips the test if sshd is not installed.
func Start(t testing.TB, dir string, opts ...Option) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		t.Skipf("sshdtest: %s not found (install openssh-server to run tests against real OpenSSH)", SSHD)
	}
	o := options{logLevel: "ERROR"}
	for _, opt := range opts {
		opt(&o)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		t.Skipf("sshdtest: cannot create %s, which sshd needs: %v", privsepDir, err)
	}

	cfgDir := t.TempDir()
	s := &Server{User: u.Username, Dir: abs, ConfigDir: cfgDir}
	hostSigner := writeKey(t, filepath.Join(cfgDir, "host_ed25519"))
	s.HostKey = hostSigner.PublicKey()
	s.HostKeyLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey)))
	s.ClientKeyFile = filepath.Join(cfgDir, "client_ed25519")
	s.ClientKey = writeKey(t, s.ClientKeyFile)

	var ak bytes.Buffer
	for _, k := range append([]ssh.PublicKey{s.ClientKey.PublicKey()}, o.extraKeys...) {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "authorized_keys"), ak.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	// A free port is found by binding and releasing it; another process may
	// take it in between, so a failed start is retried on a new port.
	var lastErr error
	for range 3 {
		if lastErr = s.start(t, o); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("sshdtest: %v", lastErr)
	return nil
}

func (s *Server) start(t testing.TB, o options) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.Addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(s.Port))

	cfgFile := filepath.Join(s.ConfigDir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(s.config(o)), 0o600); err != nil {
		return err
	}
	s.logs = &syncBuffer{}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", cfgFile)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	// Own process group, so that stop also ends the per-connection children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	if err := waitBanner(s.Addr, exited, 10*time.Second); err != nil {
		s.kill(exited)
		return fmt.Errorf("sshd did not start: %v\n%s", err, s.logs.String())
	}
	s.exited = exited
	return nil
}

func (s *Server) config(o options) string {
	var b strings.Builder
	p := func(k string, v any) { fmt.Fprintf(&b, "%s %v\n", k, v) }
	p("Port", s.Port)
	p("ListenAddress", "127.0.0.1")
	p("HostKey", filepath.Join(s.ConfigDir, "host_ed25519"))
	p("PidFile", filepath.Join(s.ConfigDir, "sshd.pid"))
	p("AuthorizedKeysFile", filepath.Join(s.ConfigDir, "authorized_keys"))
	p("PermitRootLogin", "prohibit-password")
	p("PubkeyAuthentication", "yes")
	p("PasswordAuthentication", "no")
	p("KbdInteractiveAuthentication", "no")
	p("UsePAM", "no")
	p("StrictModes", "no")
	p("AllowTcpForwarding", "no")
	p("X11Forwarding", "no")
	p("PrintMotd", "no")
	p("LogLevel", o.logLevel)
	if o.writable {
		p("Subsystem", "sftp internal-sftp")
	} else {
		p("Subsystem", "sftp internal-sftp -R")
	}
	if len(o.ciphers) > 0 {
		p("Ciphers", strings.Join(o.ciphers, ","))
	}
	return b.String()
}

// waitBanner waits until sshd answers with its SSH banner.
func waitBanner(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM to sshd's process group, then SIGKILL if it lingers,
// and waits for it. Per-connection children start their own sessions and
// end when their client disconnects, so tests close clients first (t.Cleanup
// runs in reverse order, which does that when Start is called first).
func (s *Server) stop() {
	s.kill(s.exited)
}

func (s *Server) kill(exited <-chan struct{}) {
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
}

// Logs returns what sshd wrote so far (for failure messages).
func (s *Server) Logs() string { return s.logs.String() }

func writeKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Sessions returns the process ids of sshd's per-connection processes
// (every descendant of the listening daemon), so a test can drop a
// connection (SIGKILL) or stall it (SIGSTOP) the way a network would.
func (s *Server) Sessions() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the
		// parent pid is the second field after the closing one.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				parent[pid] = ppid
			}
		}
	}
	root := s.cmd.Process.Pid
	var out []int
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
