package landing

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// source is the byte stage of Check: it reads the plaintext, strips a
// leading BOM, rejects bytes no table may hold (NUL, invalid UTF-8,
// undefined Windows-1252 codes), decodes to UTF-8, and tees the decoded
// bytes to the output and the hash as the parser sees them. So the landed
// file is the input (decoded), byte for byte, never a re-serialised copy. When it finds a bad byte it first delivers everything before it, so
// the parser reports any earlier error first.
type source struct {
	ra  *readAhead
	tee *tee
	enc Encoding

	cur   *raBuf            // the read-ahead buffer being parsed, if any
	keep  [utf8.UTFMax]byte // bytes held back for the next read: a cut rune
	nkeep int               // or a possible BOM
	dec   []byte            // Windows-1252 decode buffer
	pend  []byte            // validated bytes not yet handed to the parser
	err   error             // returned once pend is drained

	started bool
	lines   int64 // newlines handed on so far
	out     int64 // bytes handed on (and written)

	// Guard against a record that never ends: Check sets recEnd to the
	// parser's offset after each record; fill refuses to run further ahead.
	recEnd, limit int64
}

const readBuffer = 256 << 10

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// win1252 maps each byte to its UTF-8 encoding; nil marks the five bytes
// Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D).
var win1252 = func() (t [256][]byte) {
	for b := range 256 {
		r := charmap.Windows1252.DecodeByte(byte(b))
		if r != utf8.RuneError {
			t[b] = utf8.AppendRune(nil, r)
		}
	}
	return t
}()

func newSource(r io.Reader, w io.Writer, h hash.Hash, enc Encoding, limit int64) *source {
	ra := startReadAhead(r)
	s := &source{ra: ra, tee: startTee(w, h, ra), enc: enc, limit: limit}
	if enc == Windows1252 {
		s.dec = make([]byte, 0, 3*readBuffer) // at most 3 UTF-8 bytes per input byte
	}
	return s
}

func (s *source) Read(p []byte) (int, error) {
	for len(s.pend) == 0 && s.err == nil {
		s.fill()
	}
	if len(s.pend) == 0 {
		return 0, s.err
	}
	n := copy(p, s.pend)
	s.pend = s.pend[n:]
	return n, nil
}

// fill reads the next chunk into pend, or sets err.
func (s *source) fill() {
	// A write error stops the check; the output is incomplete anyway.
	if err := s.tee.failed(); err != nil {
		s.err = err
		return
	}
	if s.enc == Windows1252 {
		// The decode buffer is about to be reused: its last chunk must
		// be written.
		if err := s.tee.flush(); err != nil {
			s.err = err
			return
		}
	}
	if s.out-s.recEnd > s.limit+2*readBuffer {
		s.err = errRecordTooLong
		return
	}
	// The parser is done with the previous buffer (it copies what it
	// reads); the tee lets go of it on its own.
	s.ra.release(s.cur)
	s.cur = nil
	c, ok := s.ra.next()
	if !ok {
		s.err = io.ErrClosedPipe // unreachable: fill stops at the first error
		return
	}
	s.cur = c.buf
	// The held-back bytes go in the headroom just before the new data.
	k := copy(c.buf.b[readHeadroom-s.nkeep:], s.keep[:s.nkeep])
	buf := c.buf.b[readHeadroom-k : readHeadroom+c.n]
	rerr := c.err
	eof := rerr != nil
	s.nkeep = 0
	if !s.started {
		// Wait for enough bytes to recognise a BOM.
		if len(buf) < len(utf8BOM) && !eof {
			s.nkeep = copy(s.keep[:], buf)
			return
		}
		s.started = true
		if bytes.HasPrefix(buf, utf8BOM) {
			if s.enc == Windows1252 {
				s.err = &FormatError{Line: 1, Reason: "UTF-8 byte order mark in a file declared Windows-1252"}
				return
			}
			buf = buf[len(utf8BOM):]
		}
	}
	var tail []byte
	if s.enc == UTF8 && !eof {
		buf, tail = splitIncompleteRune(buf)
	}
	var bad error
	if i, why := s.badByte(buf); i >= 0 {
		bad = &FormatError{Line: int(s.lines) + bytes.Count(buf[:i], nl) + 1, Reason: why}
		buf, tail = buf[:i], nil
	}
	if s.enc == Windows1252 {
		buf = decode1252(s.dec[:0], buf)
	}
	if len(buf) > 0 {
		if s.enc == Windows1252 {
			s.tee.send(buf, nil)
		} else {
			// The tee holds the buffer until it has written it.
			s.cur.refs.Add(1)
			s.tee.send(buf, s.cur)
		}
		s.out += int64(len(buf))
		s.lines += int64(bytes.Count(buf, nl))
	}
	s.pend = buf // may alias raw: the next fill runs only once it is drained
	s.nkeep = copy(s.keep[:], tail)
	switch {
	case bad != nil:
		s.err = bad
	case rerr != nil:
		s.err = rerr
	}
}

