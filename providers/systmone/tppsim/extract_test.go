package tppsim

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

var testTime = time.Date(2026, 11, 21, 2, 15, 0, 0, time.UTC)

func testConfig(delim, quote string) srfile.ReportConfig {
	return srfile.ReportConfig{
		Report: "core", ReportingUnit: "X24", Organisations: []string{"A81001", "B82005"},
		Tables: []srfile.ReportTable{
			{Name: "SRPatient", Fields: []string{"RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber", "FirstName", "Surname", "DateBirth", "Gender"}},
			{Name: "SRCode"},
			{Name: "SREvent", Fields: []string{"RowIdentifier", "IDPatient", "IDOrganisationVisibleTo", "DateEvent", "ContactMethod"}},
			{Name: "SRPatientRegistration"},
		},
		Delimiter: delim, TextQualifier: quote, Frequency: "daily", Start: "2026-11-01",
		RootDirectory: `\\gateway\tpp`, TechnicalContact: "data@example.invalid",
	}
}

func testSpec(t testing.TB) ExtractSpec {
	return ExtractSpec{Root: t.TempDir(), Config: testConfig(",", `"`), Time: testTime,
		From: testTime.AddDate(0, 0, -1), Patients: 30, Seed: 7}
}

// extract is a written extract folder as a reader sees it.
type extract struct {
	dir      string
	names    []string
	manifest *srfile.Manifest
	files    map[string][]byte // zip entries, raw bytes
}

