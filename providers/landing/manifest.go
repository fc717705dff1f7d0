package landing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ManifestName is the file written last in a landed batch directory; its
// presence tells downstream loaders the batch is complete.
const ManifestName = "manifest.json"

// ManifestVersion is the manifest format this package writes and reads.
const ManifestVersion = 1

// maxManifest bounds what ReadManifest will read.
const maxManifest = 16 << 20

// Manifest describes one landed batch. Key names are snake_case and their
// order is the field order, so the file is stable across runs.
type Manifest struct {
	Version  int    `json:"version"`
	Extract  string `json:"extract"`  // extract resource instance address
	Source   string `json:"source"`   // emis_site.x or systmone_strategic_report.x
	Supplier string `json:"supplier"` // emis | tpp
	Day      string `json:"day"`      // delivery day, yyyy-mm-dd
	BatchID  string `json:"batch_id"`
	Kind     string `json:"kind"` // full | delta
	// EMIS processing ids or TPP DateExtractFrom/To.
	SeqFrom string         `json:"seq_from,omitempty"`
	SeqTo   string         `json:"seq_to,omitempty"`
	Cutoff  time.Time      `json:"cutoff"`
	Created time.Time      `json:"created"`
	Files   []ManifestFile `json:"files"`
}

// ManifestFile is one landed table.
type ManifestFile struct {
	Table   string `json:"table"`
	Path    string `json:"path"` // slash-separated, relative to the manifest
	SHA256  string `json:"sha256"`
	Bytes   int64  `json:"bytes"`
	Rows    int64  `json:"rows"`
	Deleted int64  `json:"deleted"`
	BadNHS  int64  `json:"bad_nhs"`
	Version string `json:"version"` // header version
	// RemoteName is the supplier's file name, as delivered.
	RemoteName     string `json:"remote_name"`
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
}

// WriteManifest writes m to rel atomically (files sorted by path, a
// trailing newline) and returns the SHA-256 of what it wrote. Version 0 is
// written as ManifestVersion.
func WriteManifest(d *Dir, rel string, m *Manifest) (string, error) {
	c := *m
	if c.Version == 0 {
		c.Version = ManifestVersion
	}
	if err := c.check(); err != nil {
		return "", err
	}
	c.Files = slices.Clone(c.Files)
	slices.SortStableFunc(c.Files, func(a, b ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	if c.Files == nil {
		c.Files = []ManifestFile{} // "files": [] rather than null
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	p, err := d.Create(rel)
	if err != nil {
		return "", err
	}
	if _, err := p.Write(b); err != nil {
		p.Abort()
		return "", err
	}
	if err := p.Commit(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ReadManifest reads and checks the manifest at rel.
func ReadManifest(d *Dir, rel string) (*Manifest, error) {
	f, err := d.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("manifest %s: larger than %d bytes", rel, maxManifest)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", rel, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", rel, err)
	}
	return &m, nil
}

// check rejects a manifest a loader could misread: another version, file
// paths leaving the batch directory, malformed hashes.
func (m *Manifest) check() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("manifest version %d, want %d", m.Version, ManifestVersion)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if !filepath.IsLocal(f.Path) || strings.ContainsAny(f.Path, "\\\x00\n\r") {
			return fmt.Errorf("manifest file path %q is not local", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("manifest lists %q twice", f.Path)
		}
		seen[f.Path] = true
		if len(f.SHA256) != sha256.Size*2 || strings.ToLower(f.SHA256) != f.SHA256 {
			return fmt.Errorf("manifest file %q: sha256 %q is not 64 lower-case hex digits", f.Path, f.SHA256)
		}
		if _, err := hex.DecodeString(f.SHA256); err != nil {
			return fmt.Errorf("manifest file %q: sha256 %q is not 64 lower-case hex digits", f.Path, f.SHA256)
		}
	}
	return nil
}
