package sftpsite_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/providers/emis/sshdtest"
)

// site is a running server with a client configuration that reaches it.
type site struct {
	dir  string // the local directory the server serves
	cfg  sftpsite.Config
	key  ssh.PublicKey // the host key
	emis *emissim.Server
}

// server starts one kind of server over a fresh directory; faults apply to
// emissim only.
type server struct {
	name  string
	start func(t *testing.T, faults emissim.TransportFaults, opts ...sshdtest.Option) *site
}

var servers = []server{
	{"emissim", startEmissim},
	{"sshd", startSSHD},
}

// baseConfig is tuned for tests: short timeouts, fast backoff.
func baseConfig() sftpsite.Config {
	return sftpsite.Config{
		Host:           "127.0.0.1",
		ConnectTimeout: 10 * time.Second,
		IdleTimeout:    10 * time.Second,
		Retries:        2,
		Backoff:        10 * time.Millisecond,
		Getenv:         func(string) string { return "" },
	}
}

func startEmissim(t *testing.T, faults emissim.TransportFaults, _ ...sshdtest.Option) *site {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "client_ed25519")
	pub, err := emissim.GenerateClientKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emissim.StartServer(context.Background(), emissim.ServerConfig{
		Dir: dir, User: "im1", AuthorizedKeys: []ssh.PublicKey{pub}, Faults: faults,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := baseConfig()
	cfg.Port, cfg.User, cfg.AuthKeyFile, cfg.RemoteDir = srv.Port(), "im1", keyFile, "/"
	cfg.HostKeys = []string{emissim.AuthorizedKeyLine(srv.HostKey())}
	return &site{dir: dir, cfg: cfg, key: srv.HostKey(), emis: srv}
}

func startSSHD(t *testing.T, _ emissim.TransportFaults, opts ...sshdtest.Option) *site {
	t.Helper()
	dir := t.TempDir()
	srv := sshdtest.Start(t, dir, opts...)
	cfg := baseConfig()
	cfg.Port, cfg.User, cfg.AuthKeyFile, cfg.RemoteDir = srv.Port, srv.User, srv.ClientKeyFile, srv.Dir
	cfg.HostKeys = []string{srv.HostKeyLine}
	return &site{dir: dir, cfg: cfg, key: srv.HostKey}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, ctx context.Context, cfg sftpsite.Config) *sftpsite.Client {
	t.Helper()
	c, err := sftpsite.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeRandom writes size seeded-random bytes to dir/name and returns
// their SHA-256.
func writeRandom(t testing.TB, dir, name string, size int64, seed uint64) [32]byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func fetchSum(t *testing.T, ctx context.Context, c *sftpsite.Client, name string, size int64) [32]byte {
	t.Helper()
	h := sha256.New()
	n, err := c.Fetch(ctx, name, h, size)
	if err != nil {
		t.Fatalf("Fetch %s: %v", name, err)
	}
	if n != size {
		t.Fatalf("Fetch %s: %d bytes, want %d", name, n, size)
	}
	return [32]byte(h.Sum(nil))
}

func TestListFetchRoundTrip(t *testing.T) {
	files := []struct {
		name string
		size int64
	}{
		{"291_Admin_Patient_20261121090000_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg", 1},
		{"291_Admin_Location_20261121090000_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg", 0},
		{"291_CareRecord_Observation_20261121090000_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg", 5 << 20},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := srv.start(t, emissim.TransportFaults{})
			sums := map[string][32]byte{}
			for i, f := range files {
				sums[f.name] = writeRandom(t, s.dir, f.name, f.size, uint64(i))
			}
			// Neither a subdirectory nor a symlink is listed.
			if err := os.Mkdir(filepath.Join(s.dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/passwd", filepath.Join(s.dir, "link.csv.gpg")); err != nil {
				t.Fatal(err)
			}
			c := dial(t, ctx, s.cfg)
			if got, want := c.HostKeyFingerprint(), ssh.FingerprintSHA256(s.key); got != want {
				t.Errorf("HostKeyFingerprint = %s, want %s", got, want)
			}
			ents, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(files) {
				t.Fatalf("List = %v, want the %d regular files", ents, len(files))
			}
			for _, e := range ents {
				want, ok := sums[e.Name]
				if !ok {
					t.Fatalf("unexpected entry %q", e.Name)
				}
				if e.MTime.IsZero() {
					t.Errorf("%s: zero mtime", e.Name)
				}
				if got := fetchSum(t, ctx, c, e.Name, e.Size); got != want {
					t.Errorf("%s: sha256 differs", e.Name)
				}
			}
		})
	}
}

func TestHostKeyPinning(t *testing.T) {
	other := pubKey(t, newKey(t))
	otherLine := emissim.AuthorizedKeyLine(other)
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := srv.start(t, emissim.TransportFaults{})
			good := ssh.FingerprintSHA256(s.key)
			bad := ssh.FingerprintSHA256(other)
			addr := knownhosts.Normalize(s.cfg.Host + ":" + itoa(s.cfg.Port))
			knownHosts := func(lines ...string) string {
				f := filepath.Join(t.TempDir(), "known_hosts")
				if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return f
			}
			cases := []struct {
				name       string
				hostKeys   []string
				knownHosts string
				wantErr    error // nil: success
				changed    bool  // want a *HostKeyError naming both keys
				unknown    bool  // want a *HostKeyError with Unknown
				revoked    bool  // want a refusal naming the revocation
			}{
				{name: "pinned", hostKeys: []string{emissim.AuthorizedKeyLine(s.key)}},
				{name: "any pin may match", hostKeys: []string{otherLine, emissim.AuthorizedKeyLine(s.key)}},
				{name: "mismatch", hostKeys: []string{otherLine}, changed: true},
				{name: "no pin", wantErr: sftpsite.ErrNoHostKey},
				{name: "known_hosts", knownHosts: knownHosts(knownhosts.Line([]string{addr}, s.key))},
				{name: "known_hosts hashed", knownHosts: knownHosts(knownhosts.Line([]string{knownhosts.HashHostname(addr)}, s.key))},
				{name: "known_hosts changed", knownHosts: knownHosts(knownhosts.Line([]string{addr}, other)), changed: true},
				{name: "known_hosts unknown host", knownHosts: knownHosts(knownhosts.Line([]string{"[192.0.2.1]:22"}, s.key)), unknown: true},
				{name: "known_hosts revoked", knownHosts: knownHosts(knownhosts.Line([]string{addr}, s.key), "@revoked * "+emissim.AuthorizedKeyLine(s.key)), revoked: true},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					cfg := s.cfg
					cfg.HostKeys, cfg.KnownHostsFile = tc.hostKeys, tc.knownHosts
					c, err := sftpsite.Dial(ctx, cfg)
					if err == nil {
						defer c.Close()
					}
					var hk *sftpsite.HostKeyError
					switch {
					case tc.changed:
						if !errors.As(err, &hk) || hk.Unknown {
							t.Fatalf("err = %v, want a changed-key HostKeyError", err)
						}
						msg := hk.Error()
						if !strings.Contains(msg, "changed") || !strings.Contains(msg, good) || !strings.Contains(msg, bad) {
							t.Errorf("message %q does not name both fingerprints", msg)
						}
						if hk.Got != good || len(hk.Want) != 1 || hk.Want[0] != bad {
							t.Errorf("HostKeyError = %+v", hk)
						}
					case tc.unknown:
						if !errors.As(err, &hk) || !hk.Unknown || hk.Got != good {
							t.Fatalf("err = %v, want an unknown-host HostKeyError", err)
						}
					case tc.revoked:
						if err == nil || !strings.Contains(err.Error(), "revoked") {
							t.Fatalf("err = %v, want the revoked key refused", err)
						}
					case tc.wantErr != nil:
						if !errors.Is(err, tc.wantErr) {
							t.Fatalf("err = %v, want %v", err, tc.wantErr)
						}
					default:
						if err != nil {
							t.Fatalf("Dial: %v", err)
						}
						if c.HostKeyFingerprint() != good {
							t.Errorf("fingerprint %s, want %s", c.HostKeyFingerprint(), good)
						}
					}
				})
			}
			// The key to pin can be learned out of band.
			k, err := sftpsite.ScanHostKey(ctx, s.cfg.Host, s.cfg.Port)
			if err != nil {
				t.Fatal(err)
			}
			if ssh.FingerprintSHA256(k) != good {
				t.Errorf("ScanHostKey = %s, want %s", ssh.FingerprintSHA256(k), good)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	const env, pass = "IM1_TEST_SFTP_PASSPHRASE", "correct horse"
	wrongKey := writeKeyFile(t, newKey(t), "")
	protected := newKey(t)
	protectedFile := writeKeyFile(t, protected, pass)
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := srv.start(t, emissim.TransportFaults{}, sshdtest.WithAuthorizedKeys(pubKey(t, protected)))
			if s.emis != nil {
				// emissim takes its keys at start; restart it with both.
				s = restartEmissimWith(t, s, pubKey(t, protected))
			}
			sock := startAgent(t, protected)
			cases := []struct {
				name     string
				keyFile  string
				agent    bool
				getenv   map[string]string
				wantAuth bool   // want *AuthError
				wantMsg  string // else want an error containing this ("" = success)
			}{
				{name: "wrong key", keyFile: wrongKey, wantAuth: true},
				{name: "passphrase from env", keyFile: protectedFile, getenv: map[string]string{env: pass}},
				{name: "passphrase missing", keyFile: protectedFile, wantMsg: "passphrase-protected"},
				{name: "passphrase wrong", keyFile: protectedFile, getenv: map[string]string{env: "nope"}, wantMsg: "passphrase from $" + env},
				{name: "agent", agent: true, getenv: map[string]string{"SSH_AUTH_SOCK": sock}},
				{name: "agent and a wrong key file", keyFile: wrongKey, agent: true, getenv: map[string]string{"SSH_AUTH_SOCK": sock}},
				{name: "agent without socket", agent: true, wantMsg: "SSH_AUTH_SOCK"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					cfg := s.cfg
					cfg.AuthKeyFile, cfg.PassphraseEnv, cfg.UseAgent = tc.keyFile, env, tc.agent
					cfg.Getenv = func(k string) string { return tc.getenv[k] }
					start := time.Now()
					c, err := sftpsite.Dial(ctx, cfg)
					if err == nil {
						defer c.Close()
					}
					var ae *sftpsite.AuthError
					switch {
					case tc.wantAuth:
						if !errors.As(err, &ae) {
							t.Fatalf("err = %v, want *AuthError", err)
						}
						if d := time.Since(start); d > 5*time.Second {
							t.Errorf("auth failure took %s: it must not be retried", d)
						}
					case tc.wantMsg != "":
						if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
							t.Fatalf("err = %v, want it to contain %q", err, tc.wantMsg)
						}
					default:
						if err != nil {
							t.Fatalf("Dial: %v", err)
						}
					}
					if err != nil && strings.Contains(err.Error(), pass) {
						t.Errorf("error leaks the passphrase: %v", err)
					}
				})
			}
		})
	}
}

