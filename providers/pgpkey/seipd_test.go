package pgpkey_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

// outcome is what a decrypt produced: the plaintext and which typed error
// (by its index in typedErrors, -1 for none).
type outcome struct {
	plain   []byte
	errType int
	err     error
	fast    bool
}

func decryptWith(fast bool, msg []byte, opts pgpkey.DecryptOptions) outcome {
	defer pgpkey.SetFastPath(fast)()
	pt, err := pgpkey.Decrypt(bytes.NewReader(msg), opts)
	var o outcome
	if err == nil {
		o.fast = pgpkey.UsedFastPath(pt)
		o.plain, err = io.ReadAll(pt)
	}
	o.err, o.errType = err, -1
	for i, e := range typedErrors {
		if errors.Is(err, e) {
			o.errType = i
			break
		}
	}
	// Damage inside the encrypted data is ErrIntegrity on the fast path;
	// go-crypto calls some of it ErrMalformed, depending on where its
	// reads fall (see fastBody.finish). Every other class must match.
	if errors.Is(err, pgpkey.ErrMalformed) {
		o.errType = slices.Index(typedErrors, pgpkey.ErrIntegrity)
	}
	return o
}

// sameAsGoCrypto decrypts msg with and without the fast path: the
// verdicts (success, or the same typed error) must agree, and on success
// the plaintexts must be identical. It returns the fast-path outcome.
func sameAsGoCrypto(t testing.TB, msg []byte, opts pgpkey.DecryptOptions) outcome {
	t.Helper()
	slow, fast := decryptWith(false, msg, opts), decryptWith(true, msg, opts)
	if (slow.err == nil) != (fast.err == nil) || slow.errType != fast.errType {
		t.Fatalf("verdicts differ: go-crypto %v, fast path %v", slow.err, fast.err)
	}
	if fast.err != nil && fast.errType < 0 {
		t.Fatalf("untyped error: %v", fast.err)
	}
	if slow.err == nil && !bytes.Equal(slow.plain, fast.plain) {
		t.Fatalf("plaintexts differ: go-crypto %d bytes, fast path %d bytes", len(slow.plain), len(fast.plain))
	}
	return fast
}

// csvish is n bytes of table-like text, compressible like an extract.
func csvish(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "\"{%08X-1C2B-4D3E-8F90-%012X}\",\"A81001\",\"2026-11-21\",\"%d\"\r\n", i, i*7919, i%977)
	}
	return b.Bytes()[:n]
}

// Sizes around the AES block, the MDC trailer, the 64 KiB buffers and the
// 256 KiB decrypt chunk.
var vectorSizes = []int{0, 1, 15, 16, 17, 22, 23, 100, 4095, 65536, 65537, 262144 + 7, 1 << 20}

// TestFastPathMatchesGoCryptoGPG: files made by real gpg (partial
// lengths, old- and new-format packets, every compression gpg offers).
func TestFastPathMatchesGoCryptoGPG(t *testing.T) {
	k := pgpkeytest.Fixture(t, "curve25519")
	ours := pgpkeytest.Entity(t, "curve25519")
	g := newGPG(t)
	g.run(nil, "--import", g.file("pub.asc", []byte(k.PublicArmored)))
	signerFpr, signer := g.newSigner("EMIS Supplier <supplier@emis.invalid>")
	opts := pgpkey.DecryptOptions{Keys: openpgp.EntityList{ours}, Signers: openpgp.EntityList{signer}}
	for _, size := range []int{0, 17, 65537, 1 << 20} {
		plain := csvish(size)
		for _, c := range []struct {
			name     string
			args     []string
			wantFast bool
		}{
			{"zlib-aes256", []string{"--compress-algo", "zlib", "--cipher-algo", "AES256"}, true},
			{"zip-aes128", []string{"--compress-algo", "zip", "--cipher-algo", "AES"}, true},
			{"none-aes192", []string{"--compress-algo", "none", "--cipher-algo", "AES192"}, true},
			{"zlib-armor", []string{"--compress-algo", "zlib", "--armor"}, true},
			{"bzip2", []string{"--compress-algo", "bzip2"}, false},
			{"signed", []string{"--compress-algo", "zlib", "--sign", "--local-user", signerFpr}, false},
			{"cast5", []string{"--compress-algo", "none", "--cipher-algo", "CAST5"}, false},
		} {
			t.Run(fmt.Sprintf("%s-%d", c.name, size), func(t *testing.T) {
				args := append([]string{"--trust-model", "always", "--encrypt", "--recipient", k.Fingerprint, "--output", "-"}, c.args...)
				msg := g.run(plain, args...)
				o := sameAsGoCrypto(t, msg, opts)
				if o.err != nil || !bytes.Equal(o.plain, plain) {
					t.Fatalf("fast path: %d bytes, %v", len(o.plain), o.err)
				}
				// A tiny message may be read whole by go-crypto's header
				// parsing, leaving the fast path nothing to take over
				// (newFastBody hits the recording's wall and falls back);
				// either path is then right, and the bytes were checked above.
				tiny := size < 64
				if o.fast != c.wantFast && !(tiny && !o.fast) {
					t.Errorf("fast path used: %v, want %v", o.fast, c.wantFast)
				}
				// Damaged copies must fail the same way on both paths.
				for _, at := range []int{len(msg) - 1, len(msg) - 21, len(msg) - 30, len(msg) / 2, len(msg) * 3 / 4} {
					if at > 0 && at < len(msg) {
						sameAsGoCrypto(t, flip(msg, at), opts)
						sameAsGoCrypto(t, msg[:at], opts)
					}
				}
			})
		}
	}
}

