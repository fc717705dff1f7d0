package landing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// setQuotedFast turns quotedRecords.fast on or off for the test.
func setQuotedFast(t testing.TB, on bool) {
	old := quotedFast
	quotedFast = on
	t.Cleanup(func() { quotedFast = old })
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// compareFastScan reads in with two quotedRecords, one with fast and one
// with scan alone, in step, and reports the first difference: fields,
// lines, offset, error, or how far each has read. It does so twice: as
// Check would, then trying fast on every record, without backoff.
func compareFastScan(in []byte, delim byte, chunk, bufSize int) error {
	for _, eager := range []bool{false, true} {
		if err := compareFastScanOnce(in, delim, chunk, bufSize, eager); err != nil {
			return fmt.Errorf("eager %v: %w", eager, err)
		}
	}
	return nil
}

func compareFastScanOnce(in []byte, delim byte, chunk, bufSize int, eager bool) error {
	var tail error = io.EOF
	if chunk < 0 {
		tail = errors.New("read failed")
		chunk = -chunk
	}
	var rs [2]*countingReader
	var ps [2]*quotedRecords
	for i := range ps {
		rs[i] = &countingReader{r: io.MultiReader(&chunkReader{b: in, max: chunk}, iotest.ErrReader(tail))}
		ps[i] = newQuotedRecords(rs[i], delim, bufSize)
	}
	defer func(old bool) { quotedFast = old }(quotedFast)
	for n := 1; ; n++ {
		var errs [2]error
		if eager {
			ps[0].skip = 0
		}
		for i, p := range ps {
			quotedFast = i == 0
			errs[i] = p.next()
		}
		if !reflect.DeepEqual(errs[0], errs[1]) {
			return fmt.Errorf("record %d: fast error %#v, scan %#v", n, errs[0], errs[1])
		}
		if rs[0].n != rs[1].n {
			return fmt.Errorf("record %d: fast read %d bytes, scan %d", n, rs[0].n, rs[1].n)
		}
		if errs[0] != nil {
			return nil
		}
		f, s := ps[0], ps[1]
		if !reflect.DeepEqual(f.fs, s.fs) {
			return fmt.Errorf("record %d: fast %q, scan %q", n, f.fs, s.fs)
		}
		for i := range f.fs {
			if cap(f.fs[i]) != cap(s.fs[i]) {
				return fmt.Errorf("record %d field %d: fast cap %d, scan %d", n, i, cap(f.fs[i]), cap(s.fs[i]))
			}
		}
		if f.line() != s.line() || f.endLine() != s.endLine() || f.offset() != s.offset() {
			return fmt.Errorf("record %d: fast lines %d-%d offset %d, scan %d-%d offset %d",
				n, f.line(), f.endLine(), f.offset(), s.line(), s.endLine(), s.offset())
		}
	}
}

// emisRow is a row shaped like EMIS CareRecord_Observation: 23 quoted
// fields, many of them empty.
const emisRow = `"DABCA534-2C6D-4DF6-A57D-3143BA962FCB","F2B4C4D5-1A2B-4C3D-8E9F-0A1B2C3D4E5F","0B6E1F2A-3B4C-4D5E-8F6A-7B8C9D0E1F2A","2020-02-19","YMD","2020-02-19","11:27:30","947D3C2B-1A0F-4E9D-8C7B-6A5F4E3D2C1B","947D3C2B-1A0F-4E9D-8C7B-6A5F4E3D2C1B","","22K","","","1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9","28.9","kg/m2","Value","17","42","","false","false","1"`

// fastCases are inputs fast takes, wholly or in part, and inputs it must
// leave to scan; each record shape comes with the shapes around it.
func fastCases() []string {
	cases := []string{
		emisRow + "\r\n" + emisRow + "\r\n",
		emisRow + "\n" + emisRow + "\n" + emisRow,
		emisRow + "\r\n" + emisRow + "\r",
		emisRow + "\r\n" + emisRow + "\r\r\n",
		strings.Repeat(emisRow+"\r\n", 4) + strings.Replace(emisRow, `"22K"`, `"22""K"`, 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 4) + strings.Replace(emisRow, `"22K"`, `22K`, 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 4) + strings.Replace(emisRow, `"22K"`, `"22"K`, 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 4) + strings.Replace(emisRow, `"22K"`, `"22K" `, 1) + "\r\n",
		strings.Repeat(emisRow+"\r\n", 3) + strings.Replace(emisRow, `"22K"`, "\"2\r\n2\nK\r\"", 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 3) + strings.Replace(emisRow, `"kg/m2"`, `"kg/m2","extra"`, 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 3) + strings.Replace(emisRow, `"kg/m2",`, ``, 1) + "\r\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 3) + "\r\n\n" + emisRow + "\r\n",
		strings.Repeat(emisRow+"\r\n", 3) + emisRow[:100],
		strings.Repeat(emisRow+"\r\n", 3) + emisRow + `,`,
		strings.Repeat(emisRow+"\r\n", 3) + emisRow + `,"`,
		strings.Repeat(emisRow+"\r\n", 3) + emisRow + "\"\r\n",
		"\"a\",\"b\"\n\"c\",\"d\"\r\n\"e\",\"f\"",
		"\"a\",\"b\"\n\"c\",\"d\"\r\n\"e\",\"f\"\r",
		"\"\"\n\"\"\n\"\",\"\"\n\"\",\"\",\"\"\r\n",
		"\"a\"\n\"a\"x\n",
		"\"a\"\n\"a\"\r\"b\"\n",
		"\"a\"\n\"a\"\"\"\n",
		"\"ab\",\"c\"\n\"\",\"\"\"\"\n",
		"\"a\",b\n\"a\",\"b\"\n",
		"\"x\"\n\"a,\"b\"\n",
		// Guesses that land on a later field's closing quote.
		"\"abcdef\",\"x\"\n\"abcdef\",\"x\"\n\"a\",\"bc\",\"x\"\n\"a\",\"bc\",\"x\"\n\"abcdef\",\"x\"\n",
		"\"ab\",\"x\",\"y\"\n\"ab\",\"x\",\"y\"\n\"\",\"\",\"\",\"x\",\"y\"\n\"ab\",\"x\",\"y\"\n",
		"\"abcd\",\"x\"\n\"abcd\",\"x\"\n\"a\",\"b\"\"\",\"x\"\n\"abcd\",\"x\"\n",
		"\"abc\"\n\"abc\"\n\"a\",\"\n\"\n\"abc\"\n",
		"\"abc\",\"z\"\n\"abc\",\"z\"\n\"a\",\",x\"\n\"abc\",\"z\"\n",
		// Guesses past the end of the data.
		"\"abcdefgh\"\n\"abcdefgh\"\n\"a\"\n\"a\"",
		"\"abcdefgh\"\n\"abcdefgh\"\n\"a\"\n\"abc",
	}
	// Fields of every length to 70, alone and around others, so closing
	// quotes fall at every offset of the 4- and 8-byte loads and after.
	for n := range 71 {
		f := strings.Repeat("x", n)
		cases = append(cases,
			fmt.Sprintf("\"%s\"\n\"%s\",\"%s\"\r\n\"y\",\"%s\",\"\"\n\"%s\"", f, f, f, f, f),
			fmt.Sprintf("\"%s\",\"a\"\n\"%s\",\"b\"\n\"%s\",\"c\"\n\"%s\",\"d\"\n", f, f, f[:n/2], f),
			fmt.Sprintf("\"a\"\n\"%s\"\"\"\n\"%s\"x\n", f, f),
		)
	}
	// Rows whose fields change length now and then.
	rng := rand.New(rand.NewPCG(7, 8))
	for range 30 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			for j := range 1 + rng.IntN(5) {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString("\"" + strings.Repeat("v", (j*3+rng.IntN(2)*rng.IntN(10))%12) + "\"")
			}
			b.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
		}
		cases = append(cases, b.String())
	}
	return cases
}

