package pgpkey_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

// gpgHome is a throwaway GnuPG home; its agent is killed at cleanup.
type gpgHome struct {
	t   testing.TB
	dir string
}

func newGPG(t testing.TB) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed")
	}
	// A short path: the agent's socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+dir)
		_ = cmd.Run()
		os.RemoveAll(dir)
	})
	return g
}

// try runs gpg with stdin and returns stdout.
func (g *gpgHome) try(stdin []byte, args ...string) ([]byte, error) {
	all := append([]string{"--batch", "--no-tty", "--no-greeting", "--homedir", g.dir}, args...)
	cmd := exec.Command("gpg", all...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.dir)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.New(err.Error() + ": " + stderr.String())
	}
	return out, nil
}

// run is try that fails the test on error.
func (g *gpgHome) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (g *gpgHome) file(name string, data []byte) string {
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	return p
}

// importSecret imports a protected private key with its passphrase.
func (g *gpgHome) importSecret(protected []byte, pass string) {
	g.t.Helper()
	p := g.file("secret.asc", protected)
	g.run([]byte(pass+"\n"), "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", p)
}

// listKey returns the pub/sec fields and the fingerprint gpg lists for fpr.
func (g *gpgHome) listKey(fpr string, secret bool) (pub []string, gotFpr string) {
	g.t.Helper()
	cmd := "--list-keys"
	if secret {
		cmd = "--list-secret-keys"
	}
	out := g.run(nil, "--with-colons", cmd, fpr)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case (f[0] == "pub" || f[0] == "sec") && pub == nil:
			pub = f
		case f[0] == "fpr" && gotFpr == "":
			gotFpr = f[9]
		}
	}
	return pub, gotFpr
}

// newSigner makes an unprotected ed25519 signing key inside gpg, returning
// its fingerprint and public half.
func (g *gpgHome) newSigner(uid string) (string, *openpgp.Entity) {
	g.t.Helper()
	g.run(nil, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1y")
	_, fpr := g.listKey(uid, true)
	e, err := pgpkey.ParsePublic(string(g.run(nil, "--armor", "--export", fpr)))
	if err != nil {
		g.t.Fatal(err)
	}
	return fpr, e
}

// freshKey is one newly generated curve25519 key per test binary.
var freshKey = sync.OnceValues(func() (*pgpkey.Key, error) {
	return pgpkey.Generate(pgpkey.GenerateOptions{
		Name: "im1 interop", Email: "interop@im1.invalid", Algorithm: pgpkey.Curve25519,
		ValidFor: 730 * 24 * time.Hour, Passphrase: []byte(pgpkeytest.Passphrase),
		Now: time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC),
	})
})

func interopKeys(t *testing.T) map[string]*pgpkey.Key {
	k, err := freshKey()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*pgpkey.Key{"fresh-curve25519": k, "fixture-rsa4096": pgpkeytest.Fixture(t, "current")}
}

func TestGPGImportsKeys(t *testing.T) {
	for name, k := range interopKeys(t) {
		t.Run(name, func(t *testing.T) {
			g := newGPG(t)
			g.run(nil, "--import", g.file("pub.asc", []byte(k.PublicArmored)))
			pub, fpr := g.listKey(k.Fingerprint, false)
			if fpr != k.Fingerprint {
				t.Fatalf("gpg fingerprint %s, want %s", fpr, k.Fingerprint)
			}
			if pub[4] != k.KeyID {
				t.Errorf("gpg key ID %s, want %s", pub[4], k.KeyID)
			}
			if got, want := pub[5], strconv.FormatInt(k.Created.Unix(), 10); got != want {
				t.Errorf("gpg created %s, want %s", got, want)
			}
			if got, want := pub[6], strconv.FormatInt(k.Expires.Unix(), 10); got != want {
				t.Errorf("gpg expires %s, want %s", got, want)
			}

			// The protection gpg sees is the one we promise.
			packets := string(g.run(nil, "--list-packets", g.file("sec.asc", k.Protected)))
			for _, want := range []string{"iter+salt S2K, algo: 9, SHA1 protection, hash: 8", "protect count: 65011712"} {
				if !strings.Contains(packets, want) {
					t.Errorf("private key packets lack %q:\n%s", want, packets)
				}
			}
			g.importSecret(k.Protected, pgpkeytest.Passphrase)
			sec, fpr := g.listKey(k.Fingerprint, true)
			if fpr != k.Fingerprint || sec[6] != strconv.FormatInt(k.Expires.Unix(), 10) {
				t.Errorf("secret key listed as %s expiring %s", fpr, sec[6])
			}
		})
	}
}

