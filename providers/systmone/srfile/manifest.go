package srfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/im1dev/im1/providers/landing"
)

// ManifestRow is one line of SRManifest.csv: a table file in SRExtract.
type ManifestRow struct {
	FileName    string // without extension, e.g. "SRPatient"
	IsDelta     bool
	IsReference bool      // read, but SR ignores it and so may callers
	From, To    time.Time // DateExtractFrom (zero for bulk rows), DateExtractTo
}

// Manifest is a parsed SRManifest.csv, rows in file order.
type Manifest struct {
	Rows []ManifestRow
}

// Tables whose manifest dates SystmOne gets wrong "consistently" (SR
// TppBatchValidator): they are left out of the date consistency checks.
var datesUnreliable = []string{"SRAppointmentAttendees", "SRReferralContactEvent"}

// maxManifestRows bounds a manifest; a real one lists a few hundred tables.
const maxManifestRows = 10000

// ParseManifest reads SRManifest.csv: Windows-1252, a header row, fields
// quoted or not, columns found by name (their order is not known). The
// delimiter is taken from the header line, since whether the client uses
// the report's declared delimiter for the manifest is not known.
// It applies SR's per-row rules: IsDelta is Y or N, DateExtractTo is
// required, delta rows need DateExtractFrom, dates are yyyyMMdd_HHmm, and
// file names must be safe base names listed once.
func ParseManifest(r io.Reader) (*Manifest, error) {
	br := bufio.NewReaderSize(decode1252(io.LimitReader(r, 64<<20)), 64<<10)
	first, _ := br.Peek(4096)
	if nl := strings.IndexByte(string(first), '\n'); nl >= 0 {
		first = first[:nl]
	}
	recs, err := newRecords(br, sniffDelimiter(first), '"')
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s line %d: %s", ManifestFile, recs.line, fmt.Sprintf(format, a...))
	}
	header, err := recs.next()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", ManifestFile, errNoHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", ManifestFile, err)
	}
	idx, err := headerIndex(header)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	for _, c := range []string{"FileName", "IsDelta", "DateExtractTo"} {
		if _, ok := idx[strings.ToLower(c)]; !ok {
			return nil, fmt.Errorf("%s: header has no %s column", ManifestFile, c)
		}
	}
	var rec []string
	get := func(col string) string {
		if i, ok := idx[strings.ToLower(col)]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	m := &Manifest{}
	seen := map[string]bool{}
	for {
		rec, err = recs.next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ManifestFile, err)
		}
		if len(m.Rows) == maxManifestRows {
			return nil, fail("more than %d rows", maxManifestRows)
		}
		row := ManifestRow{FileName: get("FileName"), IsReference: strings.EqualFold(get("IsReference"), "Y")}
		if err := landing.ValidName(row.FileName + ".csv"); err != nil || strings.Contains(row.FileName, ".") {
			return nil, fail("FileName %q is not a table name", row.FileName)
		}
		if key := strings.ToLower(row.FileName); seen[key] {
			return nil, fail("%s is listed twice", row.FileName)
		} else {
			seen[key] = true
		}
		switch v := get("IsDelta"); v {
		case "Y":
			row.IsDelta = true
		case "N":
		default:
			return nil, fail("Unexpected value [%s] in manifest file", v)
		}
		to := get("DateExtractTo")
		if to == "" {
			return nil, fail("No end date in SRManifest for %s", row.FileName)
		}
		var ok bool
		if row.To, ok = parseDate(to); !ok {
			return nil, fail("DateExtractTo [%s] for %s is not yyyyMMdd_HHmm", to, row.FileName)
		}
		if row.IsDelta {
			from := get("DateExtractFrom")
			if from == "" {
				return nil, fail("No start date in SRManifest for delta %s", row.FileName)
			}
			if row.From, ok = parseDate(from); !ok {
				return nil, fail("DateExtractFrom [%s] for %s is not yyyyMMdd_HHmm", from, row.FileName)
			}
		}
		m.Rows = append(m.Rows, row)
	}
}

