//go:build !amd64 || purego

package aescfb

var useAsm = false

func cfbDecryptAsm(nr int, xk *[240]byte, iv *[BlockSize]byte, dst, src *byte, n int) {
	panic("unreachable")
}
