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
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

var emisPatient = HeaderVersion{Name: "5.4", Columns: []string{"PatientGuid", "OrganisationGuid", "NhsNumber", "Deleted"}}

var emisSpec = CSVSpec{
	Quote:         '"',
	Versions:      []HeaderVersion{emisPatient, {Name: "5.0", Columns: []string{"PatientGuid", "OrganisationGuid", "NhsNumber"}}},
	NHSColumn:     "NhsNumber",
	DeletedColumn: "Deleted", DeletedValue: "true",
	OrgColumn: "OrganisationGuid",
}

var tppSpec = CSVSpec{
	Delimiter: '|',
	Encoding:  Windows1252,
	Versions:  []HeaderVersion{{Name: "93", Columns: []string{"RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber", "RemovedData"}}},
	NHSColumn: "NHSNumber", DeletedColumn: "RemovedData", DeletedValue: "1",
	OrgColumn: "IDOrganisationVisibleTo",
}

func TestCheck(t *testing.T) {
	const hdr = `"PatientGuid","OrganisationGuid","NhsNumber","Deleted"` + "\r\n"
	with := func(s CSVSpec, f func(*CSVSpec)) CSVSpec {
		s.Versions = slices.Clone(s.Versions)
		f(&s)
		return s
	}
	type want struct {
		rows, deleted, badNHS int64
		version               string
		perOrg                map[string]int64
		out                   string // expected output when it differs from the input
	}
	for _, tc := range []struct {
		name    string
		spec    CSVSpec
		in      string
		want    want
		errLine int    // 0: no error expected
		errText string // substring of the reason
	}{
		{
			name: "emis crlf",
			spec: emisSpec,
			in: hdr + `"p1","o1","9434765919","false"` + "\r\n" +
				`"p2","o1","9434765918","TRUE"` + "\r\n" +
				`"p3","o2","","false"` + "\r\n",
			want: want{rows: 3, deleted: 1, badNHS: 1, version: "5.4", perOrg: map[string]int64{"o1": 2, "o2": 1}},
		},
		{
			name: "older version lf no final newline",
			spec: emisSpec,
			in:   "PatientGuid,OrganisationGuid,NhsNumber\np1,o1,4010232137\np2,o1,401023213",
			want: want{rows: 2, badNHS: 1, version: "5.0", perOrg: map[string]int64{"o1": 2}},
		},
		{
			name: "bom stripped",
			spec: emisSpec,
			in:   "\xEF\xBB\xBF" + hdr + `"p1","o1","","false"` + "\r\n",
			want: want{rows: 1, version: "5.4", perOrg: map[string]int64{"o1": 1}, out: hdr + `"p1","o1","","false"` + "\r\n"},
		},
		{
			name: "embedded newline and doubled quotes",
			spec: emisSpec,
			in:   hdr + `"p1","o""1","","line one` + "\r\nline two\n" + `he said ""hi"""` + "\r\n" + `"p2","o1","","false"` + "\r\n",
			want: want{rows: 2, version: "5.4", perOrg: map[string]int64{`o"1`: 1, "o1": 1}},
		},
		{
			name: "header only", spec: emisSpec, in: hdr,
			want: want{version: "5.4", perOrg: map[string]int64{}},
		},
		{
			name: "unicode utf-8", spec: emisSpec, in: hdr + `"p1","Ünïcødé €","","false"` + "\r\n",
			want: want{rows: 1, version: "5.4", perOrg: map[string]int64{"Ünïcødé €": 1}},
		},
		{name: "empty", spec: emisSpec, in: "", errLine: 1, errText: "no header"},
		{name: "bom only", spec: emisSpec, in: "\xEF\xBB\xBF", errLine: 1, errText: "no header"},
		{
			name: "nul byte", spec: emisSpec,
			in:      hdr + `"p1","o1","","false"` + "\r\n" + `"p2","o` + "\x00" + `","","false"` + "\r\n",
			errLine: 3, errText: "NUL",
		},
		{
			name: "invalid utf-8", spec: emisSpec,
			in:      hdr + `"p1","o1","","false"` + "\r\n" + `"p2","o1","","false"` + "\r\n" + `"p3","caf` + "\xE9" + `","","false"` + "\r\n",
			errLine: 4, errText: "invalid UTF-8 (byte 0xE9)",
		},
		{
			name: "truncated utf-8 at eof", spec: emisSpec,
			in:      hdr + `"p1","o1","","false"` + "\r\n\xE2\x82",
			errLine: 3, errText: "invalid UTF-8",
		},
		{
			name: "ragged row is found before a later bad byte", spec: emisSpec,
			in:      hdr + `"p1","o1",""` + "\r\n" + "\x00",
			errLine: 2, errText: "3 fields, the header has 4",
		},
		{
			name: "long row", spec: emisSpec,
			in:      hdr + `"p1","o1","","false"` + "\r\n" + `"p1","o1","","false",""` + "\r\n",
			errLine: 3, errText: "5 fields, the header has 4",
		},
		{
			name: "bare quote", spec: emisSpec,
			in:      hdr + `"p1",o"1,"","false"` + "\r\n",
			errLine: 2, errText: `bare "`,
		},
		{
			name: "unterminated quote", spec: emisSpec,
			in:      hdr + `"p1","o1","","false` + "\r\n",
			errLine: 2, errText: `extraneous or missing "`,
		},
		{
			name: "missing column", spec: emisSpec,
			in:      `"PatientGuid","OrganisationGuid","Deleted"` + "\r\n",
			errLine: 1, errText: `closest is "5.4": missing "NhsNumber"`,
		},
		{
			name: "renamed column", spec: emisSpec,
			in:      `"PatientGuid","OrganisationGuid","NHSNumber","Deleted"` + "\r\n",
			errLine: 1, errText: `closest is "5.4": missing "NhsNumber"; unexpected "NHSNumber"`,
		},
		{
			name: "reordered", spec: emisSpec,
			in:      `"OrganisationGuid","PatientGuid","NhsNumber","Deleted"` + "\r\n",
			errLine: 1, errText: `different order (column 1 is "OrganisationGuid", expected "PatientGuid")`,
		},
		{
			name: "duplicate column", spec: emisSpec,
			in:      `"PatientGuid","OrganisationGuid","NhsNumber","PatientGuid"` + "\r\n",
			errLine: 1, errText: `duplicate column "PatientGuid" (columns 1 and 4)`,
		},
		{
			name: "duplicate column without versions", spec: CSVSpec{Quote: '"'},
			in:      "a,b,a\n",
			errLine: 1, errText: `duplicate column "a"`,
		},
		{
			name: "any header without versions", spec: CSVSpec{Quote: '"'},
			in:   "a,b\n1,2\n\n3,4\n",
			want: want{rows: 2},
		},
		{
			name: "tpp windows-1252",
			spec: tppSpec,
			in:   "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\r\n1|A12345|9434765919|0\r\n2|A12345|9434765919|1\r\n3|B23456||\r\n4|B23456|1234567890|0\r\n5|A12345|\"|caf\xE9 \x80 \xA3 \x9F\r\n",
			want: want{
				rows: 5, deleted: 1, badNHS: 2, version: "93", perOrg: map[string]int64{"A12345": 3, "B23456": 2},
				out: "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\r\n1|A12345|9434765919|0\r\n2|A12345|9434765919|1\r\n3|B23456||\r\n4|B23456|1234567890|0\r\n5|A12345|\"|café € £ Ÿ\r\n",
			},
		},
		{
			name: "tpp undefined byte", spec: tppSpec,
			in:      "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\n1|A|\x81|0\n",
			errLine: 2, errText: "0x81 is undefined in Windows-1252",
		},
		{
			name: "tpp utf-8 bom", spec: tppSpec,
			in:      "\xEF\xBB\xBFRowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\n",
			errLine: 1, errText: "byte order mark",
		},
		{
			name: "tpp without RemovedData column",
			spec: with(tppSpec, func(s *CSVSpec) {
				s.Versions = append(s.Versions, HeaderVersion{Name: "92", Columns: []string{"RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber"}})
			}),
			in:   "RowIdentifier|IDOrganisationVisibleTo|NHSNumber\n1|A|9434765919\n",
			want: want{rows: 1, version: "92", perOrg: map[string]int64{"A": 1}},
		},
		{
			name: "tpp ragged", spec: tppSpec,
			in:      "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\n1|A||0\n\n2|A|0\n",
			errLine: 4, errText: "3 fields, the header has 4",
		},
		{
			name: "tab quoted",
			spec: CSVSpec{Delimiter: '\t', Quote: '"', Versions: []HeaderVersion{{Name: "v", Columns: []string{"a", "b"}}}},
			in:   "a\tb\n\"x\ty\"\tz\n",
			want: want{rows: 1, version: "v"},
		},
		{
			name: "row over the limit, quoted",
			spec: with(emisSpec, func(s *CSVSpec) { s.MaxRowBytes = 100 }),
			in:   hdr + `"p1","o1","","false"` + "\r\n" + `"p2","` + strings.Repeat("x", 200) + `","","false"` + "\r\n",
			// small enough to be read whole, then measured
			errLine: 3, errText: "exceeds the 100-byte limit",
		},
		{
			name:    "row far over the limit, quoted, many lines",
			spec:    with(emisSpec, func(s *CSVSpec) { s.MaxRowBytes = 1000 }),
			in:      hdr + `"p1","o1","","false"` + "\r\n" + `"p2","` + strings.Repeat("x\n", 300000) + `","","false"` + "\r\n",
			errLine: 3, errText: "exceeds the 1000-byte limit",
		},
		{
			name:    "row far over the limit, plain",
			spec:    with(tppSpec, func(s *CSVSpec) { s.MaxRowBytes = 1000 }),
			in:      "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\n1|" + strings.Repeat("x", 600000) + "||\n",
			errLine: 2, errText: "exceeds the 1000-byte limit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The same answer whatever the read sizes.
			for _, rd := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{{"whole", func(r io.Reader) io.Reader { return r }}, {"bytewise", iotest.OneByteReader}, {"halves", iotest.HalfReader}} {
				if rd.name != "whole" && len(tc.in) > 10000 {
					continue
				}
				var out bytes.Buffer
				st, err := Check(rd.wrap(strings.NewReader(tc.in)), &out, tc.spec)
				if tc.errLine != 0 {
					var fe *FormatError
					if !errors.As(err, &fe) || fe.Line != tc.errLine || !strings.Contains(fe.Reason, tc.errText) {
						t.Fatalf("%s: err = %v, want line %d: ...%s...", rd.name, err, tc.errLine, tc.errText)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", rd.name, err)
				}
				w := tc.want
				if w.out == "" {
					w.out = tc.in
				}
				if out.String() != w.out {
					t.Fatalf("%s: output\n%q\nwant\n%q", rd.name, out.String(), w.out)
				}
				sum := sha256.Sum256(out.Bytes())
				if st.SHA256 != hex.EncodeToString(sum[:]) || st.Bytes != int64(out.Len()) {
					t.Errorf("%s: SHA256/Bytes %s/%d do not describe the output", rd.name, st.SHA256, st.Bytes)
				}
				if st.Rows != w.rows || st.Deleted != w.deleted || st.BadNHS != w.badNHS || st.Version != w.version || !maps.Equal(st.PerOrg, w.perOrg) {
					t.Errorf("%s: stats %+v, want %+v", rd.name, st, w)
				}
			}
		})
	}
}