// TestQuotedFastMatchesScan holds fast to scan and both to encoding/csv,
// whatever the buffer size and reads.
func TestQuotedFastMatchesScan(t *testing.T) {
	setQuotedFast(t, true)
	cases := append(fastCases(), quotedCases...)
	for _, in := range cases {
		for _, d := range []byte{',', '|', '\t', 'a', '#'} {
			in := []byte(in)
			sizes := 100 // every buffer size to 100; the buffer grows
			if d != ',' {
				in = bytes.ReplaceAll(in, []byte(","), []byte{d})
				sizes = 10
			}
			for size := 1; size <= sizes; size++ {
				for _, chunk := range []int{1 << 20, 7, -(1 << 20)} {
					if err := compareFastScan(in, d, chunk, size); err != nil {
						t.Fatalf("%q delim %q chunk %d buffer %d: %v", in, d, chunk, size, err)
					}
				}
			}
			for _, fast := range []bool{true, false} {
				quotedFast = fast
				for _, c := range []struct{ chunk, size int }{{1 << 20, 1}, {1 << 20, 4096}, {1, 7}, {-5, 64}} {
					if err := compareRecords(in, d, c.chunk, c.size); err != nil {
						t.Fatalf("%q delim %q chunk %d buffer %d, fast %v: %v", in, d, c.chunk, c.size, fast, err)
					}
				}
			}
			quotedFast = true
		}
	}
}

