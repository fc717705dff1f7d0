package landing

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testManifest() *Manifest {
	return &Manifest{
		Extract:  `extract.core["2026-11-21"]`,
		Source:   "emis_site.central",
		Supplier: "emis",
		Day:      "2026-11-21",
		BatchID:  "2026-11-21T02.15.00",
		Kind:     "delta",
		SeqFrom:  "1041",
		SeqTo:    "1043",
		Cutoff:   time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
		Created:  time.Date(2026, 11, 21, 3, 4, 5, 0, time.UTC),
		Files: []ManifestFile{
			{
				Table: "CareRecord_Observation", Path: "CareRecord_Observation.csv",
				SHA256: strings.Repeat("ab", 32), Bytes: 123456, Rows: 1000, Deleted: 3, BadNHS: 1, Version: "5.4",
				RemoteName:     "2026-11-21T02.15.00_1041_1043_CareRecord_Observation_20261121021500_1F2E.csv.gpg",
				KeyFingerprint: "0123456789ABCDEF0123456789ABCDEF01234567",
			},
			{
				Table: "Admin_Patient", Path: "Admin_Patient.csv",
				SHA256: strings.Repeat("0f", 32), Bytes: 2048, Rows: 12, Version: "5.4",
				RemoteName: "2026-11-21T02.15.00_1041_1043_Admin_Patient_20261121021500_1F2E.csv.gpg",
			},
		},
	}
}

func TestManifestGolden(t *testing.T) {
	d, path := openTestDir(t, 0o640, 0o750)
	m := testManifest()
	rel := filepath.Join("core", "emis_site.central", "2026-11-21", "b1", ManifestName)
	sum, err := WriteManifest(d, rel, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(path, rel))
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(got); sum != hex.EncodeToString(s[:]) {
		t.Errorf("WriteManifest returned %s, file hashes to %x", sum, s)
	}
	golden := filepath.Join("testdata", "manifest.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("manifest differs from %s (run with -update):\n%s", golden, got)
	}
	if m.Version != 0 || m.Files[0].Table != "CareRecord_Observation" {
		t.Error("WriteManifest changed its argument")
	}
	if p, _ := d.Partials(); len(p) != 0 {
		t.Errorf("partials left: %v", p)
	}

	back, err := ReadManifest(d, rel)
	if err != nil {
		t.Fatal(err)
	}
	want2 := testManifest()
	want2.Version = ManifestVersion
	want2.Files[0], want2.Files[1] = want2.Files[1], want2.Files[0] // sorted by path
	if !back.Cutoff.Equal(want2.Cutoff) || !back.Created.Equal(want2.Created) {
		t.Errorf("times: %v %v", back.Cutoff, back.Created)
	}
	back.Cutoff, back.Created, want2.Cutoff, want2.Created = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(back, want2) {
		t.Errorf("read back\n%+v\nwant\n%+v", back, want2)
	}
}

func TestManifestRejects(t *testing.T) {
	d, _ := openTestDir(t, 0o640, 0o750)
	for name, mutate := range map[string]func(*Manifest){
		"version":     func(m *Manifest) { m.Version = 2 },
		"escape":      func(m *Manifest) { m.Files[0].Path = "../../etc/passwd" },
		"absolute":    func(m *Manifest) { m.Files[0].Path = "/etc/passwd" },
		"backslash":   func(m *Manifest) { m.Files[0].Path = `..\x.csv` },
		"duplicate":   func(m *Manifest) { m.Files[1].Path = m.Files[0].Path },
		"short hash":  func(m *Manifest) { m.Files[0].SHA256 = "abc" },
		"upper hash":  func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("AB", 32) },
		"not hex":     func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("zz", 32) },
		"empty path":  func(m *Manifest) { m.Files[0].Path = "" },
		"newline":     func(m *Manifest) { m.Files[0].Path = "a\nb.csv" },
		"nul in path": func(m *Manifest) { m.Files[0].Path = "a\x00b.csv" },
	} {
		m := testManifest()
		mutate(m)
		if _, err := WriteManifest(d, name+".json", m); err == nil {
			t.Errorf("%s: WriteManifest accepted it", name)
		}
		if _, err := d.Stat(name + ".json"); err == nil {
			t.Errorf("%s: a rejected manifest was written", name)
		}
	}
	for name, text := range map[string]string{
		"not json":    "{",
		"version 2":   `{"version":2}`,
		"no version":  `{"files":[]}`,
		"bad path":    `{"version":1,"files":[{"path":"../x","sha256":"` + strings.Repeat("0", 64) + `"}]}`,
		"wrong types": `{"version":"1"}`,
	} {
		p, err := d.Create("in.json")
		if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte(text))
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadManifest(d, "in.json"); err == nil {
			t.Errorf("%s: ReadManifest accepted %s", name, text)
		}
	}
}
