package landing

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
)

// quotedRecords reads RFC 4180 records: the dialect with the '"' text
// qualifier, which EMIS uses on every field. It replaces encoding/csv on
// Check's hot path (about a fifth of decrypt+validate+land went to it:
// it copies each record into a new string) and works on one large buffer
// instead: bytes.IndexByte jumps from quote to quote, and fields are
// slices of the buffer, so no record or field allocates. Records of the
// usual shape take a faster path, fast (quotedfast.go).
//
// It accepts and rejects exactly what encoding/csv does as Check used it
// (Comma the delimiter; LazyQuotes, TrimLeadingSpace and Comment off; any
// number of fields), with the same *csv.ParseError values, and counts
// lines and offsets the same way; FuzzQuotedRecords and FuzzCheckParsers
// compare the two. encoding/csv's rules, which are mostly RFC 4180:
//   - Input is read a line at a time and a line's closing CRLF is read as
//     LF, inside quoted fields too; a lone CR is data.
//   - A CR just before the end of the input is dropped.
//   - Empty lines between records are skipped.
//   - A field starting with '"' is quoted. It ends at a '"' followed by
//     the delimiter, the end of the line or the end of the input; `""`
//     stands for one '"'. Any other '"', or the end of the input inside
//     the field, is ErrQuote.
//   - A '"' anywhere in an unquoted field is ErrBareQuote.
//   - A read error ends the input where it happens: a syntax error in the
//     bytes before it is reported first.
//
// Like bufio.Reader under encoding/csv, it reads only when the current
// record needs more bytes, so the source's guard against a record that
// never ends trips at the same point. A record's bytes stay in the buffer
// until the next one is read, wherever the reads cut it.
type quotedRecords struct {
	byteFields
	rd    io.Reader
	delim byte
	buf   []byte // buf[rec:w] is the current record and what follows it
	rec   int    // start of the current record
	n     int    // length of the current record, buf[rec:rec+n]
	w     int    // end of the data read
	err   error  // ends the input after buf[:w]: io.EOF, or a read error
	base  int64  // input offset of buf[0]
	lines int    // line being read: 1 + the newlines before it

	recLine, recEnd int // lines the current record starts and ends on

	// The record being scanned: the fields so far, relative to its start
	// (reads may move it), where the next one starts and how far into it
	// the scan got, and whether a quoted field holds `""`.
	spans        []span
	resume, from int
	escaped      bool

	pred []int // fast's guesses at the fields' lengths, one per column
	// Records to leave to scan, after one fast could not take, and how
	// many the next time.
	skip, backoff int
}

// span is a field: a quoted field's content without its enclosing quotes.
type span struct{ start, end int }

// errMore asks next for more input; it never leaves this file.
var errMore = errors.New("more input needed")

// newQuotedRecords reads r with a buffer of size bytes to start with; it
// grows to hold the longest record.
func newQuotedRecords(r io.Reader, delim byte, size int) *quotedRecords {
	return &quotedRecords{rd: r, delim: delim, buf: make([]byte, size), lines: 1}
}

func (p *quotedRecords) line() int     { return p.recLine }
func (p *quotedRecords) endLine() int  { return p.recEnd }
func (p *quotedRecords) offset() int64 { return p.base + int64(p.rec+p.n) }

func (p *quotedRecords) next() error {
	p.rec += p.n
	p.n = 0
	// Skip empty lines: LF, CRLF, or a CR just before the end.
	for {
		b := p.buf[p.rec:p.w]
		switch {
		case len(b) > 0 && b[0] == '\n':
			p.rec++
			p.lines++
			continue
		case len(b) > 1 && b[0] == '\r' && b[1] == '\n':
			p.rec += 2
			p.lines++
			continue
		case len(b) == 0 || len(b) == 1 && b[0] == '\r':
			if p.more() {
				continue
			}
			if len(b) == 1 && p.err == io.EOF {
				p.rec++
				continue
			}
			return p.err // io.EOF at the end
		}
		break
	}
	p.recLine = p.lines
	p.spans, p.resume, p.from, p.escaped = p.spans[:0], 0, 0, false
	if quotedFast {
		// A record fast does not take, scan parses from its start.
		if n := p.fast(); n > 0 {
			p.finish(n)
			return nil
		}
	}
	for {
		n, err := p.scan()
		if err == errMore {
			p.more() // false sets p.err, which scan then reports
			continue
		}
		if err != nil {
			return err
		}
		p.complete(n)
		return nil
	}
}

