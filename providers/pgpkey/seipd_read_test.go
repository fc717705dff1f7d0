package pgpkey

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"

	"github.com/im1dev/im1/providers/pgpkey/internal/aescfb"
)

// seipdBody is a SEIPD v1 body as a sender makes it: CFB with a zero IV
// over a random prefix (its last two bytes repeated), the data and the
// MDC packet, whose SHA-1 covers everything before its own hash.
func seipdBody(key, data []byte, rng *rand.Rand) []byte {
	prefix := make([]byte, aes.BlockSize+2)
	for i := range aes.BlockSize {
		prefix[i] = byte(rng.Uint32())
	}
	prefix[16], prefix[17] = prefix[14], prefix[15]
	plain := append(append(prefix, data...), 0xD3, 0x14)
	sum := sha1.Sum(plain)
	plain = append(plain, sum[:]...)
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCFBEncrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(out, plain)
	return out
}

// randomReads reads r to the end with read sizes drawn from sizes.
func randomReads(r io.Reader, rng *rand.Rand, sizes []int) ([]byte, error) {
	var out []byte
	buf := make([]byte, slices.Max(sizes))
	for {
		b := buf[:sizes[rng.IntN(len(sizes))]]
		n, err := r.Read(b)
		out = append(out, b[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// TestSEIPDReadPaths: seipdReader decrypts into a read's own buffer when
// it is large (readDirect) and through its chunk buffer when it is small;
// any mix of the two, over any split of the ciphertext, gives the data,
// then io.EOF and a verified MDC, and a flipped bit anywhere fails the
// MDC.
func TestSEIPDReadPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	sizes := []int{1, 7, 16, 22, 100, directRead - 1, directRead, directRead + 5, 64 << 10, seipdChunk + 3}
	for _, n := range []int{0, 1, 5, 17, 4095, 4096, 70000, seipdChunk + 1000, 3 * seipdChunk} {
		for _, keyLen := range []int{16, 24, 32} {
			key := make([]byte, keyLen)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			body := seipdBody(key, data, rng)
			for round := range 6 {
				t.Run(fmt.Sprintf("%d-%d-%d", n, keyLen, round), func(t *testing.T) {
					block, err := aescfb.NewCipher(key)
					if err != nil {
						t.Fatal(err)
					}
					var src io.Reader = bytes.NewReader(body)
					switch round % 3 {
					case 1:
						src = iotest.HalfReader(src)
					case 2:
						if n > 70000 {
							src = iotest.DataErrReader(src)
						} else {
							src = iotest.DataErrReader(iotest.OneByteReader(src))
						}
					}
					s := newSEIPDReader(src, block)
					got, err := randomReads(s, rng, sizes)
					if err != io.EOF || !bytes.Equal(got, data) {
						t.Fatalf("read %d bytes (want %d), equal %v, %v", len(got), len(data), bytes.Equal(got, data), err)
					}
					if err := s.verify(); err != nil {
						t.Fatalf("MDC: %v", err)
					}
					// Damage: any flipped bit fails the MDC (or the read).
					bad := append([]byte{}, body...)
					bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
					s = newSEIPDReader(bytes.NewReader(bad), block)
					_, err = randomReads(s, rng, sizes)
					if err == io.EOF {
						err = s.verify()
					}
					if err != pgperrors.ErrMDCHashMismatch {
						t.Fatalf("damaged body: %v, want an MDC mismatch", err)
					}
					// Truncated: never EOF with a verified MDC.
					s = newSEIPDReader(bytes.NewReader(body[:rng.IntN(len(body))]), block)
					if _, err = randomReads(s, rng, sizes); err == io.EOF && s.verify() == nil {
						t.Fatal("truncated body verified")
					}
				})
			}
		}
	}
}
