package tppsim

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

// Faults are what went wrong with TPP deliveries in the field.
type Faults struct {
	ManifestListsMissing string // the manifest lists this table but the zip lacks it
	GapMinutes           int    // delta DateExtractFrom this much later than From (a gap)
	Overlap              bool   // an SRCode re-bulk whose delta rows start 6 h before From
	WrongIsDelta         bool   // SRPatient's IsDelta flag flipped, content unchanged
	RemovedDataToggle    bool   // use the version that differs only by RemovedData
	LeaveInProgress      bool   // leave the folder under its temporary name
	NonCSVEntry          bool   // a readme.txt in the zip
	SplitZip             bool   // SRExtract.z01 … parts + SRExtract.zip
	EvilEntryName        bool   // a "../x.csv" entry in the zip
}

// ExtractSpec describes one extract.
type ExtractSpec struct {
	Root     string // the gateway root directory
	Config   srfile.ReportConfig
	Time     time.Time // names the folder
	From, To time.Time // manifest dates; To defaults to Time, From is unused for a full extract
	Full     bool
	Patients int // per organisation; 25 when zero
	Seed     int64
	Version  string // TPP format version, "93" (with RemovedData) when empty
	// OrgNames gives SROrganisation names by ODS code; others are made up.
	OrgNames map[string]string
	Faults   Faults
}

// overlap is how far an Overlap re-bulk reaches back before From.
const overlap = 6 * time.Hour

// Temp is the suffix of a folder still being written.
const Temp = ".tmp"

type table struct {
	tab  *srfile.Table
	cols []string
}

func (spec ExtractSpec) normalise() (ExtractSpec, []table, error) {
	if spec.Root == "" {
		return spec, nil, errors.New("tppsim: no Root")
	}
	if err := spec.Config.Validate(); err != nil {
		return spec, nil, fmt.Errorf("tppsim: report config: %w", err)
	}
	if len(spec.Config.Organisations) == 0 {
		return spec, nil, errors.New("tppsim: the report config names no organisations")
	}
	if spec.Time.IsZero() {
		return spec, nil, errors.New("tppsim: no extract Time")
	}
	spec.Time = spec.Time.UTC().Truncate(time.Minute)
	if spec.To.IsZero() {
		spec.To = spec.Time
	}
	spec.To = spec.To.UTC().Truncate(time.Minute)
	spec.From = spec.From.UTC().Truncate(time.Minute)
	if !spec.Full && spec.From.IsZero() {
		return spec, nil, errors.New("tppsim: a delta needs From")
	}
	if spec.Patients <= 0 {
		spec.Patients = 25
	}
	if spec.Version == "" {
		spec.Version = "93"
	}
	if !slices.Contains(srfile.Versions(), spec.Version) {
		return spec, nil, fmt.Errorf("tppsim: unknown TPP version %q", spec.Version)
	}
	if spec.Faults.RemovedDataToggle {
		s := srfile.RemovedDataSibling(spec.Version)
		if s == "" {
			return spec, nil, fmt.Errorf("tppsim: version %s has no sibling differing by RemovedData", spec.Version)
		}
		spec.Version = s
	}
	if m := spec.Faults.ManifestListsMissing; m != "" {
		if err := landing.ValidName(m + ".csv"); err != nil {
			return spec, nil, fmt.Errorf("tppsim: ManifestListsMissing: %w", err)
		}
	}
	var tables []table
	names := []string{}
	for _, rt := range spec.Config.Tables {
		names = append(names, rt.Name)
		t, err := columns(rt, spec.Version)
		if err != nil {
			return spec, nil, err
		}
		tables = append(tables, t)
	}
	if !slices.Contains(names, "SROrganisation") {
		t, _ := columns(srfile.ReportTable{Name: "SROrganisation"}, spec.Version)
		tables = append(tables, t)
	}
	return spec, tables, nil
}