func TestCheckRequiredFields(t *testing.T) {
	spec := CSVSpec{Quote: '"', Required: []string{"a", "b", "c"}}
	st, err := Check(strings.NewReader("a,c,d\n"), io.Discard, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.MissingFields, []string{"b"}) || !slices.Equal(st.ExtraFields, []string{"d"}) || !slices.Equal(st.Header, []string{"a", "c", "d"}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestCheckBadSpec(t *testing.T) {
	for _, spec := range []CSVSpec{
		{Quote: '\''},
		{Quote: '"', Delimiter: '"'},
		{Delimiter: '\n'},
		{Delimiter: 0xA6},
		{Encoding: 7},
		{DeletedColumn: "Deleted"},
	} {
		if _, err := Check(strings.NewReader("a\n"), io.Discard, spec); err == nil {
			t.Errorf("spec %+v accepted", spec)
		}
	}
}

// TestCheckIOErrors: errors from the plaintext (say, a failed integrity
// check) and from the output come back as they are, not as format errors.
func TestCheckIOErrors(t *testing.T) {
	errIntegrity := errors.New("integrity check failed")
	in := io.MultiReader(strings.NewReader(`"PatientGuid","OrganisationGuid","NhsNumber","Deleted"`+"\n"+`"p1","o1",`), iotest.ErrReader(errIntegrity))
	if _, err := Check(in, io.Discard, emisSpec); !errors.Is(err, errIntegrity) {
		t.Errorf("reader error: %v", err)
	}
	errFull := errors.New("no space left on device")
	if _, err := Check(strings.NewReader("a,b\n1,2\n"), errWriter{errFull}, CSVSpec{Quote: '"'}); !errors.Is(err, errFull) {
		t.Errorf("writer error: %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// TestCheckAllocs: memory per table is constant; only encoding/csv's one
// string per record is allocated per row.
func TestCheckAllocs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    CSVSpec
		perRow  float64
		rowText func(i int) string
		header  string
	}{
		{"quoted", emisSpec, 1, func(i int) string { return fmt.Sprintf(`"p%d","o%d","9434765919","false"`+"\r\n", i, i%4) },
			`"PatientGuid","OrganisationGuid","NhsNumber","Deleted"` + "\r\n"},
		{"plain", tppSpec, 0, func(i int) string { return fmt.Sprintf("%d|o%d|9434765919|0\r\n", i, i%4) },
			"RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(tc.header)
			const rows = 5000
			for i := range rows {
				b.WriteString(tc.rowText(i))
			}
			in := b.String()
			allocs := testing.AllocsPerRun(3, func() {
				if _, err := Check(strings.NewReader(in), io.Discard, tc.spec); err != nil {
					t.Fatal(err)
				}
			})
			if limit := tc.perRow*rows + 100; allocs > limit {
				t.Errorf("%v allocations for %d rows, want at most %v", allocs, rows, limit)
			}
		})
	}
}

func TestNHSNumberValid(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		// 943 476 591: 9*10+4*9+3*8+4*7+7*6+6*5+5*4+9*3+1*2 = 299; 299 mod 11 = 2; 11-2 = 9
		{"9434765919", true},
		// 401 023 213: 4*10+0+1*8+0+2*6+3*5+2*4+1*3+3*2 = 92; 92 mod 11 = 4; 11-4 = 7
		{"4010232137", true},
		// 000 000 000: sum 0; 11-0 = 11 -> check digit 0
		{"0000000000", true},
		// 100 000 001: 1*10+1*2 = 12; 12 mod 11 = 1; 11-1 = 10 -> no valid number
		{"1000000010", false},
		{"1000000011", false},
		// 999 999 999: 9*54 = 486; 486 mod 11 = 2; 11-2 = 9
		{"9999999999", true},
		// 123 456 788: 10+18+24+28+30+30+28+24+16 = 208; 208 mod 11 = 10; 11-10 = 1
		{"1234567881", true},
		{"1234567890", false}, // check digit should be 1
		{"9434765918", false},
		{"943476591", false},
		{"94347659190", false},
		{"943 476 5919", false},
		{"943476591a", false},
		{"", false},
		{"-434765919", false},
	} {
		if got := NHSNumberValid(tc.s); got != tc.ok {
			t.Errorf("NHSNumberValid(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
}

// fuzzSpec is fixed so FuzzCheck can compare with encoding/csv.
var fuzzSpec = CSVSpec{Quote: '"', NHSColumn: "n", DeletedColumn: "d", DeletedValue: "true", OrgColumn: "o", MaxRowBytes: 4096}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"n,d,o\n9434765919,true,A\n",
		"\xEF\xBB\xBF\"n\",\"d\"\r\n\"1\",\"x\ny\"\r\n",
		"a,b\n\"\"\"\",\"\"\n",
		"a\n\n\nb\n",
		"a,b\n1\n",
		"a\r\nb\r",
		"é,\xE2\x82",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		st, err := Check(bytes.NewReader(in), &out, fuzzSpec)
		if err != nil {
			return
		}
		plain := bytes.TrimPrefix(in, utf8BOM)
		if !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("output differs from the input")
		}
		r := csv.NewReader(bytes.NewReader(plain))
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("Check accepted what encoding/csv rejects: %v", err)
		}
		if st.Rows != int64(len(recs)-1) {
			t.Fatalf("Rows = %d, encoding/csv sees %d records after the header", st.Rows, len(recs)-1)
		}
	})
}

