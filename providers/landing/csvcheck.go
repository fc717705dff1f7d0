package landing

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Encoding is the character set of a supplier's plaintext.
type Encoding int

// Encodings met in bulk extracts: EMIS sends UTF-8 (ASCII in practice),
// TPP sends Windows-1252, which is decoded to UTF-8 on landing.
const (
	UTF8 Encoding = iota
	Windows1252
)

func (e Encoding) String() string {
	switch e {
	case UTF8:
		return "utf-8"
	case Windows1252:
		return "windows-1252"
	}
	return "Encoding(" + strconv.Itoa(int(e)) + ")"
}

// CSVSpec describes what one table must look like.
type CSVSpec struct {
	Delimiter byte // ',' when zero; TPP may declare '|' or '\t'
	// Quote is the text qualifier: '"' for RFC 4180 quoting (both
	// suppliers), 0 for none (fields are split at every delimiter).
	Quote    byte
	Encoding Encoding
	// Versions are the accepted headers (exact column lists); the first
	// that matches wins. None means any header without duplicates.
	Versions Versions
	// Required are the declared fields; Check reports which are missing
	// from the header and which header columns are not declared.
	Required []string
	// NHSColumn is checked with Modulus 11; empty values are not counted.
	NHSColumn string
	// A row is deleted when DeletedColumn equals DeletedValue, ignoring
	// ASCII case: "Deleted"/"true" (EMIS), "RemovedData"/"1" (TPP).
	DeletedColumn, DeletedValue string
	// OrgColumn is the column rows are counted by (EMIS OrganisationGuid,
	// TPP IDOrganisationVisibleTo).
	OrgColumn string
	// MaxRowBytes caps one record (1 MiB when zero), which bounds memory
	// whatever the input.
	MaxRowBytes int
}

// HeaderVersion is one known column list of a table.
type HeaderVersion struct {
	Name    string
	Columns []string
}

// Stats is what Check learned about a table. Columns named in the spec but
// absent from the header are simply not counted.
type Stats struct {
	Version string   // name of the matching HeaderVersion
	Header  []string // the header as read
	Rows    int64    // data rows, header excluded
	Deleted int64
	BadNHS  int64
	PerOrg  map[string]int64 // nil without an OrgColumn in the header
	Bytes   int64            // size of the UTF-8 output
	SHA256  string           // of the UTF-8 output
	// MissingFields are Required fields not in the header; ExtraFields are
	// header columns not in Required (both nil when Required is empty).
	MissingFields, ExtraFields []string
}

// FormatError is a table that breaks the spec, at a 1-based physical line
// of the input.
type FormatError struct {
	Line   int
	Reason string
}

