// Package inflate decodes DEFLATE (RFC 1951) and zlib (RFC 1950) streams
// for the SEIPD fast path (providers/pgpkey/seipd.go), faster than
// compress/flate and klauspost/compress on table-like data.
//
// It accepts and rejects exactly the streams compress/flate and
// compress/zlib accept and reject (which is what go-crypto decompresses
// with), and produces the same bytes: FuzzInflate and FuzzZlib compare
// them. The errors differ in kind (they are all "corrupt" to the caller).
//
// What makes it faster, after libdeflate:
//   - a 64-bit bit buffer refilled eight bytes at a time from a buffered
//     input, so one refill covers a whole length/distance pair;
//   - Huffman tables indexed by 11 (literal/length) or 8 (distance) bits
//     at once, with second-level tables for the rare longer codes, whose
//     entries carry the length or distance base and extra-bit count;
//   - output decoded straight into one flat buffer behind 32 KiB of
//     history, matches copied eight bytes at a time, so there is no ring
//     window and no second copy of every byte.
package inflate

import (
	"encoding/binary"
	"errors"
	"hash"
	"hash/adler32"
	"io"
	"math/bits"
)

// Errors. A stream that ends early is io.ErrUnexpectedEOF; a read error
// of the source is returned as it is.
var (
	ErrCorrupt    = errors.New("inflate: corrupt deflate stream")
	ErrHeader     = errors.New("zlib: invalid header")
	ErrDictionary = errors.New("zlib: preset dictionary not supported")
	ErrChecksum   = errors.New("zlib: invalid checksum")
)

const (
	histSize = 32 << 10  // the DEFLATE window
	outSize  = 256 << 10 // output decoded per round
	maxMatch = 258
	// The window holds the history, a round's output, and room for one
	// more match plus the eight-byte overrun of word copies.
	winSize = histSize + outSize + maxMatch + 16
	inSize  = 64<<10 + 16 // reads of at least 64 KiB pass through a 64 KiB bufio.Reader

	litBits  = 11 // primary table index bits, literal/length code
	distBits = 8  // distance code
	clBits   = 7  // code-length code (no code is longer)
)

// Table entries (uint32): bits 0-7 the bits to consume, 8-11 extra bits
// to read after them (for a link: the second-level index bits), 12-15 the
// kind, 16-31 the value (literal, length or distance base, or the offset
// of the second-level table). Zero is an unused code: corrupt input.
const (
	kindLit  = 1 << 12 // literal byte; in the distance and code-length tables: a valid symbol
	kindLen  = 1 << 13 // length base
	kindEOB  = 1 << 14 // end of block
	kindLink = 1 << 15 // second-level table
)

type state int

const (
	stateHeader  state = iota // at a block header
	stateStored               // in a stored block: stored bytes left
	stateHuffman              // in a compressed block
	stateDone                 // after the final block (and the zlib trailer)
)

// Reader decompresses a DEFLATE stream, or a zlib one (NewZlibReader).
type Reader struct {
	r    io.Reader
	rerr error // what ended the input; reported only if input is needed

	in       []byte
	ip, iend int // in[ip:iend] is unread input

	// The bit buffer: nbits valid low bits. The bits above them are the
	// bytes that follow (in[ip:]) or zero, never anything else.
	bits     uint64
	nbits    uint
	overread int // zero bytes added to the bit buffer after the input ended

	win    []byte
	rp, wp int // win[rp:wp] is decoded and not yet returned

	st     state
	final  bool // the current block is the last
	stored int  // bytes left in a stored block
	err    error

	zlib  bool
	adler hash.Hash32

	lit  []uint32 // literal/length table of the current block
	dist []uint32 // distance table: all zero (corrupt) if the block has no distance codes

	litDyn, distDyn []uint32 // tables of dynamic blocks, reused
	lens            [maxLit + maxDist]uint8
}

const (
	maxLit  = 286
	maxDist = 30
)

// NewReader returns a Reader for the raw DEFLATE stream in r. The Reader
// may read r beyond the end of the stream.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, in: make([]byte, inSize), win: make([]byte, winSize),
		litDyn: make([]uint32, 0, 4096), distDyn: make([]uint32, 0, 1024)}
}