func readExtract(t *testing.T, dir string) *extract {
	t.Helper()
	x := &extract{dir: dir, files: map[string][]byte{}}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		x.names = append(x.names, e.Name())
	}
	f, err := os.Open(filepath.Join(dir, srfile.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if x.manifest, err = srfile.ParseManifest(f); err != nil {
		t.Fatal(err)
	}
	entries, c, err := srfile.OpenExtract(dir, x.names)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, e := range entries {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		x.files[strings.TrimSuffix(e.Name, ".csv")] = b
	}
	return x
}

// header returns the decoded header of a Windows-1252 CSV.
func header(t *testing.T, b []byte, delim, quote byte) []string {
	t.Helper()
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	s, _ := charmap.Windows1252.NewDecoder().String(string(line))
	if quote == 0 {
		return strings.Split(s, string(delim))
	}
	r := csv.NewReader(strings.NewReader(s))
	r.Comma = rune(delim)
	rec, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestWriteExtractIsWhatAReaderExpects(t *testing.T) {
	dialects := []struct{ delim, quote string }{{",", `"`}, {"|", ""}, {"\t", `"`}, {";", ""}}
	for _, d := range dialects {
		for _, full := range []bool{true, false} {
			t.Run(strings.ReplaceAll(d.delim, "\t", "tab")+d.quote+map[bool]string{true: " full", false: " delta"}[full], func(t *testing.T) {
				spec := testSpec(t)
				spec.Config = testConfig(d.delim, d.quote)
				spec.Full = full
				folder, err := WriteExtract(spec)
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := srfile.ParseFolder(filepath.Base(folder)); !ok || !got.Equal(testTime) {
					t.Fatalf("folder %s", folder)
				}
				roots, _ := os.ReadDir(spec.Root)
				if len(roots) != 1 {
					t.Fatalf("root holds %d entries, want only the extract", len(roots))
				}
				x := readExtract(t, folder)
				slices.Sort(x.names)
				if want := []string{"SRExtract.zip", "SRManifest.csv", "SRMapping.csv", "SRMappingGroup.csv"}; !slices.Equal(x.names, want) {
					t.Fatalf("folder holds %v, want %v", x.names, want)
				}
				m := x.manifest
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				if m.IsFull() != full || !m.Cutoff().Equal(testTime) {
					t.Fatalf("IsFull %v cutoff %v", m.IsFull(), m.Cutoff())
				}
				if !full && !m.From().Equal(spec.From) {
					t.Fatalf("From %v, want %v", m.From(), spec.From)
				}
				tables := slices.Sorted(func(yield func(string) bool) {
					for k := range x.files {
						if !yield(k) {
							return
						}
					}
				})
				if got := slices.Sorted(slices.Values(m.Tables())); !slices.Equal(got, tables) {
					t.Fatalf("manifest lists %v, zip holds %v", got, tables)
				}
				if !slices.Contains(tables, "SROrganisation") {
					t.Fatal("SROrganisation missing")
				}
				delim, _ := spec.Config.DelimiterByte()
				quote, _ := spec.Config.QuoteByte()
				for name, body := range x.files {
					want, err := columns(findTable(spec.Config, name), "93")
					if err != nil {
						t.Fatal(err)
					}
					checkCSV(t, name, body, delim, quote, want.cols, full)
				}
				for _, f := range []string{srfile.MappingFile, srfile.MappingGroupFile} {
					b, err := os.ReadFile(filepath.Join(folder, f))
					if err != nil {
						t.Fatal(err)
					}
					tab, _ := srfile.Lookup(strings.TrimSuffix(f, ".csv"))
					checkCSV(t, f, b, delim, quote, tab.Latest().Columns, full)
				}
				var orgs bytes.Buffer
				if _, err := landing.Check(bytes.NewReader(x.files["SROrganisation"]), &orgs, landing.CSVSpec{Delimiter: delim, Quote: quote, Encoding: landing.Windows1252}); err != nil {
					t.Fatal(err)
				}
				got, err := srfile.ParseOrganisations(&orgs, delim, quote)
				if err != nil {
					t.Fatal(err)
				}
				for _, ods := range append(spec.Config.Organisations, spec.Config.ReportingUnit) {
					if got[ods] == "" {
						t.Errorf("SROrganisation has no name for %s: %v", ods, got)
					}
				}
			})
		}
	}
}

func findTable(c srfile.ReportConfig, name string) srfile.ReportTable {
	for _, t := range c.Tables {
		if t.Name == name {
			return t
		}
	}
	return srfile.ReportTable{Name: name}
}

// checkCSV runs the landing checker over one table: it decodes
// Windows-1252, checks the header is exactly the declared one, field
// counts, and NHS numbers.
func checkCSV(t *testing.T, name string, body []byte, delim, quote byte, cols []string, full bool) {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		t.Errorf("%s: no CRLF at the end", name)
	}
	if got := header(t, body, delim, quote); !slices.Equal(got, cols) {
		t.Errorf("%s: header %q, want %q", name, got, cols)
	}
	tab, _ := srfile.Lookup(strings.TrimSuffix(name, ".csv"))
	var out bytes.Buffer
	st, err := landing.Check(bytes.NewReader(body), &out, landing.CSVSpec{
		Delimiter: delim, Quote: quote, Encoding: landing.Windows1252,
		Versions: []landing.HeaderVersion{{Name: "declared", Columns: cols}}, NHSColumn: tab.NHSColumn,
		DeletedColumn: srfile.RemovedData, DeletedValue: "1", OrgColumn: tab.OrgColumn,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if st.BadNHS != 0 {
		t.Errorf("%s: %d bad NHS numbers", name, st.BadNHS)
	}
	if full && st.Deleted != 0 {
		t.Errorf("%s: %d RemovedData rows in a full extract", name, st.Deleted)
	}
	if st.Rows == 0 && (full || tab.Reference) {
		t.Errorf("%s: no rows", name)
	}
	if quote != 0 && bytes.Contains(body, []byte{delim, delim}) {
		t.Errorf("%s: an unquoted empty field in a qualified file", name)
	}
}

// The non-ASCII names are written as single Windows-1252 bytes.
func TestWriteExtractEncodesWindows1252(t *testing.T) {
	spec := testSpec(t)
	spec.Full = true
	folder, err := WriteExtract(spec)
	if err != nil {
		t.Fatal(err)
	}
	x := readExtract(t, folder)
	all := bytes.Join([][]byte{x.files["SRPatient"], x.files["SRCode"]}, nil)
	for _, want := range []string{"Zo\xeb", "Ren\xe9e", "M\xe9ni\xe8re"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("no %q in SRPatient/SRCode", want)
		}
	}
	if bytes.Contains(all, []byte("\xc3")) {
		t.Error("UTF-8 bytes in a Windows-1252 file")
	}
}

func TestWriteExtractDeterministic(t *testing.T) {
	write := func(seed int64, split bool) map[string][]byte {
		spec := testSpec(t)
		spec.Seed = seed
		spec.Faults.SplitZip = split
		folder, err := WriteExtract(spec)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		es, _ := os.ReadDir(folder)
		for _, e := range es {
			b, err := os.ReadFile(filepath.Join(folder, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
		return out
	}
	for _, split := range []bool{false, true} {
		a, b, c := write(1, split), write(1, split), write(2, split)
		if len(a) != len(b) {
			t.Fatal("different file sets")
		}
		for n := range a {
			if !bytes.Equal(a[n], b[n]) {
				t.Errorf("split=%v %s differs between runs with one seed", split, n)
			}
		}
		if bytes.Equal(a["SRExtract.zip"], c["SRExtract.zip"]) {
			t.Errorf("split=%v seeds 1 and 2 gave the same zip", split)
		}
	}
}

func TestWriteExtractFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults Faults
		full   bool
		check  func(t *testing.T, spec ExtractSpec, folder string)
	}{
		{name: "manifest lists missing (declared table)", faults: Faults{ManifestListsMissing: "SREvent"}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if _, ok := x.files["SREvent"]; ok || !slices.Contains(x.manifest.Tables(), "SREvent") {
				t.Fatalf("zip %v manifest %v", len(x.files), x.manifest.Tables())
			}
		}},
		{name: "manifest lists missing (undeclared table)", faults: Faults{ManifestListsMissing: "SRVisit"}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if _, ok := x.files["SRVisit"]; ok || !slices.Contains(x.manifest.Tables(), "SRVisit") {
				t.Fatal("SRVisit not listed-but-missing")
			}
		}},
		{name: "gap", faults: Faults{GapMinutes: 90}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if _, err := srfile.CheckContinuity(spec.From, x.manifest.From()); err == nil || !strings.Contains(err.Error(), "does not match end date of last batch") {
				t.Fatalf("continuity: %v", err)
			}
		}},
		{name: "overlap", faults: Faults{Overlap: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if err := x.manifest.Check(); err != nil {
				t.Fatal(err)
			}
			overlap, err := srfile.CheckContinuity(spec.From, x.manifest.From())
			if err != nil || !overlap {
				t.Fatalf("overlap %v err %v", overlap, err)
			}
			if r, _ := x.manifest.Row("SRCode"); r.IsDelta {
				t.Fatal("SRCode re-bulk flagged delta")
			}
			if x.manifest.IsFull() {
				t.Fatal("an SRCode-only re-bulk is not a full extract")
			}
		}},
		{name: "wrong IsDelta", faults: Faults{WrongIsDelta: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if r, _ := x.manifest.Row("SRPatient"); r.IsDelta {
				t.Fatal("SRPatient still flagged delta")
			}
			if r, _ := x.manifest.Row("SRCode"); !r.IsDelta {
				t.Fatal("SRCode flag changed too")
			}
			// The content is still a delta: about a fifth of the patients.
			if n := bytes.Count(x.files["SRPatient"], []byte("\r\n")) - 1; n >= 2*spec.Patients {
				t.Fatalf("%d SRPatient rows: content is not a delta", n)
			}
		}},
		{name: "wrong IsDelta in a full extract", full: true, faults: Faults{WrongIsDelta: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if r, _ := x.manifest.Row("SRPatient"); !r.IsDelta || r.From.IsZero() {
				t.Fatal("SRPatient not flagged delta")
			}
			if x.manifest.IsFull() {
				t.Fatal("still full")
			}
		}},
		{name: "RemovedData toggled", faults: Faults{RemovedDataToggle: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			for name, b := range x.files {
				if bytes.Contains(b, []byte("RemovedData")) {
					t.Errorf("%s still has RemovedData", name)
				}
			}
			code, _ := srfile.Lookup("SRCode")
			if _, ok := code.MatchHeader(header(t, x.files["SRCode"], ',', '"')); !ok {
				t.Error("SRCode header matches no version")
			}
		}},
		{name: "left in progress", faults: Faults{LeaveInProgress: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			if _, ok := srfile.ParseFolder(filepath.Base(folder)); ok {
				t.Fatalf("%s looks complete", folder)
			}
			es, _ := os.ReadDir(spec.Root)
			if len(es) != 1 || es[0].Name() != filepath.Base(folder) {
				t.Fatalf("root holds %v", es)
			}
		}},
		{name: "non-CSV entry", faults: Faults{NonCSVEntry: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			if _, err := openExtract(folder); err == nil || !strings.Contains(err.Error(), "readme.txt") {
				t.Fatalf("got %v", err)
			}
		}},
		{name: "evil entry name", faults: Faults{EvilEntryName: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			if _, err := openExtract(folder); err == nil || !strings.Contains(err.Error(), "../x.csv") {
				t.Fatalf("got %v", err)
			}
		}},
		{name: "split zip", faults: Faults{SplitZip: true}, check: func(t *testing.T, spec ExtractSpec, folder string) {
			x := readExtract(t, folder)
			if !slices.Contains(x.names, "SRExtract.z01") || !slices.Contains(x.names, "SRExtract.z02") {
				t.Fatalf("no parts: %v", x.names)
			}
			spec.Faults.SplitZip = false
			spec.Root = t.TempDir()
			whole, err := WriteExtract(spec)
			if err != nil {
				t.Fatal(err)
			}
			y := readExtract(t, whole)
			if len(x.files) != len(y.files) {
				t.Fatal("entry count differs")
			}
			for n := range y.files {
				if !bytes.Equal(x.files[n], y.files[n]) {
					t.Errorf("%s differs between split and whole", n)
				}
			}
			infoZipJoins(t, folder)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t)
			spec.Full = tc.full
			spec.Faults = tc.faults
			folder, err := WriteExtract(spec)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, spec, folder)
		})
	}
}

