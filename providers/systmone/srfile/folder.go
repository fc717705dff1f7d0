// Package srfile knows the TPP SystmOne Strategic Reporting ("TPPCSV")
// extract format: the yyyyMMdd_HHmm extract folders a SystmOne client writes
// into a gateway root, SRManifest.csv and its consistency rules, the
// SRExtract zip (whole or split into SRExtract.z01 … parts), the catalogue of
// tables and their known column versions, and the report sheet a reporting
// unit follows to configure a strategic report.
//
// Everything follows reference/supplier-formats.md §2, which was
// reconstructed from a production reader (Endeavour SFTPReader); error texts
// reuse that reader's wording so operators who know it recognise them.
package srfile

import "time"

// DateLayout is how TPP writes an extract time: folder names and the
// manifest's DateExtractFrom/DateExtractTo (yyyyMMdd_HHmm).
const DateLayout = "20060102_1504"

// Well-known file names in an extract folder.
const (
	ManifestFile     = "SRManifest.csv"
	MappingFile      = "SRMapping.csv"
	MappingGroupFile = "SRMappingGroup.csv"
	ExtractZip       = "SRExtract.zip"
)

// ParseFolder parses an extract folder name, yyyyMMdd_HHmm. Anything else,
// such as the temporary names a writer uses while the set is incomplete
// ("20261121_0215.tmp", "~20261121_0215"), is not an extract (yet). The
// time is the wall clock as written, in UTC: TPP does not say its zone.
func ParseFolder(name string) (time.Time, bool) {
	return parseDate(name)
}

// FolderName is the folder name for an extract time.
func FolderName(t time.Time) string { return t.UTC().Format(DateLayout) }

// parseDate accepts exactly yyyyMMdd_HHmm, digits only.
func parseDate(s string) (time.Time, bool) {
	if len(s) != len(DateLayout) {
		return time.Time{}, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 {
			if c != '_' {
				return time.Time{}, false
			}
		} else if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	t, err := time.ParseInLocation(DateLayout, s, time.UTC)
	return t, err == nil
}