// NewZlibReader returns a Reader for the zlib stream in r: a header (no
// preset dictionary), DEFLATE data, and the Adler-32 of the data, which
// the Reader checks before it returns io.EOF.
func NewZlibReader(r io.Reader) (*Reader, error) {
	z := NewReader(r)
	z.zlib, z.adler = true, adler32.New()
	h, err := z.bytes(2)
	if err != nil {
		return nil, err
	}
	h0, h1 := byte(h), byte(h>>8)
	if h0&0x0f != 8 || h0>>4 > 7 || (uint(h0)<<8|uint(h1))%31 != 0 {
		return nil, ErrHeader
	}
	if h1&0x20 != 0 {
		// A preset dictionary. compress/zlib, given none (as go-crypto
		// gives it), accepts only the ID of an empty one: Adler-32 1.
		id, err := z.bytes(4)
		if err != nil {
			return nil, err
		}
		if bits.ReverseBytes32(uint32(id)) != 1 {
			return nil, ErrDictionary
		}
	}
	return z, nil
}

// bytes reads n <= 4 whole bytes (the stream is byte-aligned), low byte
// first.
func (z *Reader) bytes(n uint) (uint64, error) {
	z.drop(z.nbits & 7)
	if !z.need(8 * n) {
		return 0, z.err
	}
	v := z.bits & (1<<(8*n) - 1)
	z.drop(8 * n)
	if z.overread > 0 && uint(z.overread)*8 > z.nbits {
		return 0, z.truncated()
	}
	return v, nil
}

// Read returns decompressed data; io.EOF once the stream ended and, for
// zlib, its checksum matched. It decodes no more than len(p) bytes ahead
// (and reads input only as that needs, give or take eight bytes), so a
// small read near the start does not read far into the input.
func (z *Reader) Read(p []byte) (int, error) {
	n := 0
	for {
		k := copy(p[n:], z.win[z.rp:z.wp])
		z.rp += k
		n += k
		// A round may stop a match past what was asked: decode on rather
		// than return those few bytes alone.
		if n == len(p) || z.err != nil {
			break
		}
		z.round(min(len(p)-n, outSize))
	}
	if n > 0 {
		return n, nil
	}
	return 0, z.err
}

// round decodes about want more bytes into the window, all of which were
// returned before, sliding the last 32 KiB of history to the front when
// the window is full.
func (z *Reader) round(want int) {
	if z.wp+want > histSize+outSize {
		h := min(z.wp, histSize)
		z.wp = copy(z.win, z.win[z.wp-h:z.wp])
		z.rp = z.wp
	}
	start := z.wp
	limit := z.wp + want
	for z.err == nil && z.wp < limit {
		switch z.st {
		case stateHeader:
			z.header()
		case stateStored:
			z.copyStored(limit)
		case stateHuffman:
			z.decode(limit)
		case stateDone:
			z.err = io.EOF
		}
	}
	if z.overread > 0 && uint(z.overread)*8 > z.nbits {
		// Bits after the end of the input were used: what they made is
		// not output, and the input was too short.
		z.wp = start
		z.err = z.truncated()
	}
	if z.zlib && z.wp > start {
		z.adler.Write(z.win[start:z.wp])
	}
	if z.err == io.EOF && z.zlib {
		z.trailer()
	}
	z.rp = start
}

// truncated is the error for input that ended too early.
func (z *Reader) truncated() error {
	if z.rerr != nil && z.rerr != io.EOF {
		return z.rerr
	}
	return io.ErrUnexpectedEOF
}

// trailer checks the zlib Adler-32 after the final block; everything
// decoded was hashed.
func (z *Reader) trailer() {
	v, err := z.bytes(4)
	if err != nil {
		z.err = err
		return
	}
	if bits.ReverseBytes32(uint32(v)) != z.adler.Sum32() {
		z.err = ErrChecksum
	}
}

