package emisfile

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The golden files are hand-written samples of each file type (see
// reference/supplier-formats.md §1.7); they pin the catalogue and the
// parsers to the documented format, independently of the simulator.
func goldenNames(t *testing.T) []Name {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("testdata", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	var names []Name
	for _, e := range ents {
		n, err := ParseName(e.Name())
		if err != nil {
			t.Fatalf("golden name: %v", err)
		}
		names = append(names, n)
	}
	return names
}

func readGolden(t *testing.T, n Name) [][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", n.Raw))
	if err != nil {
		t.Fatal(err)
	}
	// The EMIS dialect: every field quoted, CRLF line ends.
	for i, line := range strings.SplitAfter(string(raw), "\r\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "\"\r\n") || !strings.HasPrefix(line, "\"") {
			t.Errorf("%s line %d is not fully quoted with CRLF: %q", n.FileType(), i+1, line)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", n.FileType(), err)
	}
	return recs
}

func TestGoldenBatch(t *testing.T) {
	names := goldenNames(t)
	if len(names) != 20 {
		t.Fatalf("%d golden files, want 20", len(names))
	}
	batches := GroupBatches(names)
	if len(batches) != 1 {
		t.Fatalf("%d batches, want 1", len(batches))
	}
	if err := batches[0].Check(FileTypes(), strings.ToLower(testAgreement)); err != nil {
		t.Fatalf("golden batch incomplete: %v", err)
	}
	if got := batches[0].ID; got != "2026-11-21T02.15.00" {
		t.Errorf("batch ID %q", got)
	}
}

func TestGoldenFiles(t *testing.T) {
	for _, n := range goldenNames(t) {
		t.Run(n.FileType(), func(t *testing.T) {
			tab, ok := Lookup(n.FileType())
			if !ok {
				t.Fatalf("no catalogue entry")
			}
			recs := readGolden(t, n)
			if v, ok := tab.MatchHeader(recs[0]); !ok || v.Name != V54 {
				t.Fatalf("header %v matches version %q (%v), want 5.4", recs[0], v.Name, ok)
			}
			if len(recs) < 2 {
				t.Fatal("no data rows")
			}
			col := func(name string) int { return slices.Index(recs[0], name) }
			deletes := 0
			for i, r := range recs[1:] {
				if c := col("ProcessingId"); c >= 0 && r[c] != "291" {
					t.Errorf("row %d ProcessingId %q", i+1, r[c])
				}
				if tab.NHSColumn != "" && r[col(tab.NHSColumn)] != "" && !ValidNHSNumber(r[col(tab.NHSColumn)]) {
					t.Errorf("row %d invalid NHS number %q", i+1, r[col(tab.NHSColumn)])
				}
				if !tab.HasDeleted || r[col("Deleted")] != "true" {
					continue
				}
				// A delete row keeps only the GUIDs (and the processing id).
				deletes++
				for j, v := range r {
					keep := slices.Contains(tab.Key, recs[0][j]) || recs[0][j] == "PatientGuid" ||
						recs[0][j] == "OrganisationGuid" || recs[0][j] == "Deleted" || recs[0][j] == "ProcessingId"
					if !keep && v != "" {
						t.Errorf("delete row %d has %s=%q", i+1, recs[0][j], v)
					}
					if keep && v == "" && recs[0][j] != "OrganisationGuid" {
						t.Errorf("delete row %d lacks %s", i+1, recs[0][j])
					}
				}
			}
			if tab.HasDeleted && n.FileType() != SharingOrganisation && n.FileType() != "Admin_Location" &&
				n.FileType() != "Admin_OrganisationLocation" && deletes == 0 {
				t.Errorf("no delete row in a table with Deleted")
			}
		})
	}
}

func TestGoldenOrganisationFiles(t *testing.T) {
	open := func(ft string) *os.File {
		t.Helper()
		for _, n := range goldenNames(t) {
			if n.FileType() == ft {
				f, err := os.Open(filepath.Join("testdata", "golden", n.Raw))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
		}
		t.Fatalf("no golden %s", ft)
		return nil
	}
	shares, err := ParseSharingOrganisations(open(SharingOrganisation))
	if err != nil {
		t.Fatal(err)
	}
	wantShares := []SharingOrg{
		{OrganisationGuid: "5F1C2A3B-0D4E-4F60-8A7B-9C0D1E2F3A4B", IsActivated: true, LastModified: "2026-10-01"},
		{OrganisationGuid: "7A8B9C0D-1E2F-4A3B-9C4D-5E6F7A8B9C0D", IsActivated: true, Disabled: true, LastModified: "2026-11-20"},
	}
	if !slices.Equal(shares, wantShares) {
		t.Errorf("sharing orgs %+v\nwant %+v", shares, wantShares)
	}
	orgs, err := ParseOrganisations(open(AdminOrganisation))
	if err != nil {
		t.Fatal(err)
	}
	wantOrgs := []Org{
		{OrganisationGuid: "5F1C2A3B-0D4E-4F60-8A7B-9C0D1E2F3A4B", ODSCode: "A81001", Name: "Densham Surgery", CDB: "7001"},
		{OrganisationGuid: "7A8B9C0D-1E2F-4A3B-9C4D-5E6F7A8B9C0D", ODSCode: "A81002", Name: "Queens Park Medical Centre", CDB: "7002"},
	}
	if !slices.Equal(orgs, wantOrgs) {
		t.Errorf("orgs %+v\nwant %+v", orgs, wantOrgs)
	}
}