func openExtract(folder string) ([]srfile.Entry, error) {
	es, err := os.ReadDir(folder)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	entries, c, err := srfile.OpenExtract(folder, names)
	if err == nil {
		c.Close()
	}
	return entries, err
}

// infoZipJoins checks our split archive against Info-ZIP: `zip -s 0`
// rejoins it and `unzip -t` finds every CRC right.
func infoZipJoins(t *testing.T, folder string) {
	if _, err := os.Stat("/usr/bin/zip"); err != nil {
		t.Log("no /usr/bin/zip; skipping the Info-ZIP cross-check")
		return
	}
	joined := filepath.Join(t.TempDir(), "joined.zip")
	if out, err := exec.Command("/usr/bin/zip", "-q", "-s", "0", filepath.Join(folder, "SRExtract.zip"), "--out", joined).CombinedOutput(); err != nil {
		t.Fatalf("zip -s 0: %v\n%s", err, out)
	}
	if _, err := os.Stat("/usr/bin/unzip"); err != nil {
		return
	}
	if out, err := exec.Command("/usr/bin/unzip", "-tq", joined).CombinedOutput(); err != nil {
		t.Fatalf("unzip -t: %v\n%s", err, out)
	}
}

func TestWriteExtractRefuses(t *testing.T) {
	cases := []struct {
		name string
		edit func(*ExtractSpec)
		want string
	}{
		{"unknown table", func(s *ExtractSpec) { s.Config.Tables = append(s.Config.Tables, srfile.ReportTable{Name: "SRNope"}) }, "unknown SystmOne table"},
		{"unknown field", func(s *ExtractSpec) { s.Config.Tables[0].Fields = []string{"Shoe"} }, "no field"},
		{"field not in version", func(s *ExtractSpec) {
			s.Version = "90"
			s.Config.Tables = []srfile.ReportTable{{Name: "SRCode", Fields: []string{"IDQuestionnaire"}}}
		}, "version 90 has no field IDQuestionnaire"},
		{"delta without From", func(s *ExtractSpec) { s.From = time.Time{} }, "needs From"},
		{"bad delimiter", func(s *ExtractSpec) { s.Config.Delimiter = "x" }, "delimiter"},
		{"unsafe missing name", func(s *ExtractSpec) { s.Faults.ManifestListsMissing = "../SRCode" }, "unsafe"},
		{"no toggle sibling", func(s *ExtractSpec) { s.Version = "87"; s.Faults.RemovedDataToggle = true }, "no sibling"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t)
			tc.edit(&spec)
			if _, err := WriteExtract(spec); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if es, _ := os.ReadDir(spec.Root); len(es) != 0 {
				t.Fatalf("left %v behind", es)
			}
		})
	}
}

// Older versions: SRCode without SNOMED columns, RemovedData per version.
func TestWriteExtractVersions(t *testing.T) {
	for _, v := range srfile.Versions() {
		t.Run(v, func(t *testing.T) {
			spec := testSpec(t)
			spec.Version = v
			spec.Config.Tables = []srfile.ReportTable{{Name: "SRCode"}, {Name: "SRPatient"}}
			folder, err := WriteExtract(spec)
			if err != nil {
				t.Fatal(err)
			}
			x := readExtract(t, folder)
			for _, name := range []string{"SRCode", "SRPatient", "SROrganisation"} {
				tab, _ := srfile.Lookup(name)
				got, ok := tab.MatchHeader(header(t, x.files[name], ',', '"'))
				want, _ := tab.Version(v)
				if !ok || !slices.Equal(got.Columns, want.Columns) {
					t.Errorf("%s header matches %q, want the columns of %s", name, got.Name, v)
				}
			}
		})
	}
}
