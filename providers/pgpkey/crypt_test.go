package pgpkey_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

func encrypt(t testing.TB, plain []byte, to openpgp.EntityList, opts pgpkey.EncryptOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pgpkey.Encrypt(&b, to, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decryptAll decrypts msg to the end and returns the plaintext and error.
func decryptAll(msg []byte, opts pgpkey.DecryptOptions) ([]byte, *pgpkey.Plaintext, error) {
	pt, err := pgpkey.Decrypt(bytes.NewReader(msg), opts)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(pt)
	return b, pt, err
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	plain := bytes.Repeat([]byte("1,2,3,hello,world\n"), 5000)
	key := pgpkeytest.Entity(t, "curve25519")
	rsa := pgpkeytest.Entity(t, "rsa3072")
	sender := pgpkeytest.Entity(t, "sender")
	senderPub := pgpkeytest.Public(t, "sender")
	for _, c := range []struct {
		name string
		opts pgpkey.EncryptOptions
		keys openpgp.EntityList
		fp   string
	}{
		{"plain", pgpkey.EncryptOptions{}, openpgp.EntityList{key}, ""},
		{"armor-zlib", pgpkey.EncryptOptions{Armor: true, Compress: true}, openpgp.EntityList{key}, ""},
		{"signed", pgpkey.EncryptOptions{Signer: sender, Compress: true}, openpgp.EntityList{key}, ""},
		{"aes128", pgpkey.EncryptOptions{Cipher: packet.CipherAES128}, openpgp.EntityList{key}, ""},
		{"rsa-and-curve", pgpkey.EncryptOptions{Armor: true}, openpgp.EntityList{rsa, key}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := encrypt(t, plain, c.keys, c.opts)
			got, pt, err := decryptAll(msg, pgpkey.DecryptOptions{
				Keys: openpgp.EntityList{key}, Signers: openpgp.EntityList{senderPub}, RequireSignature: c.opts.Signer != nil,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatal("plaintext differs")
			}
			if want := pgpkeytest.Fixture(t, "curve25519").Fingerprint; pt.KeyFingerprint != want {
				t.Errorf("key %s, want %s", pt.KeyFingerprint, want)
			}
			if pt.Signed != (c.opts.Signer != nil) {
				t.Errorf("Signed = %v", pt.Signed)
			}
			if c.opts.Signer != nil && pt.SignerFingerprint != pgpkeytest.Fixture(t, "sender").Fingerprint {
				t.Errorf("signer %s", pt.SignerFingerprint)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestDecryptRejects(t *testing.T) {
	key := pgpkeytest.Entity(t, "curve25519")
	other := pgpkeytest.Entity(t, "rsa3072")
	senderPub := pgpkeytest.Public(t, "sender")
	keys := openpgp.EntityList{key}
	plain := bytes.Repeat([]byte("patient,row,data\n"), 4096) // 68 KiB
	msg := encrypt(t, plain, keys, pgpkey.EncryptOptions{})
	zmsg := encrypt(t, plain, keys, pgpkey.EncryptOptions{Compress: true})
	amsg := encrypt(t, plain, keys, pgpkey.EncryptOptions{Armor: true})
	signedByOther := encrypt(t, plain, keys, pgpkey.EncryptOptions{Signer: other})
	bomb := encrypt(t, make([]byte, 8<<20), keys, pgpkey.EncryptOptions{Compress: true})
	n := len(msg)

	cases := []struct {
		name string
		msg  []byte
		opts pgpkey.DecryptOptions
		want error
	}{
		{"empty", nil, pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"csv", []byte("a,b,c\n1,2,3\n"), pgpkey.DecryptOptions{}, pgpkey.ErrNotEncrypted},
		{"public key block", []byte(pgpkeytest.Fixture(t, "sender").PublicArmored), pgpkey.DecryptOptions{}, pgpkey.ErrNotEncrypted},
		{"truncated in key packet", msg[:40], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated after key packet", msg[:120], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated mid body", msg[:n/2], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated in MDC", msg[:n-10], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated by one byte", msg[:n-1], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated zlib", zmsg[:len(zmsg)-30], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"truncated armour", amsg[:len(amsg)/2], pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"bit flip in body", flip(msg, n/2), pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"bit flip in zlib body", flip(zmsg, len(zmsg)/2), pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"bit flip in MDC", flip(msg, n-5), pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"bit flip in session key", flip(msg, 60), pgpkey.DecryptOptions{}, pgpkey.ErrIntegrity},
		{"wrong key", msg, pgpkey.DecryptOptions{Keys: openpgp.EntityList{other}}, pgpkey.ErrNoKey},
		{"required signature missing", msg, pgpkey.DecryptOptions{RequireSignature: true, Signers: openpgp.EntityList{senderPub}}, pgpkey.ErrSignature},
		{"signed by someone else", signedByOther, pgpkey.DecryptOptions{RequireSignature: true, Signers: openpgp.EntityList{senderPub}}, pgpkey.ErrSignature},
		{"decompression bomb", bomb, pgpkey.DecryptOptions{MaxDecompressed: 1 << 20}, pgpkey.ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Keys == nil {
				c.opts.Keys = keys
			}
			_, _, err := decryptAll(c.msg, c.opts)
			t.Log(err)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == pgpkey.ErrNoKey && !strings.Contains(err.Error(), pgpkeytest.Entity(t, "curve25519").Subkeys[0].PublicKey.KeyIdString()) {
				t.Errorf("error does not name the recipient key ID: %v", err)
			}
		})
	}

	t.Run("unsigned passes without requirement", func(t *testing.T) {
		if _, pt, err := decryptAll(signedByOther, pgpkey.DecryptOptions{Keys: keys, Signers: openpgp.EntityList{senderPub}}); err != nil || pt.Signed {
			t.Fatalf("err %v, signed %v", err, pt != nil && pt.Signed)
		}
	})
	t.Run("error is sticky", func(t *testing.T) {
		pt, err := pgpkey.Decrypt(bytes.NewReader(flip(msg, n-5)), pgpkey.DecryptOptions{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		_, err1 := io.ReadAll(pt)
		_, err2 := pt.Read(make([]byte, 10))
		if !errors.Is(err1, pgpkey.ErrIntegrity) || !errors.Is(err2, pgpkey.ErrIntegrity) {
			t.Fatalf("errors %v, %v", err1, err2)
		}
	})
}

// failingReader returns data and then a transport error.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestDecryptReportsReadErrors(t *testing.T) {
	keys := openpgp.EntityList{pgpkeytest.Entity(t, "curve25519")}
	msg := encrypt(t, bytes.Repeat([]byte("x"), 100000), keys, pgpkey.EncryptOptions{})
	dropped := errors.New("connection lost")
	for _, n := range []int{0, 50, len(msg) / 2} {
		pt, err := pgpkey.Decrypt(&failingReader{r: bytes.NewReader(msg[:n]), err: dropped}, pgpkey.DecryptOptions{Keys: keys})
		if err == nil {
			_, err = io.ReadAll(pt)
		}
		if !errors.Is(err, dropped) {
			t.Errorf("cut at %d: got %v, want the read error", n, err)
		}
	}
}

// TestConcurrentDecryptSharedKeys: a batch's files decrypt concurrently
// with the same key objects, signed or not; go-crypto caches signature
// verdicts in those objects, so this is meant to be run with -race (as
// scripts/test does).
func TestConcurrentDecryptSharedKeys(t *testing.T) {
	plain := bytes.Repeat([]byte("1,2,3,hello,world\n"), 2000)
	key := pgpkeytest.Entity(t, "curve25519")
	sender := pgpkeytest.Entity(t, "sender")
	msgs := [][]byte{
		encrypt(t, plain, openpgp.EntityList{key}, pgpkey.EncryptOptions{}),
		encrypt(t, plain, openpgp.EntityList{key}, pgpkey.EncryptOptions{Signer: sender, Compress: true}),
	}
	// Fresh objects, nothing cached yet, shared by every goroutine.
	opts := pgpkey.DecryptOptions{Keys: openpgp.EntityList{pgpkeytest.Entity(t, "curve25519")},
		Signers: openpgp.EntityList{pgpkeytest.Public(t, "sender")}}
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			got, pt, err := decryptAll(msgs[i%2], opts)
			switch {
			case err != nil:
				errs <- err
			case !bytes.Equal(got, plain) || pt.Signed != (i%2 == 1):
				errs <- errors.New("wrong plaintext or signature status")
			default:
				errs <- nil
			}
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