func TestGPGEncryptsWeDecrypt(t *testing.T) {
	plain := bytes.Repeat([]byte("A81001,9434765919,2026-11-21,\"Densham, Surgery\",22298006\n"), 2000)
	for name, k := range interopKeys(t) {
		t.Run(name, func(t *testing.T) {
			g := newGPG(t)
			g.run(nil, "--import", g.file("pub.asc", []byte(k.PublicArmored)))
			signerFpr, signer := g.newSigner("EMIS Supplier <supplier@emis.invalid>")
			// As an apply unlocks it: the primary key stays protected.
			ours, err := pgpkey.UnlockForDecryption(k.Protected, []byte(pgpkeytest.Passphrase))
			if err != nil {
				t.Fatal(err)
			}
			if !ours.PrivateKey.Encrypted {
				t.Fatal("the primary key was unlocked")
			}
			for _, c := range []struct {
				name string
				args []string
				sign bool
			}{
				{"zlib", []string{"--compress-algo", "zlib"}, false},
				{"none", []string{"--compress-algo", "none"}, false},
				{"zlib-armor", []string{"--compress-algo", "zlib", "--armor"}, false},
				{"none-armor-signed", []string{"--compress-algo", "none", "--armor", "--sign", "--local-user", signerFpr}, true},
				{"zlib-signed", []string{"--compress-algo", "zlib", "--sign", "--local-user", signerFpr}, true},
			} {
				t.Run(c.name, func(t *testing.T) {
					args := append([]string{"--trust-model", "always", "--cipher-algo", "AES256", "--encrypt", "--recipient", k.Fingerprint, "--output", "-"}, c.args...)
					ct := g.run(plain, args...)
					pt, err := pgpkey.Decrypt(bytes.NewReader(ct), pgpkey.DecryptOptions{
						Keys: openpgp.EntityList{ours}, Signers: openpgp.EntityList{signer}, RequireSignature: c.sign,
					})
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(pt)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, plain) {
						t.Fatalf("plaintext differs: %d bytes, want %d", len(got), len(plain))
					}
					if pt.KeyFingerprint != k.Fingerprint {
						t.Errorf("decrypted with %s, want %s", pt.KeyFingerprint, k.Fingerprint)
					}
					if pt.Signed != c.sign || (c.sign && pt.SignerFingerprint != signerFpr) {
						t.Errorf("signed %v by %q, want %v by %s", pt.Signed, pt.SignerFingerprint, c.sign, signerFpr)
					}
				})
			}
		})
	}
}

// Keys that gpg made and exported: one with an encryption subkey (gpg's
// default, ed25519 and cv25519), whose primary key stays protected, and one
// RSA primary key that encrypts itself, which is unlocked whole.
func TestGPGKeyUnlockForDecryption(t *testing.T) {
	const pass = "gpg-made key passphrase"
	plain := []byte("PatientGuid,NhsNumber\n{1},9434765919\n")
	for _, c := range []struct {
		name, algo, usage string
		primaryLocked     bool
	}{
		{"default", "default", "default", true},
		{"rsa2048-primary-encrypts", "rsa2048", "cert,encr", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGPG(t)
			// The agent's calibrated S2K (about 0.1 s of its CPU per use,
			// far more of go-crypto's) would only slow the test.
			g.file("gpg-agent.conf", []byte("s2k-count 65536\n"))
			uid := "GPG Made <" + c.name + "@example.invalid>"
			g.run(nil, "--pinentry-mode", "loopback", "--passphrase", pass, "--quick-gen-key", uid, c.algo, c.usage, "1y")
			exported := g.run(nil, "--pinentry-mode", "loopback", "--passphrase", pass, "--armor", "--export-secret-keys", uid)
			e, err := pgpkey.UnlockForDecryption(exported, []byte(pass))
			if err != nil {
				t.Fatal(err)
			}
			if e.PrivateKey.Encrypted != c.primaryLocked {
				t.Errorf("primary key encrypted %v, want %v", e.PrivateKey.Encrypted, c.primaryLocked)
			}
			ct := g.run(plain, "--trust-model", "always", "--encrypt", "--recipient", uid, "--output", "-")
			pt, err := pgpkey.Decrypt(bytes.NewReader(ct), pgpkey.DecryptOptions{Keys: openpgp.EntityList{e}})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(pt); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("plaintext %q (%v)", got, err)
			}
			if _, err := pgpkey.UnlockForDecryption(exported, []byte("not it")); !errors.Is(err, pgpkey.ErrBadPassphrase) {
				t.Errorf("wrong passphrase: %v", err)
			}
		})
	}
}

