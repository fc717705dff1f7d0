package pgpkey

import (
	"bytes"
	"io"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// A file encrypted while the key was valid still decrypts after the key
// expired (decryption does not check expiry, so a backlog survives a late
// rotation), on both the fast path and go-crypto's.
func TestDecryptWithExpiredKey(t *testing.T) {
	made := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	pass := []byte("expired-key test passphrase")
	k, err := Generate(GenerateOptions{Name: "old", Algorithm: Curve25519, ValidFor: 24 * time.Hour, Passphrase: pass, Now: made})
	if err != nil {
		t.Fatal(err)
	}
	if !k.Expires.Before(time.Now()) {
		t.Fatalf("the key should have expired: %s", k.Expires)
	}
	pub, err := ParsePublic(k.PublicArmored)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := Unlock(k.Protected, pass)
	if err != nil {
		t.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		var ct bytes.Buffer
		w, err := Encrypt(&ct, openpgp.EntityList{pub}, EncryptOptions{Compress: compress, Now: made.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "\"PatientGuid\"\r\n\"X\"\r\n")
		w.Close()
		pt, err := Decrypt(&ct, DecryptOptions{Keys: openpgp.EntityList{priv}})
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		got, err := io.ReadAll(pt)
		if err != nil || string(got) != "\"PatientGuid\"\r\n\"X\"\r\n" {
			t.Fatalf("compress=%v: %q %v", compress, got, err)
		}
	}
}
