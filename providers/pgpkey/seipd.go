package pgpkey

// A faster body path for the common SEIPD v1 message shape.
//
// go-crypto decrypts SEIPD v1 (CFB + MDC) a byte at a time and inflates
// through a 4 KiB bufio.Reader; together that is most of a decrypt's CPU
// (see bench/README.md, decrypt.sh). Decrypt still lets go-crypto's
// ReadMessage do everything up to the first literal byte: key selection,
// session-key decryption and every header error are exactly go-crypto's. It
// records the (few KiB of) bytes ReadMessage consumed and asks it for the
// session key. If the message has the shape every GnuPG-like sender
// produces,
//
//	PKESK... SEIPDv1( prefix [Compressed(ZIP|ZLIB|none)( Literal )] MDC )
//
// with no signature, the body is decrypted again from the recorded bytes
// on, many AES blocks per call (internal/aescfb), and inflated by
// newInflater. Anything else (SKESK, AEAD, v2, signatures, BZIP2,
// padding or marker packets, a shape we cannot confirm from the recorded
// bytes alone) keeps go-crypto's reader, so no message is ever read by
// both.
//
// Integrity is unchanged: the plaintext is untrusted until Read returns
// io.EOF, which it only does after the SHA-1 MDC over the whole decrypted
// stream verified. Errors use go-crypto's values (ErrMDCHashMismatch,
// io.ErrUnexpectedEOF, and HandleSensitiveParsingError for anything that
// fails to parse inside the encryption), so classifyBody maps them to the
// same typed errors. The one intended difference: trailing packets after
// the literal data (no known sender writes them, and a sender would need
// the session key to add them) are rejected as ErrIntegrity, where
// go-crypto would accept some.

import (
	"bufio"
	"crypto/aes"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"hash"
	"io"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/im1dev/im1/providers/pgpkey/internal/aescfb"
)

// maxRecorded caps the bytes kept while ReadMessage parses the headers. It
// needs the packets before the encrypted data plus about one deflate
// window of ciphertext; a message needing more just keeps go-crypto's path.
const maxRecorded = 256 << 10

// recorder passes reads through and keeps a copy of everything read, up to
// maxRecorded, until stop.
type recorder struct {
	r       io.Reader
	buf     []byte
	over    bool // more than maxRecorded was read: no replay possible
	stopped bool
}

func (c *recorder) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if !c.stopped && !c.over {
		if len(c.buf)+n > maxRecorded {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, b[:n]...)
		}
	}
	return n, err
}

// replay returns the recorded bytes and stops recording; ok is false if
// the record is incomplete.
func (c *recorder) replay() (rec []byte, ok bool) {
	c.stopped = true
	rec, c.buf = c.buf, nil
	return rec, !c.over
}

// errUndecided is what the replayed stream returns while the fast path is
// still checking the message shape and the recorded bytes run out: that
// data belongs to go-crypto's reader, so the fast path gives up.
var errUndecided = errors.New("pgpkey: fast path needs more than the recorded bytes")

// splice reads the recorded bytes, then, once opened, the live stream.
type splice struct {
	rec  []byte
	live io.Reader
	open bool
	wall bool // errUndecided was returned: some reader may hold it
}

func (s *splice) Read(b []byte) (int, error) {
	if len(s.rec) > 0 {
		n := copy(b, s.rec)
		s.rec = s.rec[n:]
		return n, nil
	}
	if !s.open {
		s.wall = true
		return 0, errUndecided
	}
	return s.live.Read(b)
}

// fastBody is the fast-path equivalent of md.UnverifiedBody.
// Each layer is read through a bufio.Reader, and the end checks read
// those, so no byte buffered by one is missed.
type fastBody struct {
	outer    io.Reader // the message after the encrypted data packet
	seipd    *seipdReader
	plain    *bufio.Reader // the decrypted stream (seipd)
	compBody *bufio.Reader // the compressed packet's body, nil if none
	inflated *bufio.Reader // the decompressed data, nil if none
	lit      io.Reader     // literal data body
	done     bool
	err      error
}

// newFastBody returns a reader for md's literal data that decrypts with
// the fast path, or nil to keep md.UnverifiedBody. rec are the bytes
// ReadMessage consumed from live, and live is positioned just after them.
// The live stream is only touched once the answer is non-nil.
func newFastBody(md *openpgp.MessageDetails, rec []byte, live io.Reader) (fb *fastBody) {
	if !md.IsEncrypted || md.IsSigned || md.SessionKey == nil || md.LiteralData == nil || md.DecryptedWith.Entity == nil {
		return nil
	}
	switch md.DecryptedWithAlgorithm {
	case packet.CipherAES128, packet.CipherAES192, packet.CipherAES256:
	default:
		return nil
	}
	if len(md.SessionKey) != md.DecryptedWithAlgorithm.KeySize() {
		return nil
	}
	defer func() {
		// The shape check parses untrusted bytes: any surprise means "use
		// go-crypto", which has already parsed the same bytes safely.
		if recover() != nil {
			fb = nil
		}
	}()
	sp := &splice{rec: rec, live: live}
	fb, err := parseFast(sp, md)
	if err != nil || fb == nil || sp.wall {
		return nil
	}
	sp.open = true
	return fb
}