// emisLike generates n bytes (or a little more) of an EMIS-like table:
// every field quoted, CRLF, GUIDs, valid NHS numbers.
func emisLike(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.Grow(n + 1024)
	b.WriteString(`"ObservationGuid","PatientGuid","OrganisationGuid","NhsNumber","EffectiveDate","EffectiveDatePrecision","CodeId","Value","NumericUnit","AssociatedText","Deleted","ProcessingId"` + "\r\n")
	guid := func() string {
		return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", rng.Uint32(), rng.Uint32()&0xFFFF, rng.Uint32()&0xFFFF, rng.Uint32()&0xFFFF, rng.Uint64()&0xFFFFFFFFFFFF)
	}
	orgs := []string{guid(), guid(), guid()}
	for b.Len() < n {
		nhs := fmt.Sprintf("%09d", rng.IntN(1e9))
		sum := 0
		for i := range 9 {
			sum += int(nhs[i]-'0') * (10 - i)
		}
		check := (11 - sum%11) % 11
		if check == 10 {
			continue
		}
		fmt.Fprintf(&b, `"%s","%s","%s","%s%d","2026-%02d-%02d","YMD","%d","%d.%d","mmol/L","%s","%t","%d"`+"\r\n",
			guid(), guid(), orgs[rng.IntN(3)], nhs, check, 1+rng.IntN(12), 1+rng.IntN(28),
			rng.Int64N(1e15), rng.IntN(200), rng.IntN(10), strings.Repeat("text ", rng.IntN(6)), rng.IntN(50) == 0, 1000+rng.IntN(50))
	}
	return b.Bytes()
}

