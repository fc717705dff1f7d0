// Package pgpkeytest provides pre-generated OpenPGP keys for tests, so no
// test has to generate RSA-4096 keys. internal/gen made them.
package pgpkeytest

import (
	"embed"
	"sync"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/pgpkey"
)

// Passphrase protects every fixture key. It is public: test use only.
const Passphrase = "im1 fixture passphrase, not a secret"

// Names lists the fixtures: "current" and "next" (RSA-4096, for rotation),
// "rsa3072", "curve25519", and "sender" (a supplier's signing key).
var Names = []string{"current", "next", "rsa3072", "curve25519", "sender"}

//go:embed testdata/*.json
var files embed.FS

// Fixture returns a fresh copy of the named key.
func Fixture(t testing.TB, name string) *pgpkey.Key {
	t.Helper()
	b, err := files.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatalf("pgpkeytest: no fixture %q", name)
	}
	k, err := pgpkey.UnmarshalKey(b)
	if err != nil {
		t.Fatalf("pgpkeytest: fixture %q: %v", name, err)
	}
	return k
}

var unlocked sync.Map // name -> *openpgp.Entity

// Entity returns the named key unlocked. Unlocking costs a high-count S2K,
// so the entity is parsed once per test binary; callers must not modify it.
func Entity(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	if e, ok := unlocked.Load(name); ok {
		return e.(*openpgp.Entity)
	}
	e, err := pgpkey.Unlock(Fixture(t, name).Protected, []byte(Passphrase))
	if err != nil {
		t.Fatalf("pgpkeytest: unlock %q: %v", name, err)
	}
	actual, _ := unlocked.LoadOrStore(name, e)
	return actual.(*openpgp.Entity)
}

// Public returns the named key's public half.
func Public(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := pgpkey.ParsePublic(Fixture(t, name).PublicArmored)
	if err != nil {
		t.Fatalf("pgpkeytest: public %q: %v", name, err)
	}
	return e
}