// TestQuotedFastTaken: fast parses the usual records itself, including
// ones it first guesses wrong, and leaves the others to scan.
func TestQuotedFastTaken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int // fast's result per record; -1 for "leave it to scan"
	}{
		{emisRow + "\r\n" + emisRow + "\n" + emisRow + "\r\n", []int{len(emisRow) + 2, len(emisRow) + 1, len(emisRow) + 2}},
		{"\"\"\n\"a\",\"\"\r\n", []int{3, 8}},
		{"\"abcdef\",\"x\"\n\"abcdef\",\"x\"\n\"a\",\"bc\",\"x\"\n", []int{13, 13, 13}},
		{"\"abc\",\"z\"\n\"abc\",\"z\"\n\"a\",\",x\"\n", []int{10, 10, 9}},
		{"\"a\nb\",\"c\r\nd\"\r\n", []int{14}},
		{"\"a\",\"b\"", []int{-1}},
		{"\"a\",\"b\"\r", []int{-1}},
		{"\"a\"\"b\"\n", []int{-1}},
		{"a,\"b\"\n", []int{-1}},
		{"\"a\",b\n", []int{-1}},
		{"\"a\"b\n", []int{-1}},
		{"\"a\"\rb\n", []int{-1}},
		{"\"a\",\n", []int{-1}},
	} {
		p := newQuotedRecords(strings.NewReader(tc.in), ',', 1)
		for p.more() {
		}
		for i, want := range tc.want {
			n := p.fast()
			if want < 0 {
				if n != 0 {
					t.Errorf("%q record %d: fast took %d bytes, want scan", tc.in, i+1, n)
				}
				break
			}
			if n != want {
				t.Errorf("%q record %d: fast took %d bytes, want %d", tc.in, i+1, n, want)
				break
			}
			p.finish(n)
			p.rec += p.n
		}
	}
}

