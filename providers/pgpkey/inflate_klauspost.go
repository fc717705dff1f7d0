//go:build klauspost

package pgpkey

import (
	"bufio"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
)

// newInflater returns klauspost/compress's decompressor, which decodes
// straight from a *bufio.Reader without an interface call per byte. It is
// a drop-in for compress/flate and compress/zlib (same formats, same
// checksum checks); see inflate.go.
func newInflater(r *bufio.Reader, algo packet.CompressionAlgo) (io.ReadCloser, error) {
	if algo == packet.CompressionZIP {
		return flate.NewReader(r), nil
	}
	return zlib.NewReader(r)
}