func BenchmarkCheck(b *testing.B) {
	data := emisLike(64 << 20)
	spec := CSVSpec{Quote: '"', NHSColumn: "NhsNumber", DeletedColumn: "Deleted", DeletedValue: "true", OrgColumn: "OrganisationGuid"}
	b.Run("emis-quoted-utf8", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Check(bytes.NewReader(data), io.Discard, spec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("emis-quoted-windows1252", func(b *testing.B) {
		s := spec
		s.Encoding = Windows1252
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Check(bytes.NewReader(data), io.Discard, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The floor: encoding/csv alone on the same bytes, for the ratio.
	b.Run("encoding-csv-alone", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r := csv.NewReader(bufio.NewReaderSize(bytes.NewReader(data), 64<<10))
			r.ReuseRecord = true
			for {
				if _, err := r.Read(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	plain := bytes.ReplaceAll(data, []byte(`"`), nil)
	b.Run("plain-unquoted", func(b *testing.B) {
		s := spec
		s.Quote = 0
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			if _, err := Check(bytes.NewReader(plain), io.Discard, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheckIntoPending is the landing step as providers run it: the table
// streams through Check into a Pending file, committed only when clean.
func TestCheckIntoPending(t *testing.T) {
	d, _ := openTestDir(t, 0o640, 0o750)
	const hdr = "RowIdentifier|IDOrganisationVisibleTo|NHSNumber|RemovedData\r\n"
	for _, tc := range []struct {
		name, in string
		landed   bool
	}{
		{"good", hdr + "1|A|9434765919|0\r\n", true},
		{"bad", hdr + "1|A|9434765919|0\r\n2|A|\x8D|0\r\n", false},
	} {
		rel := "b1/" + tc.name + ".csv"
		p, err := d.Create(rel)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Check(strings.NewReader(tc.in), p, tppSpec)
		if err == nil {
			err = p.Commit()
		} else {
			p.Abort()
		}
		if (err == nil) != tc.landed {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sum, size, herr := d.Hash(rel)
		if !tc.landed {
			if herr == nil {
				t.Errorf("%s: a failed check left a landed file", tc.name)
			}
			continue
		}
		if herr != nil || sum != st.SHA256 || size != st.Bytes {
			t.Errorf("%s: landed %s/%d, Check said %s/%d (%v)", tc.name, sum, size, st.SHA256, st.Bytes, herr)
		}
	}
	if p, _ := d.Partials(); len(p) != 0 {
		t.Errorf("partials left: %v", p)
	}
}

// jerkyWriter copies what it is given, now and then slowly, so the tee
// (source.go) falls behind the parser and chunks queue up.
type jerkyWriter struct {
	bytes.Buffer
	n int
}

func (w *jerkyWriter) Write(b []byte) (int, error) {
	if w.n++; w.n%3 == 0 {
		time.Sleep(time.Millisecond)
	}
	return w.Buffer.Write(b)
}

// TestCheckQueuedOutput: with the output slower than the parser, the
// landed bytes and their hash are still the input's, in order, for both
// encodings (Windows-1252 decodes into one buffer, which must not be
// reused before it is written).
func TestCheckQueuedOutput(t *testing.T) {
	utf8Data := emisLike(6 << 20)
	for _, enc := range []Encoding{UTF8, Windows1252} {
		in, out := utf8Data, utf8Data
		if enc == Windows1252 {
			// 0xE9 is "é", two bytes in UTF-8: the output differs.
			in = bytes.ReplaceAll(utf8Data, []byte("a"), []byte{0xE9})
			out = bytes.ReplaceAll(utf8Data, []byte("a"), []byte("é"))
		}
		spec := CSVSpec{Quote: '"', Encoding: enc}
		var w jerkyWriter
		st, err := Check(bytes.NewReader(in), &w, spec)
		if err != nil {
			t.Fatalf("%v: %v", enc, err)
		}
		want := sha256.Sum256(out)
		if !bytes.Equal(w.Bytes(), out) || st.SHA256 != hex.EncodeToString(want[:]) || st.Bytes != int64(len(out)) {
			t.Fatalf("%v: landed %d bytes (hash %s), want %d", enc, w.Len(), st.SHA256, len(out))
		}
	}
}

// TestCheckConcurrentReuse: checks running at once share the pooled
// read-ahead buffers without one seeing another's bytes, whether a check
// reads to the end or stops early at a bad byte.
func TestCheckConcurrentReuse(t *testing.T) {
	base := emisLike(3 << 20) // more than readAheadBuffers buffers' worth: they cycle
	sizes := []int{200, 300 << 10, len(base)}
	spec := CSVSpec{Quote: '"'}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for round := range 8 {
				in := base[:sizes[(g+round)%len(sizes)]]
				in = in[:bytes.LastIndex(in, []byte("\r\n"))+2]
				// Each check's bytes are its own.
				in = bytes.ReplaceAll(in, []byte("mmol/L"), fmt.Appendf(nil, "u%03d/L", g*8+round))
				bad := round%3 == 2
				if bad {
					in[len(in)/2] = 0
				}
				var out bytes.Buffer
				st, err := Check(bytes.NewReader(in), &out, spec)
				if bad {
					var fe *FormatError
					if !errors.As(err, &fe) || fe.Reason != "NUL byte" || !bytes.HasPrefix(in, out.Bytes()) {
						t.Errorf("check %d/%d: err %v, landed %d bytes not a prefix of the input", g, round, err, out.Len())
					}
					continue
				}
				want := sha256.Sum256(in)
				if err != nil || !bytes.Equal(out.Bytes(), in) || st.SHA256 != hex.EncodeToString(want[:]) {
					t.Errorf("check %d/%d: err %v, landed %d of %d bytes, hash %s", g, round, err, out.Len(), len(in), st.SHA256)
				}
			}
		})
	}
	wg.Wait()
}
