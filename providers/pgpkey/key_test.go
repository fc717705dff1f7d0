package pgpkey_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

func TestGenerate(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 500, time.UTC)
	for _, alg := range []pgpkey.Algorithm{pgpkey.Curve25519, pgpkey.RSA3072} {
		t.Run(string(alg), func(t *testing.T) {
			pass := []byte("generate-test passphrase " + string(alg))
			k, err := pgpkey.Generate(pgpkey.GenerateOptions{
				Name: "im1", Email: "keys@example.nhs.uk", Algorithm: alg,
				ValidFor: 730 * 24 * time.Hour, Passphrase: pass, Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(k.Fingerprint) || !strings.HasSuffix(k.Fingerprint, k.KeyID) {
				t.Errorf("fingerprint %q key ID %q", k.Fingerprint, k.KeyID)
			}
			if k.Algorithm != alg || !k.Created.Equal(now.Truncate(time.Second)) || !k.Expires.Equal(k.Created.Add(730*24*time.Hour)) {
				t.Errorf("key %s created %s expires %s", k.Algorithm, k.Created, k.Expires)
			}
			if !bytes.HasPrefix(k.Protected, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) ||
				!strings.HasPrefix(k.PublicArmored, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
				t.Error("keys not armoured")
			}
			e, err := pgpkey.Unlock(k.Protected, pass)
			if err != nil {
				t.Fatal(err)
			}
			if e.PrivateKey.Encrypted || e.Subkeys[0].PrivateKey.Encrypted {
				t.Error("unlock left keys encrypted")
			}
			pub, err := pgpkey.ParsePublic(k.PublicArmored)
			if err != nil || pub.PrivateKey != nil {
				t.Fatalf("public: %v", err)
			}

			_, unlockErr := pgpkey.Unlock(k.Protected, []byte("wrong passphrase"))
			if !errors.Is(unlockErr, pgpkey.ErrBadPassphrase) {
				t.Fatalf("wrong passphrase: %v", unlockErr)
			}
			// For decrypting, only the encryption subkey is unlocked.
			d, err := pgpkey.UnlockForDecryption(k.Protected, pass)
			if err != nil {
				t.Fatal(err)
			}
			if !d.PrivateKey.Encrypted || d.Subkeys[0].PrivateKey.Encrypted {
				t.Errorf("for decryption: primary encrypted %v, subkey encrypted %v; want true, false",
					d.PrivateKey.Encrypted, d.Subkeys[0].PrivateKey.Encrypted)
			}
			if _, err := pgpkey.UnlockForDecryption(k.Protected, []byte("wrong passphrase")); !errors.Is(err, pgpkey.ErrBadPassphrase) {
				t.Fatalf("for decryption, wrong passphrase: %v", err)
			}
			m := &pgpkey.Material{Current: k}
			state, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for what, b := range map[string][]byte{"Protected": k.Protected, "Marshal": state, "error": []byte(unlockErr.Error())} {
				if bytes.Contains(b, pass) {
					t.Errorf("passphrase appears in %s", what)
				}
			}
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	base := pgpkey.GenerateOptions{Name: "x", Algorithm: pgpkey.Curve25519, ValidFor: time.Hour, Passphrase: []byte("p"), Now: t0}
	for name, mod := range map[string]func(*pgpkey.GenerateOptions){
		"no passphrase":  func(o *pgpkey.GenerateOptions) { o.Passphrase = nil },
		"no validity":    func(o *pgpkey.GenerateOptions) { o.ValidFor = 0 },
		"beyond 2106":    func(o *pgpkey.GenerateOptions) { o.ValidFor = 100 * 365 * 24 * time.Hour },
		"bad algorithm":  func(o *pgpkey.GenerateOptions) { o.Algorithm = "rsa2048" },
		"bad user id":    func(o *pgpkey.GenerateOptions) { o.Name = "a <b>" },
		"negative valid": func(o *pgpkey.GenerateOptions) { o.ValidFor = -time.Hour },
	} {
		o := base
		mod(&o)
		if _, err := pgpkey.Generate(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUnlockRejectsNonKeys(t *testing.T) {
	pub := []byte(pgpkeytest.Fixture(t, "sender").PublicArmored)
	for name, b := range map[string][]byte{"public": pub, "garbage": []byte("not a key"), "empty": nil} {
		if _, err := pgpkey.Unlock(b, []byte(pgpkeytest.Passphrase)); err == nil || errors.Is(err, pgpkey.ErrBadPassphrase) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := pgpkey.UnlockForDecryption(b, []byte(pgpkeytest.Passphrase)); err == nil || errors.Is(err, pgpkey.ErrBadPassphrase) {
			t.Errorf("%s, for decryption: %v", name, err)
		}
	}
}

func TestMaterial(t *testing.T) {
	cur, next := pgpkeytest.Fixture(t, "current"), pgpkeytest.Fixture(t, "next")
	m := &pgpkey.Material{Current: cur}
	m.Rotate(next)
	if m.Current != next || len(m.Previous) != 1 || !m.Previous[0].Superseded.Equal(next.Created) {
		t.Fatalf("rotate: %+v", m)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(pgpkeytest.Passphrase)) {
		t.Error("passphrase in marshalled material")
	}
	m2, err := pgpkey.UnmarshalMaterial(b)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Current.Fingerprint != next.Fingerprint || m2.Previous[0].Fingerprint != cur.Fingerprint ||
		!m2.Previous[0].Superseded.Equal(next.Created) || !bytes.Equal(m2.Current.Protected, next.Protected) {
		t.Fatalf("round trip: %+v", m2)
	}
	keys, err := m2.DecryptionKeys([]byte(pgpkeytest.Passphrase))
	if err != nil || len(keys) != 2 {
		t.Fatalf("decryption keys: %d %v", len(keys), err)
	}
	// Unlocked at once, listed in order: the current key first.
	for i, want := range []string{next.Fingerprint, cur.Fingerprint} {
		if got := fmt.Sprintf("%X", keys[i].PrimaryKey.Fingerprint); got != want {
			t.Errorf("decryption key %d is %s, want %s", i, got, want)
		}
	}
	if _, err := m2.DecryptionKeys([]byte("nope")); !errors.Is(err, pgpkey.ErrBadPassphrase) || strings.Contains(err.Error(), "nope") {
		t.Fatalf("bad passphrase: %v", err)
	}

	if got := pgpkey.ExportPublic(m2, false); got != next.PublicArmored {
		t.Error("ExportPublic(current)")
	}
	if got := pgpkey.ExportPublic(m2, true); got != next.PublicArmored+cur.PublicArmored {
		t.Error("ExportPublic(all)")
	}
	if priv := pgpkey.ExportPrivate(m2); bytes.Count(priv, []byte("BEGIN PGP PRIVATE KEY BLOCK")) != 2 {
		t.Error("ExportPrivate must hold both keys")
	}

	if due := m2.Due(next.Created.Add(29*24*time.Hour), 30*24*time.Hour); len(due) != 0 {
		t.Errorf("due early: %d", len(due))
	}
	if due := m2.Due(next.Created.Add(30*24*time.Hour), 30*24*time.Hour); len(due) != 1 {
		t.Errorf("not due: %d", len(due))
	}
	m2.Retire(strings.ToLower(cur.Fingerprint))
	m2.Retire(next.Fingerprint) // the current key is never retired
	if len(m2.Previous) != 0 || m2.Current.Fingerprint != next.Fingerprint {
		t.Fatalf("retire: %+v", m2)
	}

	for _, bad := range []string{"", "{}", `{"version":2,"current":{}}`, `{"version":1}`, `{"version":1,"current":{"fingerprint":"AB"}}`} {
		if _, err := pgpkey.UnmarshalMaterial([]byte(bad)); err == nil {
			t.Errorf("UnmarshalMaterial(%q) accepted", bad)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"730d": 730 * 24 * time.Hour, "52w": 52 * 7 * 24 * time.Hour, "8760h": 8760 * time.Hour, "90m": 90 * time.Minute, " 1d ": 24 * time.Hour,
	} {
		if got, err := pgpkey.ParseDuration(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "0d", "-1d", "1.5d", "ten days", "99999999999999999d"} {
		if _, err := pgpkey.ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFixtures(t *testing.T) {
	want := map[string]pgpkey.Algorithm{"current": pgpkey.RSA4096, "next": pgpkey.RSA4096, "rsa3072": pgpkey.RSA3072, "curve25519": pgpkey.Curve25519, "sender": pgpkey.Curve25519}
	for _, name := range pgpkeytest.Names {
		k := pgpkeytest.Fixture(t, name)
		pub, err := pgpkey.ParsePublic(k.PublicArmored)
		if err != nil {
			t.Fatal(err)
		}
		if k.Algorithm != want[name] || pgpkeytest.Public(t, name).PrimaryKey.KeyIdString() != k.KeyID || pub == nil {
			t.Errorf("%s: %s %s", name, k.Algorithm, k.KeyID)
		}
	}
}