// Check applies SR's cross-row rules: every row shares one DateExtractTo
// and every delta row one DateExtractFrom, except the tables SystmOne is
// known to date wrongly. A manifest listing nothing is refused too.
func (m *Manifest) Check() error {
	if len(m.Rows) == 0 {
		return fmt.Errorf("%s lists no files", ManifestFile)
	}
	var to, from *ManifestRow
	for i := range m.Rows {
		r := &m.Rows[i]
		if slices.Contains(datesUnreliable, r.FileName) {
			continue
		}
		if to == nil {
			to = r
		} else if !r.To.Equal(to.To) {
			return fmt.Errorf("Different end dates in SRManifest for %s (%s) and %s (%s)",
				to.FileName, to.To.Format(DateLayout), r.FileName, r.To.Format(DateLayout))
		}
		if !r.IsDelta {
			continue
		}
		if from == nil {
			from = r
		} else if !r.From.Equal(from.From) {
			return fmt.Errorf("Different start dates in SRManifest for %s (%s) and %s (%s)",
				from.FileName, from.From.Format(DateLayout), r.FileName, r.From.Format(DateLayout))
		}
	}
	return nil
}

// Cutoff is the batch cut-off, the shared DateExtractTo (taken from the
// first row whose dates are reliable; zero for an empty manifest).
func (m *Manifest) Cutoff() time.Time {
	for _, r := range m.Rows {
		if !slices.Contains(datesUnreliable, r.FileName) {
			return r.To
		}
	}
	if len(m.Rows) > 0 {
		return m.Rows[0].To
	}
	return time.Time{}
}

// From is the shared DateExtractFrom of the delta rows, zero when every
// row is a bulk.
func (m *Manifest) From() time.Time {
	for _, r := range m.Rows {
		if r.IsDelta && !slices.Contains(datesUnreliable, r.FileName) {
			return r.From
		}
	}
	return time.Time{}
}

// IsFull reports whether the extract is a bulk as SR decides it: SRPatient
// and SRCode both IsDelta=N. A report with neither table is a bulk when no
// row is a delta.
func (m *Manifest) IsFull() bool {
	listed := false
	for _, r := range m.Rows {
		if r.FileName == "SRPatient" || r.FileName == "SRCode" {
			listed = true
			if r.IsDelta {
				return false
			}
		}
	}
	if listed {
		return true
	}
	for _, r := range m.Rows {
		if r.IsDelta {
			return false
		}
	}
	return len(m.Rows) > 0
}

// Tables lists the file names (without extension) in manifest order.
func (m *Manifest) Tables() []string {
	out := make([]string, len(m.Rows))
	for i, r := range m.Rows {
		out[i] = r.FileName
	}
	return out
}

// Row returns the row for a file name.
func (m *Manifest) Row(fileName string) (ManifestRow, bool) {
	for _, r := range m.Rows {
		if r.FileName == fileName {
			return r, true
		}
	}
	return ManifestRow{}, false
}

// CheckContinuity compares a delta's DateExtractFrom with the previous
// batch's DateExtractTo. A gap (from after prevTo) is an error; an overlap
// (from before prevTo) is what a TPP re-bulk looks like (SD-353), so it is
// allowed and reported. A zero from (no delta rows) cannot break
// continuity.
func CheckContinuity(prevTo, from time.Time) (overlap bool, err error) {
	if from.IsZero() {
		return false, nil
	}
	if prevTo.IsZero() {
		return false, errors.New("End date of last batch is null")
	}
	if from.After(prevTo) {
		return false, fmt.Errorf("Start date of new batch (%s) does not match end date of last batch (%s)",
			from.Format(DateLayout), prevTo.Format(DateLayout))
	}
	return from.Before(prevTo), nil
}