// TestQuotedFastBackoff: after records of other shapes in a row, fast is
// tried less often, and as often as before once it takes one again.
func TestQuotedFastBackoff(t *testing.T) {
	setQuotedFast(t, true)
	escaped := strings.Replace(emisRow, `"Value"`, `"Va""lue"`, 1) + "\r\n"
	in := strings.Repeat(escaped, 100) + strings.Repeat(emisRow+"\r\n", 50)
	p := newQuotedRecords(strings.NewReader(in), ',', 4096)
	for range 100 {
		if err := p.next(); err != nil {
			t.Fatal(err)
		}
	}
	if p.backoff != 31 {
		t.Errorf("after 100 records fast cannot take, backoff %d, want 31", p.backoff)
	}
	for range 50 {
		if err := p.next(); err != nil {
			t.Fatal(err)
		}
	}
	if p.backoff != 0 || p.skip != 0 {
		t.Errorf("after 50 records fast can take, backoff %d, skip %d, want 0", p.backoff, p.skip)
	}
	if err := compareFastScan([]byte(in), ',', 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
}

// TestQuotedFastFieldsGrow: records wider than any before.
func TestQuotedFastFieldsGrow(t *testing.T) {
	var b strings.Builder
	for n := range 40 {
		b.WriteString(strings.Repeat("\"f\",", n*n) + "\"f\"\n")
	}
	for _, size := range []int{1, 4096} {
		if err := compareFastScan([]byte(b.String()), ',', 1<<20, size); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQuotes8 checks quotes8 byte by byte, on bytes around '"' and on
// quotes next to each other, where a borrow would show.
func TestQuotes8(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const alphabet = "\"\"#!\x00\xA2\xA3\xFF\x01,\n\r"
	for range 100000 {
		var x, want uint64
		for i := range 8 {
			c := alphabet[rng.IntN(len(alphabet))]
			if rng.IntN(8) == 0 {
				c = byte(rng.Uint32())
			}
			x |= uint64(c) << (8 * i)
			if c == '"' {
				want |= 0x80 << (8 * i)
			}
		}
		if got := quotes8(x); got != want {
			t.Fatalf("quotes8(%#016x) = %#016x, want %#016x", x, got, want)
		}
	}
}

// TestNextQuote checks nextQuote against bytes.IndexByte, a quote at every
// offset from every start.
func TestNextQuote(t *testing.T) {
	for n := range 100 {
		b := bytes.Repeat([]byte{'x'}, n)
		for q := -1; q < n; q++ {
			if q >= 0 {
				b[q] = '"'
				if q+3 < n {
					b[q+3] = '"'
				}
			}
			for i := 0; i <= n; i++ {
				want := bytes.IndexByte(b[i:], '"')
				if want >= 0 {
					want += i
				}
				if got := nextQuote(b, i); got != want {
					t.Fatalf("nextQuote(%q, %d) = %d, want %d", b, i, got, want)
				}
			}
			if q >= 0 {
				b[q] = 'x'
				if q+3 < n {
					b[q+3] = 'x'
				}
			}
		}
	}
}

// benchParse parses data, already in the buffer, the parser's own cost;
// with fresh, a new copy each time, for data the parser rewrites (`""`).
func benchParse(b *testing.B, data []byte, fast, fresh bool) {
	setQuotedFast(b, fast)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	p := newQuotedRecords(nil, ',', 0)
	buf := data
	if fresh {
		buf = make([]byte, len(data))
	}
	for b.Loop() {
		if fresh {
			copy(buf, data)
		}
		*p = quotedRecords{byteFields: p.byteFields, delim: ',', buf: buf, w: len(buf), err: io.EOF, lines: 1, spans: p.spans, pred: p.pred}
		for {
			if err := p.next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkQuotedParse is the parser alone, with and without fast, on
// about 256 KiB (as a read buffer holds: it stays in the cache) of
// emisLike rows (12 fields, some varying in length) and of emisRow-like
// ones (23 fields, many empty), with and without `""`.
func BenchmarkQuotedParse(b *testing.B) {
	emis := emisData()
	emis = emis[:256<<10+bytes.IndexByte(emis[256<<10:], '\n')+1]
	rows := emisRows(256 << 10)
	// Rows fast leaves to scan, for the cost of trying.
	escaped := bytes.ReplaceAll(rows, []byte(`"Value"`), []byte(`"Va""lue"`))
	for _, in := range []struct {
		name  string
		data  []byte
		fresh bool
	}{{"emis12", emis, false}, {"emis23", rows, false}, {"emis23-escaped", escaped, true}} {
		b.Run(in.name+"/fast", func(b *testing.B) { benchParse(b, in.data, true, in.fresh) })
		b.Run(in.name+"/scan", func(b *testing.B) { benchParse(b, in.data, false, in.fresh) })
	}
}

// emisRows generates n bytes (or a little more) of rows like emisRow.
func emisRows(n int) []byte {
	rng := rand.New(rand.NewPCG(5, 6))
	guid := func() string {
		return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", rng.Uint32(), rng.Uint32()&0xFFFF, rng.Uint32()&0xFFFF, rng.Uint32()&0xFFFF, rng.Uint64()&0xFFFFFFFFFFFF)
	}
	units := []string{"kg/m2", "mmol/L", "kg", "cm", ""}
	org := guid()
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, `"%s","%s","%s","2020-%02d-%02d","YMD","2020-%02d-%02d","%02d:%02d:%02d","%s","%s","","%X","","","%s","%d.%d","%s","Value","%d","%d","","false","false","1"`+"\r\n",
			guid(), guid(), org, 1+rng.IntN(12), 1+rng.IntN(28), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60),
			guid(), guid(), rng.IntN(1<<(4*(1+rng.IntN(3)))), guid(), rng.IntN(100), rng.IntN(10), units[rng.IntN(len(units))], rng.IntN(100), rng.IntN(100))
	}
	return b.Bytes()
}
