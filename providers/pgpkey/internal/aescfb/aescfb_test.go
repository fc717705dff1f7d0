package aescfb

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"math/rand/v2"
	"testing"
)

// reference CFB-decrypts with crypto/aes and crypto/cipher's CFB.
func reference(t testing.TB, key, iv, src []byte) []byte {
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(src))
	cipher.NewCFBDecrypter(b, iv).XORKeyStream(dst, src) //nolint:staticcheck // the reference
	return dst
}

// check decrypts src with c in pieces of the given block counts (so the
// iv chaining between calls is exercised), out of place and in place, and
// compares with the reference.
func check(t testing.TB, key, iv, src []byte, pieces []int) {
	t.Helper()
	want := reference(t, key, iv, src)
	c, err := NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, inPlace := range []bool{false, true} {
		got := make([]byte, len(src))
		if inPlace {
			copy(got, src)
		}
		v := [BlockSize]byte(iv)
		off := 0
		for _, p := range append(pieces, len(src)/BlockSize) {
			end := min(off+p*BlockSize, len(src))
			in := src[off:end]
			if inPlace {
				in = got[off:end]
			}
			c.DecryptCFB(got[off:end], in, &v)
			off = end
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("asm %v, in place %v, key %d bytes, %d blocks in %v: wrong plaintext", useAsm, inPlace, len(key), len(src)/BlockSize, pieces)
		}
		if len(src) > 0 && !bytes.Equal(v[:], src[len(src)-BlockSize:]) {
			t.Fatalf("iv not updated to the last ciphertext block")
		}
	}
}

// both runs f with the asm path (if the CPU has it) and the fallback.
func both(t *testing.T, f func(t *testing.T)) {
	saved := useAsm
	defer func() { useAsm = saved }()
	for _, asm := range []bool{false, true} {
		if asm && !saved {
			t.Log("no AES-NI here: only the fallback is tested")
			continue
		}
		useAsm = asm
		t.Run(fmt.Sprintf("asm=%v", asm), f)
	}
}

func TestDecrypt(t *testing.T) {
	both(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, keySize := range []int{16, 24, 32} {
			for _, blocks := range []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 16384 + 3} {
				for trial := range 4 {
					key, iv, src := make([]byte, keySize), make([]byte, BlockSize), make([]byte, blocks*BlockSize)
					for _, b := range [][]byte{key, iv, src} {
						for i := range b {
							b[i] = byte(r.Uint32())
						}
					}
					var pieces []int
					for range trial {
						pieces = append(pieces, r.IntN(blocks+1))
					}
					check(t, key, iv, src, pieces)
				}
			}
		}
	})
}

// TestKeySchedule: FIPS-197 Appendix A, the last round key of each size.
func TestKeySchedule(t *testing.T) {
	for _, c := range []struct{ key, last string }{
		{"2b7e151628aed2a6abf7158809cf4f3c", "d014f9a8c9ee2589e13f0cc8b6630ca6"},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "e98ba06f448c773c8ecc720401002202"},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "fe4890d1e6188d0b046df344706c631e"},
	} {
		var key []byte
		fmt.Sscanf(c.key, "%x", &key)
		var xk [240]byte
		nr := expandKey(key, &xk)
		if nr != len(key)/4+6 || !bytes.Equal(xk[:len(key)], key) {
			t.Fatalf("key %x: nr %d", key, nr)
		}
		if got := fmt.Sprintf("%x", xk[nr*16:nr*16+16]); got != c.last {
			t.Errorf("key %x: last round key %s, want %s", key, got, c.last)
		}
	}
	if sbox(0) != 0x63 || sbox(1) != 0x7c || sbox(0x53) != 0xed || sbox(0xff) != 0x16 {
		t.Error("sbox")
	}
}

func TestBadLengths(t *testing.T) {
	c, _ := NewCipher(make([]byte, 16))
	var iv [BlockSize]byte
	for _, n := range [][2]int{{15, 15}, {16, 32}, {17, 17}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("dst %d, src %d: no panic", n[0], n[1])
				}
			}()
			c.DecryptCFB(make([]byte, n[0]), make([]byte, n[1]), &iv)
		}()
	}
}

// FuzzDecrypt compares with crypto/aes + crypto/cipher CFB for any key
// size, IV, data and split into calls.
func FuzzDecrypt(f *testing.F) {
	f.Add(uint8(0), make([]byte, 16+16+16*9), uint16(3))
	f.Add(uint8(1), bytes.Repeat([]byte{0xa5}, 24+16+16*33), uint16(8))
	f.Add(uint8(2), bytes.Repeat([]byte{0x5a}, 32+16+16*100), uint16(17))
	f.Fuzz(func(t *testing.T, size uint8, data []byte, split uint16) {
		keySize := 16 + 8*int(size%3)
		if len(data) < keySize+BlockSize {
			return
		}
		key, iv, src := data[:keySize], data[keySize:keySize+BlockSize], data[keySize+BlockSize:]
		src = src[:len(src)/BlockSize*BlockSize]
		both(t, func(t *testing.T) { check(t, key, iv, src, []int{int(split)}) })
	})
}

// BenchmarkCFB compares CFB-decrypting 256 KiB (the seipd chunk): the
// previous seipd code (one crypto/aes Encrypt per block, then one XOR),
// crypto/cipher's CFB, and this package.
func BenchmarkCFB(b *testing.B) {
	src := make([]byte, 256<<10)
	dst := make([]byte, len(src))
	for _, keySize := range []int{16, 32} {
		key := make([]byte, keySize)
		block, _ := aes.NewCipher(key)
		c, _ := NewCipher(key)
		var iv [BlockSize]byte
		b.Run(fmt.Sprintf("AES-%d/stdlib-per-block", keySize*8), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				block.Encrypt(dst[:BlockSize], iv[:])
				for i := BlockSize; i < len(src); i += BlockSize {
					block.Encrypt(dst[i:i+BlockSize], src[i-BlockSize:i])
				}
				subtle.XORBytes(dst, dst, src)
			}
		})
		b.Run(fmt.Sprintf("AES-%d/crypto-cipher-CFB", keySize*8), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				cipher.NewCFBDecrypter(block, iv[:]).XORKeyStream(dst, src) //nolint:staticcheck // the reference
			}
		})
		b.Run(fmt.Sprintf("AES-%d/aescfb", keySize*8), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				c.DecryptCFB(dst, src, &iv)
			}
		})
	}
}
