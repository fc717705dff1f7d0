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
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// csvRecords is the parser quotedRecords replaced: encoding/csv, set up as
// Check used to. The tests hold the new parser to it.
type csvRecords struct {
	r   *csv.Reader
	rec []string
}

// encodingCSV is newRecords as it was: encoding/csv for the quoted dialect.
func encodingCSV(src io.Reader, spec CSVSpec) records {
	if spec.Quote != '"' {
		return newRecords(src, spec)
	}
	return newCSVRecords(bufio.NewReaderSize(src, readBuffer), spec.Delimiter)
}

func newCSVRecords(r io.Reader, delim byte) *csvRecords {
	cr := csv.NewReader(r)
	cr.Comma = rune(delim)
	cr.FieldsPerRecord = -1 // counted by the checker, for a clearer message
	cr.ReuseRecord = true
	return &csvRecords{r: cr}
}

func (p *csvRecords) next() error {
	rec, err := p.r.Read()
	p.rec = rec
	return err
}
func (p *csvRecords) fields() int      { return len(p.rec) }
func (p *csvRecords) offset() int64    { return p.r.InputOffset() }
func (p *csvRecords) header() []string { return slices.Clone(p.rec) }
func (p *csvRecords) line() int {
	l, _ := p.r.FieldPos(0)
	return l
}

func (p *csvRecords) endLine() int {
	last := len(p.rec) - 1
	l, _ := p.r.FieldPos(last)
	return l + strings.Count(p.rec[last], "\n")
}

func (p *csvRecords) count(c *checker) {
	var nhs, del string
	if c.nhs >= 0 {
		nhs = p.rec[c.nhs]
	}
	if c.del >= 0 {
		del = p.rec[c.del]
	}
	countRow(c, nhs, del)
	if c.org >= 0 {
		v := p.rec[c.org]
		if n := c.orgs[v]; n != nil {
			*n++
		} else {
			c.orgs[strings.Clone(v)] = new(int64(1))
		}
	}
}

// fuzzDelim makes any byte a delimiter both parsers take.
func fuzzDelim(d byte) byte {
	d &= 0x7F
	if d == 0 || d == '"' || d == '\r' || d == '\n' {
		return ','
	}
	return d
}