// columns is the header a table gets: the declared fields in the declared
// order (all fields when none are declared), then RemovedData when the
// version has it. RemovedData follows the version, not the declaration:
// TPP appends it (reference §2.3).
func columns(rt srfile.ReportTable, version string) (table, error) {
	tab, ok := srfile.Lookup(rt.Name)
	if !ok {
		return table{}, fmt.Errorf("tppsim: unknown table %q", rt.Name)
	}
	v, ok := tab.Version(version)
	if !ok {
		return table{}, fmt.Errorf("tppsim: %s has no version %s", rt.Name, version)
	}
	fields := rt.Fields
	if len(fields) == 0 {
		fields = v.Columns
	}
	var cols []string
	for _, f := range fields {
		if f == srfile.RemovedData {
			continue
		}
		if !slices.Contains(v.Columns, f) {
			return table{}, fmt.Errorf("tppsim: %s version %s has no field %s", rt.Name, version, f)
		}
		cols = append(cols, f)
	}
	if slices.Contains(v.Columns, srfile.RemovedData) {
		cols = append(cols, srfile.RemovedData)
	}
	return table{tab: tab, cols: cols}, nil
}

// WriteExtract writes one extract folder into spec.Root under a temporary
// name, renames it to yyyyMMdd_HHmm once every file is complete (unless
// Faults.LeaveInProgress) and returns its path.
func WriteExtract(spec ExtractSpec) (folder string, err error) {
	spec, tables, err := spec.normalise()
	if err != nil {
		return "", err
	}
	delim, _ := spec.Config.DelimiterByte()
	quote, _ := spec.Config.QuoteByte()
	final := filepath.Join(spec.Root, srfile.FolderName(spec.Time))
	tmp := final + Temp
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("tppsim: %s already exists", final)
	}
	if err := os.RemoveAll(tmp); err != nil { // a leftover of ours
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	g := &gen{spec: spec, delim: delim, quote: quote}
	if err := g.writeZip(tmp, tables); err != nil {
		return "", fmt.Errorf("tppsim: %s: %w", srfile.ExtractZip, err)
	}
	files := []struct {
		name  string
		write func(*bufio.Writer) error
	}{
		{srfile.ManifestFile, func(w *bufio.Writer) error { return g.manifest(w, tables) }},
		{srfile.MappingFile, func(w *bufio.Writer) error { return g.lookup(w, "SRMapping") }},
		{srfile.MappingGroupFile, func(w *bufio.Writer) error { return g.lookup(w, "SRMappingGroup") }},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(tmp, f.name), spec.Time, f.write); err != nil {
			return "", fmt.Errorf("tppsim: %s: %w", f.name, err)
		}
	}
	if spec.Faults.LeaveInProgress {
		return tmp, nil
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

func writeFile(path string, mtime time.Time, write func(*bufio.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(path, mtime, mtime)
}

// writeZip writes the tables into SRExtract.zip, or split parts.
func (g *gen) writeZip(dir string, tables []table) error {
	path := filepath.Join(dir, srfile.ExtractZip)
	if g.spec.Faults.SplitZip {
		path = filepath.Join(dir, "SRExtract.joined")
	}
	err := writeFile(path, g.spec.Time, func(bw *bufio.Writer) error {
		var zw *zip.Writer
		if g.spec.Faults.SplitZip {
			bw.Write(splitSignature)
			zw = zip.NewWriter(bw)
			zw.SetOffset(int64(len(splitSignature)))
		} else {
			zw = zip.NewWriter(bw)
		}
		add := func(name string, body func(*bufio.Writer)) error {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: g.spec.Time})
			if err != nil {
				return err
			}
			ew := bufio.NewWriterSize(w, 64<<10)
			body(ew)
			return ew.Flush()
		}
		for _, t := range tables {
			if t.tab.Name == g.spec.Faults.ManifestListsMissing {
				continue
			}
			if err := add(t.tab.Name+".csv", func(w *bufio.Writer) { g.table(w, t) }); err != nil {
				return err
			}
		}
		if g.spec.Faults.NonCSVEntry {
			if err := add("readme.txt", func(w *bufio.Writer) { w.WriteString("Extract produced by SystmOne.\r\n") }); err != nil {
				return err
			}
		}
		if g.spec.Faults.EvilEntryName {
			if err := add("../x.csv", func(w *bufio.Writer) { w.WriteString("RowIdentifier\r\n1\r\n") }); err != nil {
				return err
			}
		}
		return zw.Close()
	})
	if err != nil || !g.spec.Faults.SplitZip {
		return err
	}
	defer os.Remove(path)
	return splitZip(path, dir, "SRExtract", g.spec.Time)
}
