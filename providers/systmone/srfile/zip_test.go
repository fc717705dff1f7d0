package srfile

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFiles is a set of table files with enough varied content to span
// several 64 KiB parts when compressed.
func testFiles(t testing.TB) map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var big bytes.Buffer
	big.WriteString("RowIdentifier,IDOrganisationVisibleTo,CTV3Code,NumericValue,RemovedData\r\n")
	for i := range 30000 {
		fmt.Fprintf(&big, "%d,A81001,%05X,%d.%d,%d\r\n", i, r.Uint32()&0xfffff, r.IntN(200), r.IntN(10), r.IntN(2))
	}
	return map[string][]byte{
		"SRCode.csv":         big.Bytes(),
		"SRPatient.csv":      []byte("RowIdentifier,FirstName\r\n1,Zo\xeb\r\n2,Ren\xe9e\r\n"),
		"SROrganisation.csv": []byte("RowIdentifier,Name,ID\r\n1,Densham Surgery,A81001\r\n"),
	}
}

// goZip writes files with archive/zip, in name order.
func goZip(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range slices.Sorted(mapsKeys(files)) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Date(2026, 11, 21, 2, 15, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ExtractZip), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// infoZip runs Debian's zip in dir over files written there, with extra
// arguments (e.g. "-s", "64k"), then removes the inputs.
func infoZip(t testing.TB, dir string, files map[string][]byte, args ...string) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/zip"); err != nil {
		t.Skip("no /usr/bin/zip")
	}
	names := slices.Sorted(mapsKeys(files))
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/usr/bin/zip", append(append(append([]string{"-q", "-X"}, args...), ExtractZip), names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, out)
	}
	for _, n := range names {
		os.Remove(filepath.Join(dir, n))
	}
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// readAll opens every entry and returns name -> content.
func readAll(t testing.TB, dir string) (map[string][]byte, error) {
	t.Helper()
	entries, c, err := OpenExtract(dir, listDir(t, dir))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[string][]byte{}
	for _, e := range entries {
		rc, err := e.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if uint64(len(b)) != e.Size {
			return nil, fmt.Errorf("%s: read %d bytes, size says %d", e.Name, len(b), e.Size)
		}
		out[e.Name] = b
	}
	return out, nil
}

func TestOpenExtractReadsEveryMaker(t *testing.T) {
	files := testFiles(t)
	cases := []struct {
		name      string
		make      func(t testing.TB, dir string)
		wantParts bool
	}{
		{"go", func(t testing.TB, dir string) { goZip(t, dir, files) }, false},
		{"infozip", func(t testing.TB, dir string) { infoZip(t, dir, files) }, false},
		{"infozip split 64k", func(t testing.TB, dir string) { infoZip(t, dir, files, "-s", "64k") }, true},
		{"infozip split stored", func(t testing.TB, dir string) { infoZip(t, dir, files, "-0", "-s", "64k") }, true},
		{"infozip zip64 split", func(t testing.TB, dir string) { infoZip(t, dir, files, "-fz", "-s", "64k") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.make(t, dir)
			if parts := slices.Contains(listDir(t, dir), "SRExtract.z01"); parts != tc.wantParts {
				t.Fatalf("parts present = %v, want %v: %v", parts, tc.wantParts, listDir(t, dir))
			}
			got, err := readAll(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(files) {
				t.Fatalf("got %d entries, want %d", len(got), len(files))
			}
			for n, want := range files {
				if !bytes.Equal(got[n], want) {
					t.Errorf("%s: content differs (%d vs %d bytes)", n, len(got[n]), len(want))
				}
			}
		})
	}
}

func TestOpenExtractRejects(t *testing.T) {
	files := testFiles(t)
	cases := []struct {
		name    string
		entries map[string][]byte
		names   func([]string) []string
		lim     *Limits
		want    string
	}{
		{name: "non-csv", entries: map[string][]byte{"SRPatient.csv": nil, "readme.txt": []byte("hi")}, want: "rogue file"},
		{name: "parent", entries: map[string][]byte{"../x.csv": nil}, want: "not a plain file name"},
		{name: "absolute", entries: map[string][]byte{"/etc/x.csv": nil}, want: "not a plain file name"},
		{name: "subdir", entries: map[string][]byte{"a/x.csv": nil}, want: "not a plain file name"},
		{name: "backslash", entries: map[string][]byte{`..\x.csv`: nil}, want: "not a plain file name"},
		{name: "dot name", entries: map[string][]byte{".x.csv": nil}, want: "unsafe file name"},
		{name: "duplicate", entries: map[string][]byte{"SRCode.csv": nil, "srcode.CSV": nil}, want: "appears twice"},
		{name: "bomb", entries: files, lim: &Limits{MaxEntries: 10, MaxEntrySize: 100 << 10, MaxTotalSize: 1 << 30, MaxParts: 9}, want: "more than the 102400 allowed"},
		{name: "total", entries: files, lim: &Limits{MaxEntries: 10, MaxEntrySize: 1 << 30, MaxTotalSize: 100 << 10, MaxParts: 9}, want: "in total"},
		{name: "entries", entries: files, lim: &Limits{MaxEntries: 2, MaxEntrySize: 1 << 30, MaxTotalSize: 1 << 30, MaxParts: 9}, want: "more than 2"},
		{name: "no zip", entries: files, names: func([]string) []string { return []string{"SRManifest.csv"} }, want: "SRExtract.zip missing"},
		{name: "orphan part", entries: files, names: func(n []string) []string { return append(n, "SRExtract.z01") }, want: "disk 1 of a split archive but 1"},
		{name: "part gap", entries: files, names: func(n []string) []string { return append(n, "SRExtract.z02") }, want: "SRExtract.z01 missing"},
		{name: "part twice", entries: files, names: func(n []string) []string { return append(n, "SRExtract.z01", "SRExtract.z001") }, want: "same number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for _, n := range slices.Sorted(mapsKeys(tc.entries)) {
				w, _ := zw.Create(n)
				w.Write(tc.entries[n])
			}
			zw.Close()
			os.WriteFile(filepath.Join(dir, ExtractZip), buf.Bytes(), 0o644)
			os.WriteFile(filepath.Join(dir, "SRExtract.z01"), []byte("PK\x07\x08"), 0o644)
			os.WriteFile(filepath.Join(dir, "SRExtract.z001"), []byte("PK\x07\x08"), 0o644)
			os.WriteFile(filepath.Join(dir, "SRExtract.z02"), []byte("PK\x07\x08"), 0o644)
			names := []string{ExtractZip, "SRManifest.csv"}
			if tc.names != nil {
				names = tc.names(names)
			}
			lim := DefaultLimits
			if tc.lim != nil {
				lim = *tc.lim
			}
			_, c, err := OpenExtractLimits(dir, names, lim)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

// A split archive missing a middle part, or with parts truncated, must
// fail cleanly rather than read garbage.
func TestOpenExtractDamagedSplit(t *testing.T) {
	files := testFiles(t)
	cases := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"last part missing its predecessors", func(dir string) { os.Remove(filepath.Join(dir, "SRExtract.z02")) }, "SRExtract.z02 missing"},
		{"truncated part", func(dir string) { os.Truncate(filepath.Join(dir, "SRExtract.z02"), 1000) }, ""},
		{"no signature", func(dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "SRExtract.z01"), os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXX"), 0)
			f.Close()
		}, "split archive signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			infoZip(t, dir, files, "-s", "64k")
			tc.damage(dir)
			_, err := readAll(t, dir)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}