var nl = []byte{'\n'}

// finish stops the read-ahead (waiting for a read in flight, so r is not
// used after Check returns), waits for the output and stops the tee; it
// returns the first write error.
func (s *source) finish() error {
	s.ra.stop()
	err := s.tee.stop()
	// Neither goroutine runs now, and the parser copied what it read, so
	// no buffer is in use: the next file's check can have them.
	for _, b := range s.ra.all {
		raPool.Put(b)
	}
	s.ra.all, s.cur, s.pend = nil, nil, nil
	return err
}

// readHeadroom is free space before each read-ahead buffer's data, where
// fill puts the bytes it held back from the previous one.
const readHeadroom = utf8.UTFMax

// readAheadBuffers bounds the read-ahead: this many buffers of readBuffer
// bytes, whatever the input size.
const readAheadBuffers = 8

// readAhead reads the input on its own goroutine, so the work behind r
// (for an encrypted file: decryption and inflating) runs on one core while
// the parser works on another. Buffers cycle between the reader, the
// parser and the tee through channels, so memory is fixed.
type readAhead struct {
	full    chan chunk
	free    chan *raBuf
	quit    chan struct{}
	exited  chan struct{}
	stopped bool
	// all is every buffer the reader took, written only by the reader
	// until it has exited; finish returns them to raPool.
	all []*raBuf
}

// raBuf is a read-ahead buffer: readHeadroom bytes, then the data. It
// goes back to the reader when both the parser and the tee (if it was
// given the data) let go of it.
type raBuf struct {
	b    []byte
	refs atomic.Int32
}

// raPool keeps read-ahead buffers from one file's check for the next: a
// batch checks many files, and making (and zeroing) 2 MiB of buffers
// for each was a twentieth of a batch's CPU.
var raPool = sync.Pool{New: func() any { return &raBuf{b: make([]byte, readHeadroom+readBuffer)} }}

type chunk struct {
	buf *raBuf
	n   int
	err error
}

func startReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{full: make(chan chunk, readAheadBuffers), free: make(chan *raBuf, readAheadBuffers),
		quit: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(ra.exited)
		empty := 0
		for {
			b, ok := ra.take()
			if !ok {
				return
			}
			n, err := r.Read(b.b[readHeadroom:])
			if n == 0 && err == nil {
				// Nothing read: try again, a few times, as bufio does.
				if empty++; empty < 100 {
					ra.free <- b
					continue
				}
				err = io.ErrNoProgress
			}
			empty = 0
			b.refs.Store(1) // the parser's
			select {
			case ra.full <- chunk{buf: b, n: n, err: err}:
			case <-ra.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

// take returns a free buffer for the reader: one given back, else a new
// one while fewer than readAheadBuffers are out (so a small file takes
// one), else the next given back. ok is false once stop is called.
func (ra *readAhead) take() (b *raBuf, ok bool) {
	select {
	case b = <-ra.free:
		return b, true
	case <-ra.quit:
		return nil, false
	default:
	}
	if len(ra.all) < readAheadBuffers {
		b = raPool.Get().(*raBuf)
		ra.all = append(ra.all, b)
		return b, true
	}
	select {
	case b = <-ra.free:
		return b, true
	case <-ra.quit:
		return nil, false
	}
}

// next returns the next chunk read; ok is false only after stop.
func (ra *readAhead) next() (c chunk, ok bool) {
	select {
	case c = <-ra.full:
		return c, true
	case <-ra.exited:
		// The reader may have queued its last chunk just before exiting.
		select {
		case c = <-ra.full:
			return c, true
		default:
			return chunk{}, false
		}
	}
}

// release drops one hold on b; the last returns it to the reader. The
// free channel has room for every buffer, so this never blocks.
func (ra *readAhead) release(b *raBuf) {
	if b != nil && b.refs.Add(-1) == 0 {
		ra.free <- b
	}
}

// stop ends the reader and waits for it, so r is not in use afterwards.
func (ra *readAhead) stop() {
	if !ra.stopped {
		ra.stopped = true
		close(ra.quit)
		<-ra.exited
	}
}

// tee writes and hashes the chunks on its own goroutine, in order, while
// the parser works through the same and later chunks, so hashing and disk
// writes overlap with parsing on a second core. Chunks queue (as many as
// there are read-ahead buffers, which bound them), so neither side waits
// for the other chunk by chunk; the tee releases each read-ahead buffer
// once written.
type tee struct {
	work    chan teeChunk
	done    chan struct{} // closed when the goroutine has ended
	fail    atomic.Bool   // err is set
	err     error         // first write error, set by the goroutine
	stopped bool
}

type teeChunk struct {
	data []byte
	buf  *raBuf        // released once data is written, if not nil
	ack  chan struct{} // closed when everything before it is written
}

func startTee(w io.Writer, h hash.Hash, ra *readAhead) *tee {
	t := &tee{work: make(chan teeChunk, readAheadBuffers+1), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		for c := range t.work {
			if c.ack != nil {
				close(c.ack)
				continue
			}
			if t.err == nil {
				if _, err := w.Write(c.data); err != nil {
					t.err = fmt.Errorf("write output: %w", err)
					t.fail.Store(true)
				}
			}
			h.Write(c.data)
			ra.release(c.buf)
		}
	}()
	return t
}

func (t *tee) send(b []byte, buf *raBuf) { t.work <- teeChunk{data: b, buf: buf} }

// failed returns the write error if there has been one so far.
func (t *tee) failed() error {
	if t.fail.Load() {
		return t.err
	}
	return nil
}

// flush waits until every chunk sent is written and hashed.
func (t *tee) flush() error {
	if !t.stopped {
		ack := make(chan struct{})
		t.work <- teeChunk{ack: ack}
		<-ack
	}
	return t.failed()
}

// stop writes what is queued, ends the goroutine and returns the first
// write error.
func (t *tee) stop() error {
	if !t.stopped {
		t.stopped = true
		close(t.work)
		<-t.done
	}
	return t.err
}

// badByte returns the index of the first byte the encoding forbids and
// why, or -1. An incomplete UTF-8 sequence at the end is bad: the caller
// holds back a cut one until the next read.
func (s *source) badByte(b []byte) (int, string) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		// A NUL is only reported if nothing earlier is bad.
		if j, why := s.badByte(b[:i]); j >= 0 {
			return j, why
		}
		return i, "NUL byte"
	}
	switch s.enc {
	case UTF8:
		if utf8.Valid(b) {
			return -1, ""
		}
		for i := 0; i < len(b); {
			if b[i] < utf8.RuneSelf {
				i++
				continue
			}
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, fmt.Sprintf("invalid UTF-8 (byte 0x%02X)", b[i])
			}
			i += size
		}
	case Windows1252:
		for i := asciiPrefix(b); i < len(b); i++ {
			if c := b[i]; c >= utf8.RuneSelf && win1252[c] == nil {
				return i, fmt.Sprintf("byte 0x%02X is undefined in Windows-1252", c)
			}
		}
	}
	return -1, ""
}

// splitIncompleteRune splits off a UTF-8 sequence cut by the end of the
// buffer so it can be completed by the next read.
func splitIncompleteRune(b []byte) (whole, tail []byte) {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i], b[len(b)-i:]
			}
			break
		}
	}
	return b, nil
}

// decode1252 appends the UTF-8 form of src (already checked) to dst.
func decode1252(dst, src []byte) []byte {
	for len(src) > 0 {
		// Copy the ASCII run in one go; most of a table is ASCII.
		i := asciiPrefix(src)
		dst = append(dst, src[:i]...)
		src = src[i:]
		for len(src) > 0 && src[0] >= utf8.RuneSelf {
			dst = append(dst, win1252[src[0]]...)
			src = src[1:]
		}
	}
	return dst
}

// asciiPrefix is the length of b's leading ASCII run, found a word at a
// time since tables are almost all ASCII.
func asciiPrefix(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for i < len(b) && b[i] < utf8.RuneSelf {
		i++
	}
	return i
}