func (e *FormatError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// errRecordTooLong is raised by the source when the parser runs too far
// past the end of the last record; Check turns it into a FormatError.
var errRecordTooLong = errors.New("record too long")

// maxOrgs bounds PerOrg: a feed covers thousands of organisations at most,
// so more distinct values mean a wrong column or hostile input.
const maxOrgs = 1 << 16

// Check validates the plaintext table r against spec as it streams,
// writing the UTF-8 text to w (byte for byte the input, less a BOM, when
// the input is UTF-8). A *FormatError reports a table that breaks the
// spec; other errors come from r or w. On error the output is incomplete
// and the Stats are those up to the error.
func Check(r io.Reader, w io.Writer, spec CSVSpec) (Stats, error) {
	return check(r, w, spec, newRecords)
}

// newRecords is the parser for spec's dialect, reading src.
func newRecords(src io.Reader, spec CSVSpec) records {
	if spec.Quote == '"' {
		return newQuotedRecords(src, spec.Delimiter, 2*readBuffer)
	}
	return &plainRecords{br: bufio.NewReaderSize(src, readBuffer), delim: spec.Delimiter, max: spec.MaxRowBytes, nextLine: 1}
}

// check is Check with the parser made by parse (tests compare parsers).
func check(r io.Reader, w io.Writer, spec CSVSpec, parse func(io.Reader, CSVSpec) records) (Stats, error) {
	if spec.Delimiter == 0 {
		spec.Delimiter = ','
	}
	if spec.MaxRowBytes <= 0 {
		spec.MaxRowBytes = 1 << 20
	}
	if err := spec.valid(); err != nil {
		return Stats{}, err
	}
	h := sha256.New()
	src := newSource(r, w, h, spec.Encoding, int64(spec.MaxRowBytes))
	c := checker{spec: spec, src: src, recs: parse(src, spec)}
	err := c.run()
	if werr := src.finish(); err == nil {
		err = werr
	}
	if c.orgs != nil {
		c.st.PerOrg = make(map[string]int64, len(c.orgs))
		for k, n := range c.orgs {
			c.st.PerOrg[k] = *n
		}
	}
	c.st.Bytes = src.out
	c.st.SHA256 = hex.EncodeToString(h.Sum(nil))
	return c.st, err
}

func (s *CSVSpec) valid() error {
	d := s.Delimiter
	if d >= 0x80 || d == '\r' || d == '\n' || d == '"' || d == s.Quote {
		return fmt.Errorf("csv check: unsupported delimiter %q", d)
	}
	if s.Quote != 0 && s.Quote != '"' {
		return fmt.Errorf("csv check: unsupported text qualifier %q", s.Quote)
	}
	if (s.DeletedColumn == "") != (s.DeletedValue == "") {
		return fmt.Errorf("csv check: DeletedColumn and DeletedValue go together")
	}
	if s.Encoding != UTF8 && s.Encoding != Windows1252 {
		return fmt.Errorf("csv check: unsupported encoding %v", s.Encoding)
	}
	return nil
}

// records is a parser positioned on one record at a time.
type records interface {
	next() error // io.EOF at the end
	fields() int
	line() int // physical line the current record starts on
	// endLine is the physical line the current record ends on.
	endLine() int
	offset() int64    // input offset just past the current record
	header() []string // a copy of the current record
	count(c *checker) // tally the current record
}

// checker applies a spec to the records of one table.
type checker struct {
	spec          CSVSpec
	src           *source
	recs          records
	st            Stats
	nhs, del, org int // column indexes, -1 when absent
	lastOff       int64
	lastEnd       int
	// orgs counts rows per OrgColumn value through pointers, so a count
	// is bumped by a lookup, which allocates nothing even for []byte keys.
	orgs map[string]*int64
}

func (c *checker) run() error {
	if err := c.recs.next(); err != nil {
		if err == io.EOF {
			return &FormatError{Line: 1, Reason: "no header row"}
		}
		return c.convert(err)
	}
	c.st.Header = c.recs.header()
	c.missingExtra()
	if err := c.matchHeader(); err != nil {
		return err
	}
	col := func(name string) int {
		if name == "" {
			return -1
		}
		return slices.Index(c.st.Header, name)
	}
	c.nhs, c.del, c.org = col(c.spec.NHSColumn), col(c.spec.DeletedColumn), col(c.spec.OrgColumn)
	if c.org >= 0 {
		c.orgs = map[string]*int64{}
	}
	if err := c.advance(); err != nil {
		return err
	}
	n := len(c.st.Header)
	for {
		err := c.recs.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.convert(err)
		}
		if k := c.recs.fields(); k != n {
			return &FormatError{Line: c.recs.line(), Reason: fmt.Sprintf("%d fields, the header has %d", k, n)}
		}
		if err := c.advance(); err != nil {
			return err
		}
		c.st.Rows++
		c.recs.count(c)
		if len(c.orgs) > maxOrgs {
			return &FormatError{Line: c.recs.line(), Reason: fmt.Sprintf("more than %d distinct %s values", maxOrgs, c.spec.OrgColumn)}
		}
	}
}

// advance enforces MaxRowBytes on the record just read and lets the source
// run on.
func (c *checker) advance() error {
	off := c.recs.offset()
	if size := off - c.lastOff; size > int64(c.spec.MaxRowBytes) {
		return &FormatError{Line: c.recs.line(), Reason: fmt.Sprintf("record of %d bytes exceeds the %d-byte limit", size, c.spec.MaxRowBytes)}
	}
	c.lastOff = off
	c.src.recEnd = off
	c.lastEnd = c.recs.endLine()
	return nil
}

// convert gives parser errors the FormatError shape.
func (c *checker) convert(err error) error {
	var pe *csv.ParseError
	switch {
	case errors.As(err, &pe):
		reason := pe.Err.Error()
		if pe.StartLine != pe.Line {
			reason += fmt.Sprintf(" (record starting at line %d)", pe.StartLine)
		}
		return &FormatError{Line: pe.Line, Reason: reason}
	case errors.Is(err, errRecordTooLong):
		return &FormatError{Line: c.lastEnd + 1, Reason: fmt.Sprintf("record exceeds the %d-byte limit", c.spec.MaxRowBytes)}
	}
	return err // *FormatError from the source, or an I/O error
}

func (c *checker) missingExtra() {
	if len(c.spec.Required) == 0 {
		return
	}
	for _, f := range c.spec.Required {
		if !slices.Contains(c.st.Header, f) {
			c.st.MissingFields = append(c.st.MissingFields, f)
		}
	}
	for _, f := range c.st.Header {
		if !slices.Contains(c.spec.Required, f) {
			c.st.ExtraFields = append(c.st.ExtraFields, f)
		}
	}
}