// TestFastPathMatchesGoCryptoGo: go-crypto-made files (partial lengths of
// its own sizes) at every vector size, with AES-128/192/256.
func TestFastPathMatchesGoCryptoGo(t *testing.T) {
	key := pgpkeytest.Entity(t, "curve25519")
	to := openpgp.EntityList{pgpkeytest.Public(t, "curve25519")}
	opts := pgpkey.DecryptOptions{Keys: openpgp.EntityList{key}, MaxDecompressed: 2 << 20}
	for _, size := range vectorSizes {
		plain := csvish(size)
		for _, cipher := range []packet.CipherFunction{packet.CipherAES128, packet.CipherAES192, packet.CipherAES256} {
			for _, compress := range []bool{false, true} {
				t.Run(fmt.Sprintf("%d-%d-%v", size, cipher, compress), func(t *testing.T) {
					msg := encrypt(t, plain, to, pgpkey.EncryptOptions{Compress: compress, Cipher: cipher, FileName: "x.csv"})
					o := sameAsGoCrypto(t, msg, opts)
					if o.err != nil || !bytes.Equal(o.plain, plain) || !o.fast {
						t.Fatalf("fast path: %d bytes, fast %v, %v", len(o.plain), o.fast, o.err)
					}
					for _, at := range []int{len(msg) - 1, len(msg) - 22, len(msg) - 23, len(msg) / 2} {
						sameAsGoCrypto(t, flip(msg, at), opts)
						sameAsGoCrypto(t, msg[:at], opts)
					}
				})
			}
		}
	}
}

// TestFastPathTooLarge: the size cap applies on the fast path too.
func TestFastPathTooLarge(t *testing.T) {
	key := pgpkeytest.Entity(t, "curve25519")
	msg := encrypt(t, bytes.Repeat([]byte{'a'}, 4<<20), openpgp.EntityList{pgpkeytest.Public(t, "curve25519")}, pgpkey.EncryptOptions{Compress: true})
	o := sameAsGoCrypto(t, msg, pgpkey.DecryptOptions{Keys: openpgp.EntityList{key}, MaxDecompressed: 1 << 20})
	if !errors.Is(o.err, pgpkey.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", o.err)
	}
}

// FuzzFastPath is the differential fuzz target: for any input the fast
// path and go-crypto must agree (go test -fuzz FuzzFastPath). Its seeds
// are FuzzDecrypt's.
func FuzzFastPath(f *testing.F) {
	opts := pgpkey.DecryptOptions{
		Keys:            openpgp.EntityList{pgpkeytest.Entity(f, "curve25519")},
		Signers:         openpgp.EntityList{pgpkeytest.Public(f, "sender")},
		MaxDecompressed: 1 << 20,
	}
	to := openpgp.EntityList{pgpkeytest.Public(f, "curve25519")}
	for _, compress := range []bool{false, true} {
		f.Add(encrypt(f, csvish(3000), to, pgpkey.EncryptOptions{Compress: compress}))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		sameAsGoCrypto(t, msg, opts)
	})
}