// chunkReader returns reads of 1 to max bytes, varying, to cut records
// (and CRLFs, and doubled quotes) at every point.
type chunkReader struct {
	b   []byte
	max int
	n   int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	r.n++
	n := min(len(p), len(r.b), 1+r.n%r.max)
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// compareRecords reads in with encoding/csv and with quotedRecords (its
// buffer starting at bufSize bytes, reads of at most chunk bytes) and
// reports the first difference: records, their lines and offsets, or
// errors, which must be equal *csv.ParseError values.
func compareRecords(in []byte, delim byte, chunk, bufSize int) error {
	var tail error = io.EOF
	if chunk < 0 {
		// End the input with a read error instead of io.EOF.
		tail = errors.New("read failed")
		chunk = -chunk
	}
	old := newCSVRecords(io.MultiReader(bytes.NewReader(in), iotest.ErrReader(tail)), delim)
	q := newQuotedRecords(io.MultiReader(&chunkReader{b: in, max: chunk}, iotest.ErrReader(tail)), delim, bufSize)
	for n := 1; ; n++ {
		oerr, qerr := old.next(), q.next()
		if !reflect.DeepEqual(oerr, qerr) {
			return fmt.Errorf("record %d: encoding/csv error %#v, scanner %#v", n, oerr, qerr)
		}
		if oerr != nil {
			return nil
		}
		got := make([]string, len(q.fs))
		for i, f := range q.fs {
			got[i] = string(f)
		}
		if !slices.Equal(old.rec, got) {
			return fmt.Errorf("record %d: encoding/csv %q, scanner %q", n, old.rec, got)
		}
		if old.line() != q.line() || old.endLine() != q.endLine() || old.offset() != q.offset() {
			return fmt.Errorf("record %d: encoding/csv lines %d-%d offset %d, scanner %d-%d offset %d",
				n, old.line(), old.endLine(), old.offset(), q.line(), q.endLine(), q.offset())
		}
	}
}

// FuzzQuotedRecords holds quotedRecords to encoding/csv on any input, with
// any delimiter either takes, whatever the read sizes and buffer size.
func FuzzQuotedRecords(f *testing.F) {
	for _, s := range quotedCases {
		f.Add([]byte(s), byte(','), uint8(0))
	}
	// Records for quotedRecords.fast, read into a 4 KiB buffer or into
	// one that grows from 1 byte, ending in EOF or a read error.
	for _, s := range fastCases() {
		for _, cut := range []uint8{0x80 | 63, 6, 0x80 | 64 | 12} {
			f.Add([]byte(s), byte(','), cut)
		}
	}
	f.Add([]byte(strings.ReplaceAll(emisRow+"\r\n"+emisRow+"\r\n", ",", "|")), byte('|'), uint8(0x80|63))
	f.Fuzz(func(t *testing.T, in []byte, delim byte, cut uint8) {
		d := fuzzDelim(delim)
		chunk := 1 + int(cut&63)
		if cut&64 != 0 {
			chunk = -chunk
		}
		bufSize := 1 + int(cut>>7)*4096 // 1 byte (grows) or 4 KiB
		if err := compareRecords(in, d, chunk, bufSize); err != nil {
			t.Fatalf("delim %q, chunk %d, buffer %d: %v", d, chunk, bufSize, err)
		}
		// And quotedRecords.fast to scan alone, which encoding/csv then
		// vouches for too.
		if err := compareFastScan(in, d, chunk, bufSize); err != nil {
			t.Fatalf("delim %q, chunk %d, buffer %d: %v", d, chunk, bufSize, err)
		}
	})
}

// FuzzCheckParsers holds Check with quotedRecords to Check with
// encoding/csv: the same Stats, output and FormatError, line and reason,
// for UTF-8 and Windows-1252 input.
func FuzzCheckParsers(f *testing.F) {
	for _, s := range quotedCases {
		f.Add([]byte(s), byte(','), uint8(0))
	}
	f.Add([]byte("n,d,o\n9434765919,true,A\n\"1\",\"\",\"B\"\r\n"), byte(','), uint8(0))
	// Rows quotedRecords.fast takes, and rows it guesses wrong.
	f.Add([]byte("\"n\",\"d\",\"o\"\r\n\"9434765919\",\"true\",\"A\"\r\n\"9434765919\",\"false\",\"B\"\r\n"+
		"\"\",\"\",\"\"\r\n\"943\",\"\",\"\"\",\"\"\r\n\"1\",\"2\",\"3\"\r\n"), byte(','), uint8(31))
	f.Add([]byte("\"n\",\"d\",\"o\"\n\"1\",\"ab\",\"c\"\n\"1\",\"ab\",\"c\"\n\"\",\"a\",\"b\"\n\"1\",\"a\nb\",\"c\"\n"), byte(','), uint8(32|4))
	f.Fuzz(func(t *testing.T, in []byte, delim byte, opts uint8) {
		spec := CSVSpec{Quote: '"', Delimiter: fuzzDelim(delim), NHSColumn: "n", DeletedColumn: "d", DeletedValue: "true", OrgColumn: "o",
			MaxRowBytes: 8 + int(opts&31)*8}
		if opts&32 != 0 {
			spec.Encoding = Windows1252
		}
		if err := compareCheck(bytes.NewReader(in), spec); err != nil {
			t.Fatal(err)
		}
	})
}

func compareCheck(in io.ReadSeeker, spec CSVSpec) error {
	var oout, qout bytes.Buffer
	ost, oerr := check(in, &oout, spec, encodingCSV)
	in.Seek(0, io.SeekStart)
	qst, qerr := check(in, &qout, spec, newRecords)
	if !reflect.DeepEqual(oerr, qerr) {
		return fmt.Errorf("encoding/csv: %v; scanner: %v", oerr, qerr)
	}
	for _, x := range []struct {
		st  *Stats
		out *bytes.Buffer
	}{{&ost, &oout}, {&qst, &qout}} {
		sum := sha256.Sum256(x.out.Bytes())
		if x.st.Bytes != int64(x.out.Len()) || x.st.SHA256 != hex.EncodeToString(sum[:]) {
			return fmt.Errorf("Bytes/SHA256 %d/%s do not describe the output", x.st.Bytes, x.st.SHA256)
		}
		if oerr != nil {
			// The output up to an error may differ: encoding/csv reads a
			// whole line before it looks at it, the scanner stops at the
			// first bad quote.
			x.st.Bytes, x.st.SHA256 = 0, ""
			x.out.Reset()
		}
	}
	if !reflect.DeepEqual(ost, qst) {
		return fmt.Errorf("stats: encoding/csv %+v; scanner %+v", ost, qst)
	}
	if !bytes.Equal(oout.Bytes(), qout.Bytes()) {
		return fmt.Errorf("outputs differ")
	}
	return nil
}

// quotedCases are inputs where the dialect's rules meet; they seed the
// fuzz targets (with testdata/fuzz) and TestQuotedRecordsMatchCSV.
var quotedCases = []string{
	"",
	"a,b\n1,2\n",
	"\"a\",\"b\"\r\n\"1\",\"2\"\r\n",
	"a,b\r\n1,2",
	"a,b\r\n1,2\r",
	"a,b\r\n1,2\r\r",
	"a,\n,\n,,\n",
	"a,b,\r\n",
	"\n\r\n\n\"a\"\n\r\n",
	"\r",
	"\r\r\n",
	"a\r\rb\r\n",
	"\"a\"\"b\",\"\"\"\",\"\"\"\"\"\"\"\n",
	"\"a\nb\",\"c\r\nd\"\r\n\"e\r\nf\"",
	"\"a\r\",\"\r\r\n\",\"\n\"\n",
	"\"ab\"c\n",
	"\"ab\"\rc\n",
	"\"ab\"\r\r\n",
	"\"ab\"\r",
	"a,\"b\nc\"d\n",
	"a,b\"c\n",
	"a, \"b\"\n",
	"a,\"b\n",
	"a,\"b\n\n",
	"a,\"b\r\n",
	"a,\"b\r\n\r",
	"a,\"b\nc\r",
	"x\n\n\"b\nc\nd",
	"\"",
	"\"\"",
	"\"\"\"",
	",",
	"\",\"\",\"",
	"a,b\n\"1\n2\n3\",\"x\"y\n",
	"é,\"ü\nñ\"\n",
}

// TestQuotedRecordsMatchCSV runs the cases and random inputs over the
// dialect's alphabet through compareRecords, whatever the fuzzer found.
func TestQuotedRecordsMatchCSV(t *testing.T) {
	ins := slices.Clone(quotedCases)
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "\"\",,||\r\n\na"
	for range 1000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		ins = append(ins, string(b))
	}
	setQuotedFast(t, true)
	for _, fast := range []bool{true, false} {
		quotedFast = fast
		for _, in := range ins {
			for _, d := range []byte{',', '|', '\t', 'a', ' '} {
				for _, chunk := range []int{1, 3, 1 << 20, -1, -(1 << 20)} {
					for _, size := range []int{1, 5, 4096} {
						if err := compareRecords([]byte(in), d, chunk, size); err != nil {
							t.Fatalf("%q delim %q chunk %d buffer %d, fast %v: %v", in, d, chunk, size, fast, err)
						}
					}
				}
			}
		}
	}
}