// matchHeader picks the first accepted version equal to the header, or
// explains how the header differs from the closest one.
func (c *checker) matchHeader() error {
	h := c.st.Header
	line := c.recs.line()
	seen := make(map[string]int, len(h))
	for i, col := range h {
		if j, ok := seen[col]; ok {
			return &FormatError{Line: line, Reason: fmt.Sprintf("duplicate column %q (columns %d and %d)", col, j+1, i+1)}
		}
		seen[col] = i
	}
	if len(c.spec.Versions) == 0 {
		return nil
	}
	best, bestScore := -1, 0
	var bestMissing, bestExtra []string
	for i, v := range c.spec.Versions {
		if slices.Equal(h, v.Columns) {
			c.st.Version = v.Name
			return nil
		}
		missing, extra := setDiff(v.Columns, h), setDiff(h, v.Columns)
		score := len(missing) + len(extra)
		if best < 0 || score < bestScore {
			best, bestScore, bestMissing, bestExtra = i, score, missing, extra
		}
	}
	v := c.spec.Versions[best]
	var why []string
	if len(bestMissing) > 0 {
		why = append(why, "missing "+quoteList(bestMissing))
	}
	if len(bestExtra) > 0 {
		why = append(why, "unexpected "+quoteList(bestExtra))
	}
	if len(why) == 0 {
		for i := range h {
			if h[i] != v.Columns[i] {
				why = append(why, fmt.Sprintf("columns in a different order (column %d is %q, expected %q)", i+1, h[i], v.Columns[i]))
				break
			}
		}
	}
	return &FormatError{Line: line, Reason: fmt.Sprintf("header matches no accepted version; closest is %q: %s", v.Name, strings.Join(why, "; "))}
}

// setDiff lists the elements of a not in b, in a's order.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func quoteList(s []string) string {
	const show = 10
	var b strings.Builder
	for i, x := range s {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(s)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(x))
	}
	return b.String()
}

// countRow tallies one data record, from byte fields (the parsers here) or
// string fields (encoding/csv, which tests compare with) alike.
func countRow[T ~string | ~[]byte](c *checker, nhs, del T) {
	if c.nhs >= 0 && len(nhs) > 0 && !nhsValid(nhs) {
		c.st.BadNHS++
	}
	if c.del >= 0 && asciiEqualFold(del, c.spec.DeletedValue) {
		c.st.Deleted++
	}
}

// plainRecords splits lines at every delimiter: the dialect without a
// text qualifier. Like encoding/csv it accepts LF and CRLF and skips
// empty lines. Fields are slices of the read buffer, so no row allocates.
type plainRecords struct {
	byteFields
	br       *bufio.Reader
	delim    byte
	max      int
	long     []byte // assembles a line longer than the read buffer
	cur      int    // line of the current record
	nextLine int
	off      int64
}

func (p *plainRecords) next() error {
	for {
		line, err := p.readLine()
		if err != nil && (err != io.EOF || len(line) == 0) {
			return err
		}
		p.cur = p.nextLine
		p.nextLine++
		p.off += int64(len(line))
		line = bytes.TrimSuffix(line, nl)
		line = bytes.TrimSuffix(line, cr)
		if len(line) == 0 {
			continue
		}
		p.fs = p.fs[:0]
		for {
			i := bytes.IndexByte(line, p.delim)
			if i < 0 {
				break
			}
			p.fs = append(p.fs, line[:i])
			line = line[i+1:]
		}
		p.fs = append(p.fs, line)
		return nil
	}
}

var cr = []byte{'\r'}

// readLine returns the next line with its terminator. A line that fits the
// read buffer is returned in place; a longer one is assembled, up to the
// record limit.
func (p *plainRecords) readLine() ([]byte, error) {
	line, err := p.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	p.long = append(p.long[:0], line...)
	for err == bufio.ErrBufferFull {
		if len(p.long) > p.max+2 {
			return nil, errRecordTooLong
		}
		line, err = p.br.ReadSlice('\n')
		p.long = append(p.long, line...)
	}
	return p.long, err
}

func (p *plainRecords) line() int     { return p.cur }
func (p *plainRecords) endLine() int  { return p.cur }
func (p *plainRecords) offset() int64 { return p.off }

// NHSNumberValid reports whether s is a 10-digit NHS number whose last
// digit is its Modulus 11 check digit (NHS Data Dictionary, "NHS NUMBER").
func NHSNumberValid(s string) bool { return nhsValid(s) }

func nhsValid[T ~string | ~[]byte](s T) bool {
	if len(s) != 10 {
		return false
	}
	sum := 0
	for i := range 10 {
		d := int(s[i]) - '0'
		if d < 0 || d > 9 {
			return false
		}
		if i < 9 {
			sum += d * (10 - i) // weights 10 down to 2
		}
	}
	check := 11 - sum%11
	switch check {
	case 11:
		check = 0
	case 10:
		return false // no valid number has this check digit
	}
	return int(s[9])-'0' == check
}

// asciiEqualFold compares ignoring ASCII case, for flag values such as
// "true"/"TRUE" that need no Unicode folding.
func asciiEqualFold[T ~string | ~[]byte](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(b) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Versions is a table's known headers, newest first: the catalogue both
// suppliers' file packages keep, and what CSVSpec.Versions takes.
type Versions []HeaderVersion

// Named returns the version with the given name.
func (vs Versions) Named(name string) (HeaderVersion, bool) {
	for _, v := range vs {
		if v.Name == name {
			return v, true
		}
	}
	return HeaderVersion{}, false
}

// Match returns the newest version whose columns equal header exactly.
func (vs Versions) Match(header []string) (HeaderVersion, bool) {
	for _, v := range vs {
		if slices.Equal(v.Columns, header) {
			return v, true
		}
	}
	return HeaderVersion{}, false
}