// fill reads more input; it is called with in[ip:iend] empty or nearly.
func (z *Reader) fill() {
	if z.rerr != nil {
		return
	}
	if z.ip > 0 {
		z.iend = copy(z.in, z.in[z.ip:z.iend])
		z.ip = 0
	}
	for range 100 { // as bufio does, give up on a reader that sends nothing
		n, err := z.r.Read(z.in[z.iend:])
		z.iend += n
		if err != nil {
			z.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	z.rerr = io.ErrNoProgress
}

// refill tops the bit buffer up to at least 56 bits: eight bytes at a
// time when there are, else a byte at a time, reading more input, and
// after the end of the input with zero bytes that round counts.
func (z *Reader) refill() {
	if z.ip+8 <= z.iend {
		z.bits |= binary.LittleEndian.Uint64(z.in[z.ip:]) << z.nbits
		k := (63 - z.nbits) >> 3
		z.ip += int(k)
		z.nbits += k << 3
		return
	}
	for z.nbits <= 56 {
		if z.ip == z.iend {
			if z.rerr == nil {
				z.fill()
				if z.ip+8 <= z.iend {
					z.refill()
					return
				}
				continue
			}
			z.overread++
			z.nbits += 8
			continue
		}
		z.bits |= uint64(z.in[z.ip]) << z.nbits
		z.ip++
		z.nbits += 8
	}
}

// need makes n <= 56 bits available; false (with err set) if the input
// ended well before them.
func (z *Reader) need(n uint) bool {
	if z.nbits < n {
		z.refill()
	}
	if z.overread > 8 {
		z.err = z.truncated()
		return false
	}
	return true
}

func (z *Reader) drop(n uint) {
	z.bits >>= n
	z.nbits -= n
}

func (z *Reader) header() {
	if z.final {
		z.st = stateDone
		return
	}
	if !z.need(3) {
		return
	}
	z.final = z.bits&1 == 1
	typ := (z.bits >> 1) & 3
	z.drop(3)
	switch typ {
	case 0:
		z.startStored()
	case 1:
		z.lit, z.dist = fixedLit, fixedDist
		z.st = stateHuffman
	case 2:
		z.dynamic()
	default:
		z.err = ErrCorrupt
	}
}

func (z *Reader) startStored() {
	z.drop(z.nbits & 7)
	if !z.need(32) {
		return
	}
	n, nn := uint16(z.bits), uint16(z.bits>>16)
	z.drop(32)
	if nn != ^n {
		z.err = ErrCorrupt
		return
	}
	z.stored = int(n)
	z.st = stateStored
}

// copyStored copies stored bytes: first those in the bit buffer, then
// straight from the input.
func (z *Reader) copyStored(limit int) {
	for z.stored > 0 && z.nbits >= 8 && z.wp < limit {
		z.win[z.wp] = byte(z.bits)
		z.wp++
		z.drop(8)
		z.stored--
	}
	if z.nbits < 8 {
		// The bits above nbits were in[ip:]: the copy below moves ip on.
		z.bits &= 1<<z.nbits - 1
	}
	for z.stored > 0 && z.wp < limit {
		if z.ip == z.iend {
			if z.rerr != nil {
				z.err = z.truncated()
				return
			}
			z.fill()
			continue
		}
		n := copy(z.win[z.wp:min(limit, z.wp+z.stored)], z.in[z.ip:z.iend])
		z.ip += n
		z.wp += n
		z.stored -= n
	}
	if z.stored == 0 {
		z.st = stateHeader
	}
}

var codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads the code lengths of a dynamic block and builds its tables.
func (z *Reader) dynamic() {
	if !z.need(14) {
		return
	}
	nlit := int(z.bits&0x1f) + 257
	ndist := int(z.bits>>5&0x1f) + 1
	nclen := int(z.bits>>10&0xf) + 4
	z.drop(14)
	if nlit > maxLit || ndist > maxDist {
		z.err = ErrCorrupt
		return
	}
	var cl [19]uint8
	for i := range nclen {
		if !z.need(3) {
			return
		}
		cl[codeOrder[i]] = uint8(z.bits & 7)
		z.drop(3)
	}
	var clTable [1 << clBits]uint32
	if _, ok := build(clTable[:0:len(clTable)], clBits, cl[:], clEntry); !ok {
		z.err = ErrCorrupt
		return
	}
	lens := z.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if !z.need(7 + 7) {
			return
		}
		e := clTable[z.bits&(1<<clBits-1)]
		if e == 0 {
			z.err = ErrCorrupt
			return
		}
		z.drop(uint(e & 0xff))
		x := e >> 16
		if x < 16 {
			lens[i] = uint8(x)
			i++
			continue
		}
		var rep int
		var v uint8
		switch x {
		case 16:
			if i == 0 {
				z.err = ErrCorrupt
				return
			}
			rep, v = 3+int(z.bits&3), lens[i-1]
			z.drop(2)
		case 17:
			rep = 3 + int(z.bits&7)
			z.drop(3)
		default: // 18
			rep = 11 + int(z.bits&0x7f)
			z.drop(7)
		}
		if i+rep > len(lens) {
			z.err = ErrCorrupt
			return
		}
		for range rep {
			lens[i] = v
			i++
		}
	}
	var ok1, ok2 bool
	z.litDyn, ok1 = build(z.litDyn[:0], litBits, lens[:nlit], litEntry)
	z.distDyn, ok2 = build(z.distDyn[:0], distBits, lens[nlit:], distEntry)
	if !ok1 || !ok2 {
		z.err = ErrCorrupt
		return
	}
	z.lit, z.dist = z.litDyn, z.distDyn
	z.st = stateHuffman
}

// decode decodes a compressed block until its end or until the output
// reaches limit.
func (z *Reader) decode(limit int) {
	lit, dist, win := z.lit, z.dist, z.win
	// The first-level tables as arrays: indexing them by masked bits
	// needs no bounds check.
	litTop := (*[1 << litBits]uint32)(lit)
	distTop := (*[1 << distBits]uint32)(dist)
	bitbuf, nbits, wp := z.bits, z.nbits, z.wp
	in, ip, iend := z.in, z.ip, z.iend
	const litMask, distMask = 1<<litBits - 1, 1<<distBits - 1
	for wp < limit {
		// One refill covers the longest length/distance pair: 15+5+15+13.
		if nbits < 48 {
			if ip+8 <= iend {
				bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << nbits
				k := (63 - nbits) >> 3
				ip += int(k)
				nbits += k << 3
			} else {
				z.bits, z.nbits, z.ip = bitbuf, nbits, ip
				z.refill()
				bitbuf, nbits, ip, in, iend = z.bits, z.nbits, z.ip, z.in, z.iend
				if z.overread > 8 {
					z.err = z.truncated()
					break
				}
			}
		}
		e := litTop[bitbuf&litMask]
		if e&kindLit != 0 {
			bitbuf >>= e & 0xff
			nbits -= uint(e & 0xff)
			win[wp] = byte(e >> 16)
			wp++
			continue
		}
		if e&kindLink != 0 {
			bitbuf >>= litBits
			nbits -= litBits
			e = lit[uint(e>>16)+uint(bitbuf&(1<<(e>>8&0xf)-1))]
			if e&kindLit != 0 {
				bitbuf >>= e & 0xff
				nbits -= uint(e & 0xff)
				win[wp] = byte(e >> 16)
				wp++
				continue
			}
		}
		if e&kindLen == 0 {
			if e&kindEOB != 0 {
				bitbuf >>= e & 0xff
				nbits -= uint(e & 0xff)
				z.st = stateHeader
			} else {
				z.err = ErrCorrupt
			}
			break
		}
		bitbuf >>= e & 0xff
		nbits -= uint(e & 0xff)
		extra := e >> 8 & 0xf
		length := int(e>>16) + int(bitbuf&(1<<extra-1))
		bitbuf >>= extra
		nbits -= uint(extra)

		d := distTop[bitbuf&distMask]
		if d&kindLink != 0 {
			bitbuf >>= distBits
			nbits -= distBits
			d = dist[uint(d>>16)+uint(bitbuf&(1<<(d>>8&0xf)-1))]
		}
		if d&kindLit == 0 {
			z.err = ErrCorrupt
			break
		}
		bitbuf >>= d & 0xff
		nbits -= uint(d & 0xff)
		extra = d >> 8 & 0xf
		off := int(d>>16) + int(bitbuf&(1<<extra-1))
		bitbuf >>= extra
		nbits -= uint(extra)
		if off > wp {
			z.err = ErrCorrupt
			break
		}
		src := wp - off
		if off >= 8 {
			// Eight bytes at a time, up to seven past the end (the window
			// has room): each word read was written before, as off >= 8.
			for i := 0; i < length; i += 8 {
				binary.LittleEndian.PutUint64(win[wp+i:], binary.LittleEndian.Uint64(win[src+i:]))
			}
		} else if off == 1 {
			b := win[src]
			w := win[wp : wp+length]
			for i := range w {
				w[i] = b
			}
		} else {
			w := win[wp : wp+length]
			s := win[src : src+length]
			for i := range w {
				w[i] = s[i]
			}
		}
		wp += length
	}
	z.bits, z.nbits, z.wp, z.ip = bitbuf, nbits, wp, ip
}

// Length and distance bases and extra bits (RFC 1951 3.2.5).
var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}

	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// litEntry is a literal/length symbol's entry, less its code length.