// TestQuotedRecordsLongFields: a field that arrives in many reads is
// scanned on from where the last read ended, not from its start again
// (which took quadratic time).
func TestQuotedRecordsLongFields(t *testing.T) {
	for _, in := range []string{
		"\"" + strings.Repeat("x\"\"", 1<<18) + "\",\"y\"\n",
		strings.Repeat("x", 1<<20) + ",\"y\"\n",
	} {
		if err := compareRecords([]byte(in), ',', 64, 4096); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckParsersMatch compares Check with either parser where the read
// sizes matter: records spanning many source chunks, the source's guard
// against a record that never ends, bytes the source rejects, read errors.
func TestCheckParsersMatch(t *testing.T) {
	const hdr = "\"n\",\"d\",\"o\"\r\n"
	row := "\"9434765919\",\"true\",\"A\"\r\n"
	long := func(n int, sep string) string { return strings.Repeat("x"+sep, n/(1+len(sep))) }
	ins := []string{
		hdr + strings.Repeat(row, 20000),
		hdr + strings.Repeat(row, 20000) + "\"1\",\"2\"\r\n",
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(300000, "") + "\",\"3\"\r\n" + row,
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(300000, "\r\n") + "\",\"3\"\r\n" + row,
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(300000, "\"\"") + "\",\"3\"\r\n" + row,
		hdr + strings.Repeat(row, 5000) + strings.Repeat("\r\n", 100000) + row,
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(300000, "\n") + "\"x\"\r\n",
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(100000, "\n"),
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(300000, "") + "\x00\",\"3\"\r\n",
		hdr + strings.Repeat(row, 5000) + "\"1\",\"" + long(1000, "") + "\"\r\x00",
		hdr + strings.Repeat(row, 5000) + "1,2,3\"" + long(300000, "") + "\r\n",
		hdr + strings.Repeat(row, 5000) + "\"1\",\"caf\xE9\"\r\n",
	}
	for i, in := range ins {
		for _, maxRow := range []int{100, 1000, 70000, 200000, 1 << 20} {
			for _, enc := range []Encoding{UTF8, Windows1252} {
				spec := CSVSpec{Quote: '"', NHSColumn: "n", DeletedColumn: "d", DeletedValue: "true", OrgColumn: "o", MaxRowBytes: maxRow, Encoding: enc}
				if err := compareCheck(strings.NewReader(in), spec); err != nil {
					t.Errorf("input %d, MaxRowBytes %d, %v: %v", i, maxRow, enc, err)
				}
			}
		}
	}
	// A read error (say, a failed integrity check) mid-record.
	for _, cut := range []int{len(hdr) + 3, len(hdr) + len(row) - 1, len(hdr) + len(row) - 2, len(hdr) + 1000*len(row) + 13} {
		in := hdr + strings.Repeat(row, 2000)
		spec := CSVSpec{Quote: '"', OrgColumn: "o"}
		var errs [2]error
		for j, parse := range []func(io.Reader, CSVSpec) records{encodingCSV, newRecords} {
			r := io.MultiReader(strings.NewReader(in[:cut]), iotest.ErrReader(errors.New("integrity check failed")))
			_, errs[j] = check(r, io.Discard, spec, parse)
		}
		if !reflect.DeepEqual(errs[0], errs[1]) {
			t.Errorf("cut at %d: encoding/csv %v, scanner %v", cut, errs[0], errs[1])
		}
	}
}

var emisData = sync.OnceValue(func() []byte { return emisLike(64 << 20) })

// BenchmarkCheckParsers is Check on an EMIS-like table with each parser.
// Run the two alternately to compare on a noisy machine, e.g.
//
//	go test -c && for i in 1 2 3 4 5; do
//	  ./landing.test -test.run '^$' -test.bench 'CheckParsers/encoding-csv' -test.benchmem
//	  ./landing.test -test.run '^$' -test.bench 'CheckParsers/scanner' -test.benchmem
//	done
func BenchmarkCheckParsers(b *testing.B) {
	spec := CSVSpec{Quote: '"', NHSColumn: "NhsNumber", DeletedColumn: "Deleted", DeletedValue: "true", OrgColumn: "OrganisationGuid"}
	for _, p := range []struct {
		name  string
		parse func(io.Reader, CSVSpec) records
	}{{"encoding-csv", encodingCSV}, {"scanner", newRecords}} {
		b.Run(p.name, func(b *testing.B) {
			data := emisData()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := check(bytes.NewReader(data), io.Discard, spec, p.parse); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The parsers alone, without the source's goroutines.
	for _, p := range []struct {
		name string
		new  func(io.Reader) records
	}{
		{"encoding-csv-alone", func(r io.Reader) records { return newCSVRecords(bufio.NewReaderSize(r, readBuffer), ',') }},
		{"scanner-alone", func(r io.Reader) records { return newQuotedRecords(r, ',', 2*readBuffer) }},
	} {
		b.Run(p.name, func(b *testing.B) {
			data := emisData()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				recs := p.new(bytes.NewReader(data))
				for {
					if err := recs.next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
