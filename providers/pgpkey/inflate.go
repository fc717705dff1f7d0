//go:build !klauspost

package pgpkey

import (
	"bufio"
	"compress/flate"
	"compress/zlib"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// newInflater returns the decompressor for the fast path (seipd.go): the
// standard library's, as go-crypto uses. inflate_klauspost.go swaps in
// github.com/klauspost/compress, which inflates the EMIS CSVs faster, once
// that module is in go.mod (build with -tags klauspost).
func newInflater(r *bufio.Reader, algo packet.CompressionAlgo) (io.ReadCloser, error) {
	if algo == packet.CompressionZIP {
		return flate.NewReader(r), nil
	}
	return zlib.NewReader(r)
}
