package srfile

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(goodManifest))
	f.Add([]byte("FileName|IsDelta|DateExtractTo\nSRCode|N|20200314_0412\n"))
	f.Add([]byte("FileName,IsDelta,DateExtractFrom,DateExtractTo\nSRCaf\xe9,Y,,20200314_0412\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever parsed must satisfy the per-row rules.
		for _, r := range m.Rows {
			if r.To.IsZero() || r.IsDelta && r.From.IsZero() || !r.IsDelta && !r.From.IsZero() {
				t.Fatalf("row breaks the rules: %+v", r)
			}
		}
		_ = m.Check()
		_, _ = CheckContinuity(m.Cutoff(), m.From())
		m.IsFull()
	})
}

// FuzzOpenExtract feeds random bytes as SRExtract.zip, alone or with a
// first part SRExtract.z01; it must never panic, and what opens must read
// within its declared sizes. testdata/fuzz holds a real split pair.
func FuzzOpenExtract(f *testing.F) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("SRCode.csv")
	w.Write([]byte("RowIdentifier,RemovedData\r\n1,0\r\n"))
	zw.Close()
	f.Add([]byte(nil), buf.Bytes())
	f.Add([]byte("PK\x07\x08"), buf.Bytes())
	f.Fuzz(func(t *testing.T, z01, last []byte) {
		dir := t.TempDir()
		names := []string{ExtractZip}
		os.WriteFile(filepath.Join(dir, ExtractZip), last, 0o644)
		if len(z01) > 0 {
			os.WriteFile(filepath.Join(dir, "SRExtract.z01"), z01, 0o644)
			names = append(names, "SRExtract.z01")
		}
		lim := Limits{MaxEntries: 64, MaxEntrySize: 1 << 20, MaxTotalSize: 4 << 20, MaxParts: 9}
		entries, c, err := OpenExtractLimits(dir, names, lim)
		if err != nil {
			return
		}
		defer c.Close()
		for _, e := range entries {
			rc, err := e.Open()
			if err != nil {
				continue
			}
			n, _ := io.Copy(io.Discard, rc)
			rc.Close()
			if uint64(n) > e.Size {
				t.Fatalf("%s: read %d bytes past its size %d", e.Name, n, e.Size)
			}
		}
	})
}
