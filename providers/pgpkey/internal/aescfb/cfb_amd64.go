//go:build !purego

package aescfb

// useAsm: the CPU has AES-NI (SSE2 is part of amd64).
var useAsm = hasAESNI()

func hasAESNI() bool

// cfbDecryptAsm CFB-decrypts n blocks from src to dst with the round keys
// xk (nr rounds), starting from and updating iv.
//
//go:noescape
func cfbDecryptAsm(nr int, xk *[240]byte, iv *[BlockSize]byte, dst, src *byte, n int)