func parseFast(sp *splice, md *openpgp.MessageDetails) (*fastBody, error) {
	// The packets before the encrypted data: public-key session keys only.
	var se *packet.SymmetricallyEncrypted
	for se == nil {
		p, err := packet.Read(sp)
		if err != nil {
			return nil, err
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
		case *packet.SymmetricallyEncrypted:
			if !p.IntegrityProtected || p.Version != 1 {
				return nil, nil
			}
			se = p
		default:
			return nil, nil
		}
	}
	block, err := aescfb.NewCipher(md.SessionKey)
	if err != nil {
		return nil, err
	}
	fb := &fastBody{outer: sp, seipd: newSEIPDReader(se.Contents, block)}
	fb.plain = bufio.NewReaderSize(fb.seipd, 64<<10)
	inner := fb.plain
	tag, body, err := readPacketHeader(inner)
	if err != nil {
		return nil, err
	}
	if tag == tagCompressed {
		// The algorithm byte is the first byte of the packet body.
		fb.compBody = bufio.NewReaderSize(body, 64<<10)
		algo, err := fb.compBody.ReadByte()
		if err != nil {
			return nil, err
		}
		switch packet.CompressionAlgo(algo) {
		case packet.CompressionNone:
			inner = fb.compBody
		case packet.CompressionZIP, packet.CompressionZLIB:
			dec, err := newInflater(fb.compBody, packet.CompressionAlgo(algo))
			if err != nil {
				return nil, err
			}
			// A small buffer: the decompressor decodes no further ahead
			// than it is asked (so reading the literal header stays within
			// the recorded bytes), and the body's large reads bypass it.
			fb.inflated = bufio.NewReaderSize(dec, 512)
			inner = fb.inflated
		default:
			return nil, nil // BZIP2 and unknown: go-crypto decides
		}
		if tag, body, err = readPacketHeader(inner); err != nil {
			return nil, err
		}
	}
	if tag != tagLiteral {
		return nil, nil
	}
	var hdr [2]byte
	if _, err := io.ReadFull(body, hdr[:]); err != nil {
		return nil, err
	}
	name := make([]byte, hdr[1])
	var t [4]byte
	if _, err := io.ReadFull(body, name); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(body, t[:]); err != nil {
		return nil, err
	}
	// It must be the literal packet go-crypto found.
	ld := md.LiteralData
	if hdr[0] != ld.Format || string(name) != ld.FileName ||
		uint32(t[0])<<24|uint32(t[1])<<16|uint32(t[2])<<8|uint32(t[3]) != ld.Time {
		return nil, nil
	}
	fb.lit = body
	return fb, nil
}

// Read returns literal data; io.EOF only after the whole decrypted stream
// ended exactly after the literal data and its MDC verified.
func (f *fastBody) Read(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.done {
		return 0, io.EOF
	}
	n, err := f.lit.Read(b)
	switch {
	case err == io.EOF:
		if err := f.finish(); err != nil {
			f.err = err
			return n, err
		}
		f.done = true
		return n, io.EOF
	case err != nil:
		f.err = sensitive(err)
		return n, f.err
	}
	return n, nil
}

// finish checks the end of the message: nothing may follow the literal
// data inside the encryption (reading the decompressor to its end also
// checks the zlib checksum), nothing may follow the encrypted data packet,
// and the MDC must verify. Any failure inside the encryption is folded
// into go-crypto's generic parsing error, so it is ErrIntegrity ("corrupt
// encrypted data"); go-crypto itself reports some of these (such as a bad
// zlib checksum) as ErrMalformed, depending on where its reads fall.
func (f *fastBody) finish() error {
	var one [1]byte
	if f.inflated != nil {
		if n, err := io.ReadFull(f.inflated, one[:]); n > 0 || err != io.EOF {
			return sensitive(trailing(n, err))
		}
	}
	if f.compBody != nil {
		// Bytes after the deflate stream's end, inside the compressed
		// packet, are not data: skip them as go-crypto's packet reader does.
		if _, err := io.Copy(io.Discard, f.compBody); err != nil {
			return sensitive(err)
		}
	}
	if n, err := io.ReadFull(f.plain, one[:]); n > 0 || err != io.EOF {
		return sensitive(trailing(n, err))
	}
	// After the encrypted data packet: the end of the input (or of the
	// armour, whose own errors pass as they are, as in go-crypto).
	if n, err := io.ReadFull(f.outer, one[:]); n > 0 || err != io.EOF {
		return trailing(n, err)
	}
	if err := f.seipd.verify(); err != nil {
		return sensitive(err)
	}
	return nil
}