// A private key without passphrase protection is refused by both unlocks:
// it would "unlock" with any passphrase, and state only holds protected
// keys.
func TestUnlockRefusesUnprotected(t *testing.T) {
	g := newGPG(t)
	fpr, _ := g.newSigner("Unprotected <unprotected@example.invalid>")
	g.run(nil, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", "1y")
	exported := g.run(nil, "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", fpr)
	for name, unlock := range map[string]func([]byte, []byte) (*openpgp.Entity, error){
		"Unlock": pgpkey.Unlock, "UnlockForDecryption": pgpkey.UnlockForDecryption,
	} {
		if _, err := unlock(exported, []byte("any passphrase")); err == nil || !strings.Contains(err.Error(), "not passphrase-protected") {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}

func TestWeEncryptGPGDecrypts(t *testing.T) {
	plain := []byte("RecordGuid,PatientGuid\n{1},{2}\n")
	sender := pgpkeytest.Entity(t, "sender")
	for name, k := range interopKeys(t) {
		t.Run(name, func(t *testing.T) {
			g := newGPG(t)
			g.importSecret(k.Protected, pgpkeytest.Passphrase)
			g.run(nil, "--import", g.file("sender.asc", []byte(pgpkeytest.Fixture(t, "sender").PublicArmored)))
			to, err := pgpkey.ParsePublic(k.PublicArmored)
			if err != nil {
				t.Fatal(err)
			}
			for _, opts := range []pgpkey.EncryptOptions{
				{},
				{Armor: true, Compress: true},
				{Compress: true, Signer: sender},
			} {
				var ct bytes.Buffer
				w, err := pgpkey.Encrypt(&ct, openpgp.EntityList{to}, opts)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(plain)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				assertSEIPDv1(t, ct.Bytes(), opts.Armor)
				p := g.file("msg.gpg", ct.Bytes())
				out := filepath.Join(g.dir, "msg.out")
				status := g.run([]byte(pgpkeytest.Passphrase+"\n"), "--trust-model", "always", "--pinentry-mode", "loopback",
					"--passphrase-fd", "0", "--status-fd", "1", "--yes", "--output", out, "--decrypt", p)
				if got, _ := os.ReadFile(out); !bytes.Equal(got, plain) {
					t.Errorf("%+v: gpg decrypted %q", opts, got)
				}
				if opts.Signer != nil && !strings.Contains(string(status), "GOODSIG") {
					t.Errorf("gpg did not report a good signature:\n%s", status)
				}
			}
		})
	}
}

// TestGPGRejectsUnprotected uses gpg's --rfc2440 mode, the one way left to make
// a Symmetrically Encrypted (no MDC) packet.
func TestGPGRejectsUnprotected(t *testing.T) {
	k := pgpkeytest.Fixture(t, "curve25519")
	g := newGPG(t)
	g.run(nil, "--import", g.file("pub.asc", []byte(k.PublicArmored)))
	ct := g.run([]byte("no integrity\n"), "--trust-model", "always", "--rfc2440", "--cipher-algo", "AES256",
		"--encrypt", "--recipient", k.Fingerprint, "--output", "-")
	// --list-packets fails (no secret key here) after listing the packets.
	if packets, _ := g.try(nil, "--list-packets", g.file("m.gpg", ct)); !strings.Contains(string(packets), ":encrypted data packet:") {
		t.Fatal("gpg did not write a tag 9 packet")
	}
	_, err := pgpkey.Decrypt(bytes.NewReader(ct), pgpkey.DecryptOptions{Keys: openpgp.EntityList{pgpkeytest.Entity(t, "curve25519")}})
	if !errors.Is(err, pgpkey.ErrNotIntegrityProtected) {
		t.Fatalf("got %v, want ErrNotIntegrityProtected", err)
	}
}

// assertSEIPDv1 checks the message is key packets then one SEIPD v1 packet.
func assertSEIPDv1(t *testing.T, msg []byte, armored bool) {
	t.Helper()
	var r io.Reader = bytes.NewReader(msg)
	if armored {
		b, err := armor.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		r = b.Body
	}
	pr := packet.NewReader(r)
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatalf("no encrypted data packet: %v", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			if p.Version != 3 {
				t.Errorf("PKESK v%d, want v3", p.Version)
			}
			continue
		case *packet.SymmetricallyEncrypted:
			if !p.IntegrityProtected || p.Version != 1 {
				t.Errorf("SEIPD integrity %v version %d, want v1 with MDC", p.IntegrityProtected, p.Version)
			}
		default:
			t.Errorf("unexpected packet %T", p)
		}
		return
	}
}