// Symbols 286 and 287 (only the fixed code has them) are corrupt.
func litEntry(sym int) uint32 {
	switch {
	case sym < 256:
		return kindLit | uint32(sym)<<16
	case sym == 256:
		return kindEOB
	case sym < maxLit:
		return kindLen | uint32(lenBase[sym-257])<<16 | uint32(lenExtra[sym-257])<<8
	}
	return 0
}

// distEntry is a distance symbol's entry; 30 and 31 are corrupt.
func distEntry(sym int) uint32 {
	if sym < maxDist {
		return kindLit | uint32(distBase[sym])<<16 | uint32(distExtra[sym])<<8
	}
	return 0
}

func clEntry(sym int) uint32 { return kindLit | uint32(sym)<<16 }

// The fixed codes (RFC 1951 3.2.6).
var fixedLit, fixedDist = func() ([]uint32, []uint32) {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	var d [32]uint8
	for i := range d {
		d[i] = 5
	}
	lit, ok1 := build(nil, litBits, l[:], litEntry)
	dist, ok2 := build(nil, distBits, d[:], distEntry)
	if !ok1 || !ok2 {
		panic("inflate: fixed codes")
	}
	return lit, dist
}()

// build makes the decoding table for the canonical Huffman code with the
// given code lengths (RFC 1951 3.2.2) in t's storage: 1<<pbits entries
// indexed by the next pbits input bits, then second-level tables for
// longer codes. It accepts what compress/flate accepts: no lengths at all
// (every lookup then fails), a complete code, or a single code of length
// 1 (its other half fails); anything else is false.
func build(t []uint32, pbits int, lens []uint8, entry func(int) uint32) ([]uint32, bool) {
	var count [16]int
	maxLen := 0
	for _, l := range lens {
		count[l]++
		maxLen = max(maxLen, int(l))
	}
	size := 1 << pbits
	t = append(t[:0], make([]uint32, size)...)
	if maxLen == 0 {
		return t, true
	}
	left := 1
	for l := 1; l <= 15; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return t, false // over-subscribed
		}
	}
	if left != 0 && !(maxLen == 1 && count[1] == 1) {
		return t, false // incomplete
	}
	var next [16]int
	for l, c := 1, 0; l <= 15; l++ {
		next[l] = c
		c = (c + count[l]) << 1
	}
	var codes [288]uint16 // each symbol's code, bit-reversed
	for s, l := range lens {
		if l > 0 {
			codes[s] = bits.Reverse16(uint16(next[l])) >> (16 - l)
			next[l]++
		}
	}
	if maxLen > pbits {
		// A second-level table per first-level index that longer codes
		// share, as wide as the longest of them needs.
		var sub [1 << litBits]uint8
		for s, l := range lens {
			if int(l) > pbits {
				p := int(codes[s]) & (size - 1)
				sub[p] = max(sub[p], l-uint8(pbits))
			}
		}
		for p, sb := range sub[:size] {
			if sb > 0 {
				t[p] = kindLink | uint32(len(t))<<16 | uint32(sb)<<8 | uint32(pbits)
				t = append(t, make([]uint32, 1<<sb)...)
			}
		}
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		e, r := entry(s), int(codes[s])
		if int(l) <= pbits {
			for i := r; i < size; i += 1 << l {
				t[i] = e | uint32(l)
			}
			continue
		}
		link := t[r&(size-1)]
		off, sb, k := int(link>>16), int(link>>8&0xf), int(l)-pbits
		for i := r >> pbits; i < 1<<sb; i += 1 << k {
			t[off+i] = e | uint32(k)
		}
	}
	return t, true
}
