package pgpkey

import (
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/im1dev/im1/providers/pgpkey/internal/inflate"
)

// newInflater returns the fast path's decompressor (seipd.go):
// internal/inflate, which accepts exactly what compress/flate and
// compress/zlib (go-crypto's) accept, with the same output and checksum
// checks, and decodes table-like data 1.5-1.9x as fast as
// klauspost/compress, the decompressor before it (bench/README.md).
func newInflater(r io.Reader, algo packet.CompressionAlgo) (io.Reader, error) {
	if algo == packet.CompressionZIP {
		return inflate.NewReader(r), nil
	}
	return inflate.NewZlibReader(r)
}
