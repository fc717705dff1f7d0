package emisfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SharingOrg is one row of Agreements_SharingOrganisation: an organisation in
// the data sharing agreement and whether its feed is live.
type SharingOrg struct {
	OrganisationGuid               string
	IsActivated, Disabled, Deleted bool
	LastModified                   string // LastModifiedDate as written
}

// Org is one row of Admin_Organisation, the GUID to ODS code map.
type Org struct {
	OrganisationGuid, ODSCode, Name, CDB string
}

// ParseSharingOrganisations reads a plaintext Agreements_SharingOrganisation
// file. Columns are found by header name so a reordered header still reads.
// Booleans compare case-insensitively as SR does; an empty value is false and
// anything else is an error, because it means the format has drifted.
func ParseSharingOrganisations(r io.Reader) ([]SharingOrg, error) {
	var out []SharingOrg
	err := readByHeader(r, SharingOrganisation,
		[]string{"OrganisationGuid", "IsActivated", "Disabled", "Deleted"}, []string{"LastModifiedDate"},
		func(get func(string) string) error {
			s := SharingOrg{OrganisationGuid: get("OrganisationGuid"), LastModified: get("LastModifiedDate")}
			var err error
			if s.IsActivated, err = parseBool("IsActivated", get("IsActivated")); err != nil {
				return err
			}
			if s.Disabled, err = parseBool("Disabled", get("Disabled")); err != nil {
				return err
			}
			if s.Deleted, err = parseBool("Deleted", get("Deleted")); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	return out, err
}

// ParseOrganisations reads a plaintext Admin_Organisation file.
func ParseOrganisations(r io.Reader) ([]Org, error) {
	var out []Org
	err := readByHeader(r, AdminOrganisation,
		[]string{"OrganisationGuid", "ODSCode"}, []string{"OrganisationName", "CDB"},
		func(get func(string) string) error {
			out = append(out, Org{OrganisationGuid: get("OrganisationGuid"), ODSCode: get("ODSCode"),
				Name: get("OrganisationName"), CDB: get("CDB")})
			return nil
		})
	return out, err
}

// readByHeader calls row for every data row, with a getter by column name.
func readByHeader(r io.Reader, fileType string, required, optional []string, row func(get func(string) string) error) error {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		br.Discard(3) // a UTF-8 byte-order mark some Windows exporters write
	}
	cr := csv.NewReader(br)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: empty file, no header", fileType)
	}
	if err != nil {
		return fmt.Errorf("%s: header: %w", fileType, err)
	}
	idx := map[string]int{}
	for i, h := range header {
		idx[h] = i
	}
	for _, c := range required {
		if _, ok := idx[c]; !ok {
			return fmt.Errorf("%s: header has no %s column", fileType, c)
		}
	}
	for _, c := range optional {
		if _, ok := idx[c]; !ok {
			idx[c] = -1
		}
	}
	var rec []string
	get := func(c string) string {
		if i := idx[c]; i >= 0 {
			return rec[i]
		}
		return ""
	}
	for {
		rec, err = cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", fileType, err)
		}
		if err := row(get); err != nil {
			line, _ := cr.FieldPos(0)
			return fmt.Errorf("%s: line %d: %w", fileType, line, err)
		}
	}
}

func parseBool(col, v string) (bool, error) {
	switch {
	case v == "", strings.EqualFold(v, "false"):
		return false, nil
	case strings.EqualFold(v, "true"):
		return true, nil
	}
	return false, fmt.Errorf("%s is %q, want true or false", col, v)
}