// errTrailing is data after the literal data, or after the encrypted
// data: no sender writes it.
var errTrailing = pgperrors.StructuralError("data after the literal data")

func trailing(n int, err error) error {
	if n > 0 {
		return errTrailing
	}
	return err
}

// sensitive folds a failure inside the decrypted data (truncation, inflate
// and packet errors, MDC mismatch) into go-crypto's one generic error, as
// its checkReader does; Plaintext.Read still reports a failing source as
// itself (srcReader).
func sensitive(err error) error { return pgperrors.HandleSensitiveParsingError(err, true) }

// seipdReader decrypts a SEIPD v1 body: OpenPGP CFB without resync, which
// is standard CFB with a zero IV over the whole body (the random prefix
// included). It hashes everything with SHA-1, withholds the last 22 bytes
// (the MDC packet) and checks them at the end of the ciphertext. Read
// returns the bytes after the prefix.
type seipdReader struct {
	src   io.Reader
	block *aescfb.Cipher
	iv    [aes.BlockSize]byte // previous ciphertext block
	ks    [aes.BlockSize]byte // key stream of a block cut by a read
	ksOff int                 // bytes of ks used; aes.BlockSize if none left
	h     hash.Hash

	cbuf, pbuf []byte
	out        []byte // decrypted, hashed bytes ready to return
	skip       int    // prefix bytes still to drop
	tail       [mdcTrailerSize]byte
	ntail      int
	err        error
}

// mdcTrailerSize is the MDC packet: tag, length and a SHA-1.
const mdcTrailerSize = 2 + sha1.Size

const seipdChunk = 256 << 10

func newSEIPDReader(src io.Reader, block *aescfb.Cipher) *seipdReader {
	return &seipdReader{src: src, block: block, ksOff: aes.BlockSize, h: sha1.New(),
		cbuf: make([]byte, seipdChunk), pbuf: make([]byte, seipdChunk+mdcTrailerSize),
		skip: block.BlockSize() + 2}
}

func (s *seipdReader) Read(b []byte) (int, error) {
	if len(s.out) == 0 && len(b) >= directRead {
		return s.readDirect(b)
	}
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.fill()
	}
	n := copy(b, s.out)
	s.out = s.out[n:]
	return n, nil
}

// fill decrypts the next chunk into out, or sets err.
func (s *seipdReader) fill() {
	n, rerr := s.src.Read(s.cbuf)
	// The withheld tail goes first, then the new plaintext after it.
	copy(s.pbuf, s.tail[:s.ntail])
	s.xorKeyStream(s.pbuf[s.ntail:s.ntail+n], s.cbuf[:n])
	all := s.pbuf[:s.ntail+n]
	keep := min(len(all), mdcTrailerSize)
	ready := all[:len(all)-keep]
	s.ntail = copy(s.tail[:], all[len(all)-keep:])
	s.h.Write(ready)
	drop := min(s.skip, len(ready))
	s.skip -= drop
	s.out = ready[drop:]
	switch {
	case rerr == io.EOF && (s.ntail < mdcTrailerSize || s.skip > 0):
		s.err = io.ErrUnexpectedEOF // no room for the MDC packet
	case rerr != nil:
		s.err = rerr
	}
}

// directRead is the smallest read that readDirect serves: below it, a
// chunk decrypted into pbuf serves many reads.
const directRead = 4 << 10

// readDirect is fill for a large read with nothing pending: it decrypts
// into b itself, so the plaintext is not copied again. b receives the
// withheld tail, then the new plaintext, of which the last bytes are
// withheld again (b is long enough: len(b) >= directRead > ntail).
func (s *seipdReader) readDirect(b []byte) (int, error) {
	for {
		if s.err != nil {
			return 0, s.err
		}
		n, rerr := s.src.Read(s.cbuf[:min(len(b)-s.ntail, len(s.cbuf))])
		copy(b, s.tail[:s.ntail])
		s.xorKeyStream(b[s.ntail:s.ntail+n], s.cbuf[:n])
		all := b[:s.ntail+n]
		keep := min(len(all), mdcTrailerSize)
		ready := all[:len(all)-keep]
		s.ntail = copy(s.tail[:], all[len(all)-keep:])
		s.h.Write(ready)
		if s.skip > 0 {
			drop := min(s.skip, len(ready))
			s.skip -= drop
			ready = ready[:copy(ready, ready[drop:])]
		}
		switch {
		case rerr == io.EOF && (s.ntail < mdcTrailerSize || s.skip > 0):
			s.err = io.ErrUnexpectedEOF // no room for the MDC packet
		case rerr != nil:
			s.err = rerr
		}
		if len(ready) > 0 {
			return len(ready), nil
		}
	}
}

