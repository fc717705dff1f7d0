package pgpkey_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzDecrypt seeds")

var typedErrors = []error{
	pgpkey.ErrNotEncrypted, pgpkey.ErrNoKey, pgpkey.ErrNotIntegrityProtected, pgpkey.ErrIntegrity,
	pgpkey.ErrSignature, pgpkey.ErrTooLarge, pgpkey.ErrMalformed,
}

func typed(err error) bool {
	for _, e := range typedErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// FuzzDecrypt feeds arbitrary bytes to Decrypt: it must never panic and
// every failure must be one of the typed errors.
func FuzzDecrypt(f *testing.F) {
	opts := pgpkey.DecryptOptions{
		Keys:            openpgp.EntityList{pgpkeytest.Entity(f, "curve25519")},
		Signers:         openpgp.EntityList{pgpkeytest.Public(f, "sender")},
		MaxDecompressed: 1 << 20,
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		pt, err := pgpkey.Decrypt(bytes.NewReader(msg), opts)
		if err == nil {
			_, err = io.Copy(io.Discard, pt)
		}
		if err != nil && !typed(err) {
			t.Fatalf("untyped error: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus with -update: a few valid
// messages and broken variants of them.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seeds")
	}
	to := openpgp.EntityList{pgpkeytest.Public(t, "curve25519")}
	plain := []byte("RecordGuid,PatientGuid,NhsNumber\n{A},{B},9434765919\n")
	valid := map[string][]byte{
		"plain":  encrypt(t, plain, to, pgpkey.EncryptOptions{}),
		"zlib":   encrypt(t, plain, to, pgpkey.EncryptOptions{Compress: true}),
		"armor":  encrypt(t, plain, to, pgpkey.EncryptOptions{Armor: true}),
		"signed": encrypt(t, plain, to, pgpkey.EncryptOptions{Compress: true, Signer: pgpkeytest.Entity(t, "sender")}),
	}
	seeds := map[string][]byte{"csv": []byte("a,b\n1,2\n")}
	for name, m := range valid {
		seeds[name] = m
		seeds[name+"-truncated"] = m[:len(m)*2/3]
		seeds[name+"-flipped"] = flip(m, len(m)-8)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecrypt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