// startAgent serves an ssh-agent holding key on a socket in a temp dir.
func startAgent(t *testing.T, key ed25519.PrivateKey) string {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				agent.ServeAgent(keyring, conn)
			}()
		}
	}()
	return sock
}

// restartEmissimWith replaces s's emissim server by one that also accepts
// extra, keeping the host key pin and the directory.
func restartEmissimWith(t *testing.T, s *site, extra ssh.PublicKey) *site {
	t.Helper()
	s.emis.Close()
	pem, err := os.ReadFile(s.cfg.AuthKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emissim.StartServer(context.Background(), emissim.ServerConfig{
		Dir: s.dir, User: "im1", AuthorizedKeys: []ssh.PublicKey{signer.PublicKey(), extra},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := s.cfg
	cfg.Port = srv.Port()
	cfg.HostKeys = []string{emissim.AuthorizedKeyLine(srv.HostKey())}
	return &site{dir: s.dir, cfg: cfg, key: srv.HostKey(), emis: srv}
}

// appendOnFirstWrite grows the source file as soon as the transfer starts,
// as an upload still in progress would.
type appendOnFirstWrite struct {
	path string
	done bool
}

func (w *appendOnFirstWrite) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		f, err := os.OpenFile(w.path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if _, err := f.Write(bytes.Repeat([]byte{'x'}, 4096)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func TestChangedAndRefused(t *testing.T) {
	for _, srv := range servers {
		for _, path := range readPaths {
			t.Run(srv.name+"/"+path.name, func(t *testing.T) {
				testChangedAndRefused(t, srv, path.cfg)
			})
		}
	}
}

func testChangedAndRefused(t *testing.T, srv server, pathCfg func(sftpsite.Config) sftpsite.Config) {
	const name = "291_Admin_Patient_20261121090000_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg"
	const size = 1 << 20
	ctx := testCtx(t)
	s := srv.start(t, emissim.TransportFaults{})
	writeRandom(t, s.dir, name, size, 7)
	// A file one level up, which no name may reach.
	writeRandom(t, filepath.Dir(s.dir), "outside.csv.gpg", 10, 8)
	c := dial(t, ctx, pathCfg(s.cfg))

	t.Run("size differs from listing", func(t *testing.T) {
		_, err := c.Fetch(ctx, name, io.Discard, size-1)
		if !errors.Is(err, sftpsite.ErrChanged) {
			t.Fatalf("err = %v, want ErrChanged", err)
		}
	})
	t.Run("size changed during read", func(t *testing.T) {
		_, err := c.Fetch(ctx, name, &appendOnFirstWrite{path: filepath.Join(s.dir, name)}, size)
		if !errors.Is(err, sftpsite.ErrChanged) {
			t.Fatalf("err = %v, want ErrChanged", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := c.Fetch(ctx, "absent.csv.gpg", io.Discard, -1)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want not exist", err)
		}
	})
	for _, bad := range []string{"../outside.csv.gpg", "a/../../outside.csv.gpg", "/etc/passwd", "..", ".", "", "a\\b", "x\x00y"} {
		t.Run("bad name "+strings.ReplaceAll(bad, "/", "∕"), func(t *testing.T) {
			_, err := c.Fetch(ctx, bad, io.Discard, -1)
			if !errors.Is(err, sftpsite.ErrBadName) {
				t.Fatalf("Fetch(%q) err = %v, want ErrBadName", bad, err)
			}
		})
	}
	t.Run("server refuses writes", func(t *testing.T) {
		raw := rawClient(t, s)
		p := s.cfg.RemoteDir + "/new.csv.gpg"
		if f, err := raw.Create(p); err == nil {
			f.Close()
			t.Fatal("Create succeeded on a read-only site")
		}
		if _, err := os.Stat(filepath.Join(s.dir, "new.csv.gpg")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file created: %v", err)
		}
		target := s.cfg.RemoteDir + "/" + name
		for op, err := range map[string]error{
			"remove": raw.Remove(target),
			"rename": raw.Rename(target, target+".x"),
			"chmod":  raw.Chmod(target, 0o777),
			"mkdir":  raw.Mkdir(s.cfg.RemoteDir + "/d"),
		} {
			if err == nil {
				t.Errorf("%s succeeded on a read-only site", op)
			}
		}
	})
}

func rawClient(t *testing.T, s *site) *sftp.Client {
	t.Helper()
	pem, err := os.ReadFile(s.cfg.AuthKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ssh.Dial("tcp", s.cfg.Host+":"+itoa(s.cfg.Port), &ssh.ClientConfig{
		User:            s.cfg.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(s.key),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pubKey(t testing.TB, priv ed25519.PrivateKey) ssh.PublicKey {
	t.Helper()
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// writeKeyFile writes priv in OpenSSH format, encrypted with passphrase
// unless it is empty.
func writeKeyFile(t *testing.T, priv ed25519.PrivateKey, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func itoa(i int) string { return strconv.Itoa(i) }
