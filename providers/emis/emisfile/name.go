// Package emisfile knows the EMIS Extract Service file formats: the file-name
// grammar, how files form batches, the table catalogue per EMIS version, and
// the two organisation files that drift detection reads.
//
// Everything here follows reference/supplier-formats.md §1, which was
// reconstructed from a production reader (Endeavour SFTPReader); error texts
// reuse that reader's wording so operators who know it recognise them.
package emisfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrUnparsable is wrapped by every ParseName error.
var ErrUnparsable = errors.New("Emis batch filename could not be parsed")

// Extensions a name may end with: the decrypted ".csv" and the PGP
// extensions a feed may be configured with (binary or armoured).
var extensions = []string{".csv.gpg", ".csv.pgp", ".csv.asc", ".csv"}

const (
	timeLayout  = "20060102150405"
	batchLayout = "2006-01-02T15.04.05"
	maxNameLen  = 255
	maxIDDigits = 18 // fits int64 without overflow checks
)

// Name is a parsed EMIS extract file name:
// <processingIds>_<Schema>_<Table>_<yyyyMMddHHmmss>_<SharingAgreementGuid>.csv[.gpg]
type Name struct {
	ProcStart, ProcEnd int64     // equal when the name holds a single id
	Schema, Table      string    // e.g. "Admin", "Patient"
	Time               time.Time // the extract timestamp, UTC as written
	Agreement          string    // sharing agreement GUID, upper-case
	Ext                string    // ".csv.gpg", ".csv.pgp", ".csv.asc" or ".csv"
	Raw                string    // the name as parsed; String() is the canonical form
}

// ParseName parses an EMIS file name. It is strict: the name came from a
// server and is never trusted, so anything that could act as a path or
// smuggle control characters is refused before the grammar is applied.
func ParseName(s string) (Name, error) {
	fail := func(reason string) (Name, error) {
		return Name{}, fmt.Errorf("%w: %q: %s", ErrUnparsable, s, reason)
	}
	if len(s) == 0 || len(s) > maxNameLen {
		return fail("length out of range")
	}
	if strings.Contains(s, "..") {
		return fail(`contains ".."`)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '/' || c == '\\' {
			return fail("contains a path separator, control or non-ASCII character")
		}
	}
	var n Name
	base := ""
	for _, ext := range extensions {
		if strings.HasSuffix(s, ext) {
			n.Ext, base = ext, strings.TrimSuffix(s, ext)
			break
		}
	}
	if n.Ext == "" {
		return fail("extension is not .csv, .csv.gpg, .csv.pgp or .csv.asc")
	}
	parts := strings.Split(base, "_")
	if len(parts) != 5 {
		return fail(fmt.Sprintf("%d parts separated by '_', want 5", len(parts)))
	}
	var err error
	if n.ProcStart, n.ProcEnd, err = parseProcessingIDs(parts[0]); err != nil {
		return fail(err.Error())
	}
	if !isIdent(parts[1]) || !isIdent(parts[2]) {
		return fail("schema and table must be letters and digits")
	}
	n.Schema, n.Table = parts[1], parts[2]
	if len(parts[3]) != 14 || !allDigits(parts[3]) {
		return fail("timestamp is not 14 digits")
	}
	if n.Time, err = time.ParseInLocation(timeLayout, parts[3], time.UTC); err != nil {
		return fail("invalid timestamp")
	}
	if !IsGUID(parts[4]) {
		return fail("sharing agreement is not a GUID")
	}
	n.Agreement = strings.ToUpper(parts[4])
	n.Raw = s
	return n, nil
}

// parseProcessingIDs accepts "291" or "291-300" (SR ProcessingIdSet).
func parseProcessingIDs(s string) (start, end int64, err error) {
	ids := strings.Split(s, "-")
	if len(ids) > 2 {
		return 0, 0, errors.New("Too many processing ids")
	}
	var v [2]int64
	for i, id := range ids {
		if id == "" || len(id) > maxIDDigits || !allDigits(id) {
			return 0, 0, errors.New("processing id is not a non-negative integer")
		}
		v[i], _ = strconv.ParseInt(id, 10, 64) // cannot fail: ≤18 digits
	}
	if len(ids) == 1 {
		return v[0], v[0], nil
	}
	if v[0] > v[1] {
		return 0, 0, errors.New("processing id range start is after its end")
	}
	return v[0], v[1], nil
}

// FileType is the "Schema_Table" the catalogue is keyed by.
func (n Name) FileType() string { return n.Schema + "_" + n.Table }

// BatchID is the extract timestamp as yyyy-MM-ddTHH.mm.ss, SR's batch
// identifier: it sorts as text and is safe in a file name.
func (n Name) BatchID() string { return n.Time.Format(batchLayout) }

// Encrypted reports whether the name carries a PGP extension.
func (n Name) Encrypted() bool { return n.Ext != ".csv" }

// Decrypted is the canonical name of the plaintext: the name minus its PGP
// extension.
func (n Name) Decrypted() string {
	d := n
	d.Ext = ".csv"
	return d.String()
}

// String is the canonical name. A single processing id is written without a
// range, so "291-291_…" canonicalises to "291_…"; everything else round-trips.
func (n Name) String() string {
	ids := strconv.FormatInt(n.ProcStart, 10)
	if n.ProcEnd != n.ProcStart {
		ids += "-" + strconv.FormatInt(n.ProcEnd, 10)
	}
	return ids + "_" + n.Schema + "_" + n.Table + "_" + n.Time.UTC().Format(timeLayout) + "_" + n.Agreement + n.Ext
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// IsGUID reports whether s is a GUID in the 8-4-4-4-12 hex form, either case.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