// more reads once into the buffer, keeping the current record, and
// reports whether any bytes came; when none did, p.err says why.
func (p *quotedRecords) more() bool {
	if p.err != nil {
		return false
	}
	if p.rec > 0 {
		// Slide the record to the front; spans are relative to it.
		p.w = copy(p.buf, p.buf[p.rec:p.w])
		p.base += int64(p.rec)
		p.rec = 0
	}
	if p.w == len(p.buf) {
		// The record fills the buffer. The source bounds its size (see
		// source.limit), so the buffer stays bounded too.
		p.buf = slices.Grow(p.buf[:p.w], len(p.buf))
		p.buf = p.buf[:cap(p.buf)]
	}
	for range 100 { // as bufio.Reader, give up on a reader that sends nothing
		n, err := p.rd.Read(p.buf[p.w:])
		p.w += n
		p.err = err
		if n > 0 || err != nil {
			return n > 0
		}
	}
	p.err = io.ErrNoProgress
	return false
}

// scan parses the record at buf[rec:w] and returns its length. It returns
// errMore when the data ends before the record and more may come; the next
// scan goes on from the field it stopped in.
func (p *quotedRecords) scan() (int, error) {
	b := p.buf[p.rec:p.w]
	spans, delim := p.spans, p.delim
	// from is where the scan of the field at i goes on: past the bytes an
	// earlier scan looked at, so a long field costs linear time.
	for i, from := p.resume, p.from; ; from = 0 {
		if i < len(b) && b[i] == '"' {
			// The usual field, `"text",`, without a call.
			j := max(i+1, from)
			if k := bytes.IndexByte(b[j:], '"'); k >= 0 {
				if q := j + k; q+1 < len(b) && b[q+1] == delim {
					spans = append(spans, span{i + 1, q})
					i = q + 2
					continue
				}
			}
		}
		var s span
		var next int
		var last bool
		var err error
		if i < len(b) && b[i] == '"' {
			s, next, last, err = p.quoted(b, i, from)
		} else {
			s, next, last, err = p.unquoted(b, i, from)
		}
		if err != nil {
			p.spans, p.resume, p.from = spans, i, next
			return 0, err
		}
		spans = append(spans, s)
		if last {
			p.spans = spans
			return next, nil
		}
		i = next
	}
}

// quoted scans the quoted field at b[i] (from b[from] if further on),
// jumping from quote to quote until one is not doubled. It returns the
// field's content, where the next field starts or the record ends, and
// whether the record ends; with errMore, where to go on.
func (p *quotedRecords) quoted(b []byte, i, from int) (s span, next int, last bool, err error) {
	s.start = i + 1
	for j := max(i+1, from); ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			if p.err == io.EOF {
				return s, 0, false, p.eofInQuotes(b)
			}
			return s, len(b), false, p.atEnd()
		}
		q := j + k
		s.end = q
		rest := b[q+1:]
		switch {
		case len(rest) > 0 && rest[0] == '"':
			p.escaped = true
			j = q + 2
		case len(rest) > 0 && rest[0] == p.delim:
			return s, q + 2, false, nil
		case len(rest) > 0 && rest[0] == '\n':
			return s, q + 2, true, nil
		case len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n':
			return s, q + 3, true, nil
		case len(rest) == 0 || len(rest) == 1 && rest[0] == '\r':
			// The data ends after the quote, or after a CR that ends the
			// line only if the input ends there (and it is dropped).
			switch {
			case p.err == nil:
				return s, q, false, errMore
			case p.err == io.EOF:
				return s, len(b), true, nil
			case len(rest) == 0:
				return s, 0, false, p.err
			}
			return s, 0, false, p.syntaxError(b, q, csv.ErrQuote)
		default:
			return s, 0, false, p.syntaxError(b, q, csv.ErrQuote)
		}
	}
}

