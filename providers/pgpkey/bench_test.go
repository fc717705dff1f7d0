package pgpkey_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/im1dev/im1/providers/pgpkey"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
)

// BenchmarkDecrypt decrypts 64 MiB of CSV-like plaintext encrypted to an
// RSA-3072 key with AES-256 (compare perf-baselines.md §1).
func BenchmarkDecrypt(b *testing.B) {
	const size = 64 << 20
	var plain bytes.Buffer
	for i := 0; plain.Len() < size; i++ {
		fmt.Fprintf(&plain, "{%08X-1C2B-4D3E-8F90-%012X},A81001,2026-11-21,22298006,\"Blood pressure, sitting\",%d,mmHg\n", i, i*7919, 60+i%90)
	}
	data := plain.Bytes()[:size]
	key := pgpkeytest.Entity(b, "rsa3072")
	for _, compress := range []bool{false, true} {
		name := "none"
		if compress {
			name = "zlib"
		}
		b.Run(name, func(b *testing.B) {
			msg := encrypt(b, data, openpgp.EntityList{key}, pgpkey.EncryptOptions{Compress: compress})
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				pt, err := pgpkey.Decrypt(bytes.NewReader(msg), pgpkey.DecryptOptions{Keys: openpgp.EntityList{key}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
