package landing

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// quotedFast enables fast; tests turn it off to hold it to scan.
var quotedFast = true

// fast parses the record at buf[rec:w] if it has the shape EMIS sends on
// every row: each field quoted and free of `""`, its closing quote
// followed by the delimiter, LF or CRLF, all within the data read. It
// returns the record's length with its fields in p.fs, or 0 to leave the
// record to scan, which parses the same shape the same way: anything
// else, and every error, is scan's alone. It reads nothing.
//
// scan costs a call (bytes.IndexByte) per field. fast instead guesses
// that each field is as long as in the last record (GUIDs, dates and
// flags are), checks the guess with one 3-byte compare, and scans only
// the fields that change; one bytes.Count of the record's quotes then
// proves the guesses (see tryFast).
func (p *quotedRecords) fast() int {
	if p.skip > 0 {
		p.skip--
		return 0
	}
	if len(p.pred) < cap(p.fs) { // scan grew fs
		p.growFields(0)
	}
	guess := true
	for {
		switch n := p.tryFast(guess); n {
		case fastRetry:
			guess = false // a guess went wrong; scanning every field is exact
		case fastGrow:
			p.growFields(16)
		case fastOther:
			// Where records of other shapes come in a row, as in a table
			// with `""` in every row, trying fast on each would cost more
			// than it saves: leave the next few to scan.
			p.backoff = min(2*p.backoff+1, 31)
			p.skip = p.backoff
			return 0
		default:
			if n > 0 {
				p.backoff = 0
			}
			return n
		}
	}
}

// growFields makes room for more fields in p.fs, keeping its length, and
// a guess for each: tryFast checks one bound for both.
func (p *quotedRecords) growFields(more int) {
	p.fs = slices.Grow(p.fs, cap(p.fs)-len(p.fs)+more)
	for len(p.pred) < cap(p.fs) {
		p.pred = append(p.pred, -1) // unknown: scan
	}
}

// What tryFast returns besides a record's length, or 0 when the data
// ends before the record does.
const (
	fastRetry = -1 // try again without guessing
	fastGrow  = -2 // try again with room for more fields
	fastOther = -3 // a record of another shape
)

// tryFast is fast's one attempt. p.pred has an entry per column: its
// length in the last record, n >= 0, when that is worth guessing (the
// same as in the record before), else -n-1.
//
// A field is found by a guess, its closing quote checked, or by scanning
// for the first quote after the opening one; either way the byte after
// it must be a delimiter followed by the next opening quote, or a line
// end. The 2k quotes of k fields so found are all quotes of the record
// exactly when bytes.Count finds no others, and then each closing quote
// is the first after its opening one: the field scan finds. Without
// guessing, every field is scanned and there is nothing to check.
func (p *quotedRecords) tryFast(guess bool) int {
	b := p.buf[p.rec:p.w]
	if len(b) == 0 || b[0] != '"' {
		return fastOther // next does not call fast without data
	}
	fs := p.fs[:cap(p.fs)]
	pred := p.pred[:len(fs)]
	delim := p.delim
	qdq := uint32('"') | uint32(delim)<<8 | '"'<<16 // `","` little-endian
	// b[o] is field k's opening quote.
	o, k := 0, 0
	for {
		if guess {
			// The usual field: as long as guessed, followed by `","`.
			for ; k < len(fs); k++ {
				v := pred[k]
				c := o + 1 + v
				if v < 0 || c >= len(b)-3 || binary.LittleEndian.Uint32(b[c:])&0xFFFFFF != qdq {
					break
				}
				fs[k] = b[o+1 : c : c]
				o = c + 2
			}
		}
		if k >= len(fs) {
			return fastGrow
		}
		v := pred[k]
		c := -1
		if guess && v >= 0 {
			// The guess may still hold: the last field, the end of the data.
			if c = o + 1 + v; c+1 >= len(b) || b[c] != '"' {
				c = -1
			} else if d := b[c+1]; d != delim && d != '\n' && d != '\r' {
				c = -1
			}
		}
		if c < 0 {
			if c = nextQuote(b, o+1); c < 0 {
				return giveUp(b, 2*k+1, guess, 0)
			}
			if n := c - o - 1; n == v || n == -v-1 {
				pred[k] = n // twice the same length: guess it next time
			} else {
				pred[k] = -n - 1
			}
		}
		fs[k] = b[o+1 : c : c]
		k++
		if c+1 >= len(b) {
			return giveUp(b, 2*k, guess, 0)
		}
		n := 0
		// scan's order of tests, should the delimiter be a line end.
		switch d := b[c+1]; {
		case d == delim:
			o = c + 2
			if o >= len(b) {
				return giveUp(b, 2*k, guess, 0)
			}
			if b[o] != '"' {
				return giveUp(b[:c+1], 2*k, guess, fastOther)
			}
			continue
		case d == '\n':
			n = c + 2
		case d == '\r' && c+2 < len(b) && b[c+2] == '\n':
			n = c + 3
		case d == '\r' && c+2 == len(b):
			return giveUp(b, 2*k, guess, 0)
		default:
			return giveUp(b[:c+1], 2*k, guess, fastOther) // `""`, or a quote then other bytes
		}
		if guess && bytes.Count(b[:n], quote) != 2*k {
			return fastRetry
		}
		p.fs = fs[:k]
		return n
	}
}

// giveUp is tryFast's result, why (0 or fastOther), for a record it
// cannot take, with the given number of quotes found in b; unless those
// are not all of b's: then a guess may be at fault. When they are, the
// fields so far are scan's, and so is the trouble.
func giveUp(b []byte, quotes int, guess bool, why int) int {
	if guess && bytes.Count(b, quote) != quotes {
		return fastRetry
	}
	return why
}

var quote = []byte{'"'}

// nextQuote is the index of the first '"' in b from b[i] on, or -1. The
// fields it is for are mostly short: it looks at 8 bytes before it calls
// bytes.IndexByte.
func nextQuote(b []byte, i int) int {
	if len(b)-i >= 8 {
		if m := quotes8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	if k := bytes.IndexByte(b[i:], '"'); k >= 0 {
		return i + k
	}
	return -1
}

// quotes8 sets the top bit of each byte of x that is '"', and no other
// bit. It is exact, unlike the usual has-zero-byte test, whose borrows
// can mark the byte after a match.
func quotes8(x uint64) uint64 {
	const lo7, hi = 0x7F7F7F7F7F7F7F7F, 0x8080808080808080
	t := x ^ 0x2222222222222222 // zero where x is '"'
	return ^((t&lo7 + lo7) | t) & hi
}
