// Package aescfb decrypts CFB mode with AES many blocks per call.
//
// CFB decryption, P[i] = C[i] ^ E(C[i-1]), needs only ciphertext as cipher
// input, so unlike CFB encryption it is parallel across blocks: it is ECB
// encryption of the ciphertext shifted by one block. crypto/aes encrypts
// one block per call, which leaves AES-NI's pipeline mostly idle (its
// latency is several times its throughput); on amd64 with AES-NI this
// package encrypts eight independent blocks at a time and XORs the
// ciphertext in the same pass. Elsewhere it uses crypto/aes per block.
package aescfb

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"math/bits"
)

// BlockSize is the AES block size.
const BlockSize = aes.BlockSize

// Cipher is an AES cipher.Block that can also CFB-decrypt whole runs of
// blocks. It holds no state between calls: the chaining block is the
// caller's iv.
type Cipher struct {
	cipher.Block           // crypto/aes, for single blocks and the fallback
	nr           int       // rounds: 10, 12 or 14
	xk           [240]byte // encryption round keys, (nr+1)*16 bytes used
}

var _ cipher.Block = (*Cipher)(nil)

// NewCipher returns the cipher for an AES-128, -192 or -256 key.
func NewCipher(key []byte) (*Cipher, error) {
	b, err := aes.NewCipher(key) // also validates the key size
	if err != nil {
		return nil, err
	}
	c := &Cipher{Block: b}
	c.nr = expandKey(key, &c.xk)
	return c, nil
}

// DecryptCFB CFB-decrypts src into dst. len(src) must be a multiple of
// BlockSize and dst at least as long; dst and src may be the same slice
// but must not otherwise overlap. iv is the ciphertext block before src
// (the IV at the start); on return it is src's last block, ready for the
// next call.
func (c *Cipher) DecryptCFB(dst, src []byte, iv *[BlockSize]byte) {
	if len(src)%BlockSize != 0 || len(dst) < len(src) {
		panic("aescfb: bad buffer lengths")
	}
	if len(src) == 0 {
		return
	}
	if useAsm {
		cfbDecryptAsm(c.nr, &c.xk, iv, &dst[0], &src[0], len(src)/BlockSize)
		return
	}
	var ks [BlockSize]byte
	for i := 0; i < len(src); i += BlockSize {
		c.Encrypt(ks[:], iv[:])
		copy(iv[:], src[i:i+BlockSize]) // before dst is written: src may be dst
		subtle.XORBytes(dst[i:i+BlockSize], src[i:i+BlockSize], ks[:])
	}
}

// expandKey writes the encryption round keys (FIPS-197 5.2) in the byte
// order AESENC reads them from memory and returns the number of rounds.
// The tests check the result against crypto/aes.
func expandKey(key []byte, xk *[240]byte) (nr int) {
	nk := len(key) / 4
	nr = nk + 6
	copy(xk[:], key)
	rcon := byte(1)
	for i := nk; i < 4*(nr+1); i++ {
		t := [4]byte(xk[4*(i-1) : 4*i])
		switch {
		case i%nk == 0: // SubWord(RotWord(t)) ^ Rcon
			t = [4]byte{sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])}
			rcon = xtime(rcon)
		case nk > 6 && i%nk == 4: // AES-256 only: SubWord(t)
			t = [4]byte{sbox(t[0]), sbox(t[1]), sbox(t[2]), sbox(t[3])}
		}
		for j := range 4 {
			xk[4*i+j] = xk[4*(i-nk)+j] ^ t[j]
		}
	}
	return nr
}

// xtime multiplies by x in GF(2^8) modulo the AES polynomial.
func xtime(b byte) byte { return b<<1 ^ (b>>7)*0x1b }

// gmul multiplies in GF(2^8) without branching on its operands, which
// are session-key bytes here.
func gmul(a, b byte) (p byte) {
	for range 8 {
		p ^= a & -(b & 1)
		a = xtime(a)
		b >>= 1
	}
	return p
}

// sbox is the AES S-box (FIPS-197 5.1.1), computed rather than tabled:
// the inverse b^254 (0 for 0), then the affine transform. Only the key
// schedule uses it.
func sbox(b byte) byte {
	inv, x := byte(1), b
	for e := 254; e > 0; e >>= 1 {
		if e&1 != 0 {
			inv = gmul(inv, x)
		}
		x = gmul(x, x)
	}
	return inv ^ bits.RotateLeft8(inv, 1) ^ bits.RotateLeft8(inv, 2) ^
		bits.RotateLeft8(inv, 3) ^ bits.RotateLeft8(inv, 4) ^ 0x63
}