// unquoted scans the unquoted field at b[i] (from b[from] if further on):
// up to the delimiter, the end of the line or the end of the input.
func (p *quotedRecords) unquoted(b []byte, i, from int) (s span, next int, last bool, err error) {
	j := max(i, from)
	for j < len(b) && b[j] != p.delim && b[j] != '\n' && b[j] != '"' {
		j++
	}
	s = span{i, j}
	switch {
	case j < len(b) && b[j] == p.delim:
		return s, j + 1, false, nil
	case j < len(b) && b[j] == '"':
		return s, 0, false, p.syntaxError(b, j, csv.ErrBareQuote)
	case j == len(b) && p.err != io.EOF:
		return s, j, false, p.atEnd()
	}
	// The end of the line or of the input: drop the CR of a CRLF, or a CR
	// just before the end.
	if j > i && b[j-1] == '\r' {
		s.end--
	}
	return s, min(j+1, len(b)), true, nil
}

// atEnd is what scanning meets at the end of the data, short of the end
// of the input: errMore, or the read error that ended it.
func (p *quotedRecords) atEnd() error {
	if p.err == nil {
		return errMore
	}
	return p.err
}

// complete makes the first n bytes of buf[rec:] the current record, its
// fields the spans scan found.
func (p *quotedRecords) complete(n int) {
	b := p.buf[p.rec : p.rec+n]
	p.fs = p.fs[:0]
	for _, s := range p.spans {
		p.fs = append(p.fs, b[s.start:s.end:s.end])
	}
	p.finish(n)
}

// finish makes the first n bytes of buf[rec:] the current record, its
// fields already in p.fs.
func (p *quotedRecords) finish(n int) {
	b := p.buf[p.rec : p.rec+n]
	// One count per record finds the lines it spans; almost always one.
	inner := bytes.Count(b, nl)
	p.lines += inner
	p.recEnd = p.lines
	if b[n-1] == '\n' {
		p.recEnd--
		inner--
	}
	p.n = n
	if p.escaped || inner > 0 {
		// Unquoted fields hold neither `"` nor a line end: no-ops.
		for i, f := range p.fs {
			p.fs[i] = unescape(f)
		}
	}
}

// unescape rewrites a quoted field's content in place as encoding/csv
// reads it: `""` as `"`, and CRLF as LF. It leaves stale bytes after the
// field, which is why complete counts the record's lines first.
func unescape(f []byte) []byte {
	n := 0
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '"':
			i++ // the first of a pair
		case c == '\r' && i+1 < len(f) && f[i+1] == '\n':
			continue
		}
		f[n] = c
		n++
	}
	return f[:n]
}

// syntaxError is encoding/csv's error for a quote at b[i], in the record b
// (which starts a line).
func (p *quotedRecords) syntaxError(b []byte, i int, err error) error {
	ls := bytes.LastIndexByte(b[:i], '\n') + 1
	return &csv.ParseError{StartLine: p.recLine, Line: p.recLine + bytes.Count(b[:ls], nl), Column: i - ls + 1, Err: err}
}

// eofInQuotes is encoding/csv's error for input that ends inside a quoted
// field, in the record b: it points just past the last line that is not
// empty once a final CR is dropped, a CRLF counting as one byte.
func (p *quotedRecords) eofInQuotes(b []byte) error {
	e := len(b) // b holds at least the opening quote
	if b[e-1] == '\r' {
		e--
	}
	ls := bytes.LastIndexByte(b[:e], '\n') + 1
	col := e - ls + 1
	if ls == e {
		// The input ends with a newline: point past it, on its line.
		k := e - 1
		ls = bytes.LastIndexByte(b[:k], '\n') + 1
		col = k - ls + 2
		if k > ls && b[k-1] == '\r' {
			col--
		}
	}
	return &csv.ParseError{StartLine: p.recLine, Line: p.recLine + bytes.Count(b[:ls], nl), Column: col, Err: csv.ErrQuote}
}

// byteFields is the current record as slices of a parser's buffer.
type byteFields struct{ fs [][]byte }

func (f *byteFields) fields() int { return len(f.fs) }

func (f *byteFields) header() []string {
	h := make([]string, len(f.fs))
	for i, s := range f.fs {
		h[i] = string(s)
	}
	return h
}

func (f *byteFields) count(c *checker) {
	var nhs, del []byte
	if c.nhs >= 0 {
		nhs = f.fs[c.nhs]
	}
	if c.del >= 0 {
		del = f.fs[c.del]
	}
	countRow(c, nhs, del)
	if c.org >= 0 {
		v := f.fs[c.org]
		if n := c.orgs[string(v)]; n != nil { // this form does not allocate
			*n++
		} else {
			c.orgs[string(v)] = new(int64(1))
		}
	}
}