// verify checks the MDC packet once Read returned io.EOF, as go-crypto's
// seMDCReader.Close does.
func (s *seipdReader) verify() error {
	if s.err != io.EOF {
		return pgperrors.ErrMDCHashMismatch // not at the end: unverifiable
	}
	s.h.Write(s.tail[:2])
	if subtle.ConstantTimeCompare(s.h.Sum(nil), s.tail[2:]) != 1 ||
		s.tail[0] != 0x80|0x40|19 || s.tail[1] != sha1.Size {
		return pgperrors.ErrMDCHashMismatch
	}
	return nil
}

// xorKeyStream CFB-decrypts src into dst (same length, not overlapping).
// P[i] = C[i] ^ E(C[i-1]): every block's key stream depends on ciphertext
// only, so whole runs of blocks go to aescfb in one call, which encrypts
// several blocks at a time and XORs as it goes.
func (s *seipdReader) xorKeyStream(dst, src []byte) {
	const bs = aes.BlockSize
	// Finish a block cut by the previous read.
	if s.ksOff < bs {
		k := subtle.XORBytes(dst, src, s.ks[s.ksOff:])
		copy(s.iv[s.ksOff:], src[:k])
		s.ksOff += k
		dst, src = dst[k:], src[k:]
		if len(src) == 0 {
			return
		}
	}
	full := len(src) / bs * bs
	if full > 0 {
		s.block.DecryptCFB(dst[:full], src[:full], &s.iv) // updates iv
		dst, src = dst[full:], src[full:]
	}
	if len(src) > 0 {
		// Start a block: its key stream is kept for the next read, and
		// iv collects its ciphertext as the next feedback block.
		s.block.Encrypt(s.ks[:], s.iv[:])
		k := subtle.XORBytes(dst, src, s.ks[:])
		copy(s.iv[:], src[:k])
		s.ksOff = k
	}
}

// OpenPGP packet tags the fast path reads inside the encryption.
const (
	tagCompressed = 8
	tagLiteral    = 11
)

// readPacketHeader reads an OpenPGP packet header (RFC 4880 4.2) and
// returns the tag and a reader for the body: definite, indefinite (old
// format) or in partial lengths, which GnuPG uses whenever it streams.
func readPacketHeader(r *bufio.Reader) (tag byte, body io.Reader, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	if b&0x80 == 0 {
		return 0, nil, errors.New("packet tag without its high bit")
	}
	if b&0x40 == 0 { // old format
		tag = (b & 0x3f) >> 2
		lt := b & 3
		if lt == 3 {
			return tag, r, nil
		}
		var n int64
		for range 1 << lt {
			c, err := r.ReadByte()
			if err != nil {
				return 0, nil, unexpected(err)
			}
			n = n<<8 | int64(c)
		}
		return tag, &span{r: r, n: n}, nil
	}
	tag = b & 0x3f
	n, partial, err := readLength(r)
	if err != nil {
		return 0, nil, err
	}
	if partial {
		return tag, &partialBody{r: r, n: n, more: true}, nil
	}
	return tag, &span{r: r, n: n}, nil
}

// readLength reads a new-format length (RFC 4880 4.2.2).
func readLength(r *bufio.Reader) (n int64, partial bool, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, false, unexpected(err)
	}
	switch {
	case b < 192:
		return int64(b), false, nil
	case b < 224:
		c, err := r.ReadByte()
		if err != nil {
			return 0, false, unexpected(err)
		}
		return int64(b-192)<<8 + int64(c) + 192, false, nil
	case b < 255:
		return 1 << (b & 0x1f), true, nil
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return 0, false, unexpected(err)
	}
	return int64(l[0])<<24 | int64(l[1])<<16 | int64(l[2])<<8 | int64(l[3]), false, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// span is a definite-length body.
type span struct {
	r io.Reader
	n int64
}

func (s *span) Read(b []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > s.n {
		b = b[:s.n]
	}
	n, err := s.r.Read(b)
	s.n -= int64(n)
	if s.n > 0 && err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if s.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// partialBody is a body in partial lengths: each chunk is followed by the
// next length, until a definite one ends the packet.
type partialBody struct {
	r    *bufio.Reader
	n    int64 // left in this chunk
	more bool  // this chunk is partial: another length follows
}

func (p *partialBody) Read(b []byte) (int, error) {
	for p.n == 0 {
		if !p.more {
			return 0, io.EOF
		}
		var err error
		if p.n, p.more, err = readLength(p.r); err != nil {
			return 0, err
		}
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n, err := p.r.Read(b)
	p.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
