package srfile

import (
	"slices"
	"sort"
	"strings"

	"github.com/im1dev/im1/providers/landing"
)

// RemovedData is the delete flag column: "1" removes the row. Whether a
// table has it depends on the format version, and it is always last.
const RemovedData = "RemovedData"

// Format versions TX recognises by header, newest first. TPP never
// announces a change. RemovedData is present in 89, 90 and 93 only
// (TX notes: "89 = 88 plus RemovedData", "91 = 90 but no RemovedData",
// "93 = 92 plus RemovedData").
var versions = []string{"93", "92", "91", "90", "89", "88", "87"}

// TestPack is the test-pack SRPatient header (no SpineMatched, no
// RemovedData).
const TestPack = "TestPack"

// Versions lists the numbered format versions, newest first.
func Versions() []string { return slices.Clone(versions) }

// VersionHasRemovedData reports whether a numbered version appends
// RemovedData.
func VersionHasRemovedData(v string) bool { return v == "93" || v == "90" || v == "89" }

// RemovedDataSibling is the version that differs from v only by
// RemovedData (93↔92, 90↔91, 89↔88); "" when there is none.
func RemovedDataSibling(v string) string {
	return map[string]string{"93": "92", "92": "93", "90": "91", "91": "90", "89": "88", "88": "89"}[v]
}

// Table is one Strategic Reporting table (file SR<Name>.csv).
type Table struct {
	Name      string
	Versions  landing.Versions // newest first
	OrgColumn string           // "IDOrganisationVisibleTo" where present: the split key
	NHSColumn string           // "NHSNumber" for SRPatient
	// Reference tables are not split by organisation; SR copies them to
	// every organisation's folder (SROrganisation, SRMapping, …).
	Reference bool
}

// Version is one known header of a table.
type Version = landing.HeaderVersion

// Latest is the newest known version.
func (t *Table) Latest() Version { return t.Versions[0] }

// Version returns the header of a version name.
func (t *Table) Version(name string) (Version, bool) {
	return t.Versions.Named(name)
}

// MatchHeader returns the newest version whose columns equal header.
func (t *Table) MatchHeader(header []string) (Version, bool) {
	return t.Versions.Match(header)
}

// HasColumn reports whether any known version has the column.
func (t *Table) HasColumn(col string) bool {
	for _, v := range t.Versions {
		if slices.Contains(v.Columns, col) {
			return true
		}
	}
	return false
}

var catalogue = map[string]*Table{}

// Lookup returns the catalogue entry for a table such as "SRPatient".
func Lookup(name string) (*Table, bool) {
	t, ok := catalogue[name]
	return t, ok
}

// Tables lists the catalogued table names, sorted.
func Tables() []string {
	out := make([]string, 0, len(catalogue))
	for k := range catalogue {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cols(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

func without(base []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(base), func(c string) bool { return slices.Contains(drop, c) })
}

// Column lists per reference/supplier-formats.md §2.6 (TX
// tpp/csv/schema/**#getCsvHeaders), given there for version 93. Older
// versions are derived: RemovedData dropped where the version lacks it;
// SRCode without IDQuestionnaire before 92 and without SNOMEDCode and
// SNOMEDText before 90. For SRPatient, SREvent, SROrganisation and
// SRPatientRegistration the reference lists 87–93 (or 89–93) with the same
// columns; 87/88 are assumed to match (inference).
//
// SRMappingGroup's columns were not found in any source. The catalogue
// assumes "RowIdentifier, Description" (a group id and its name, by analogy
// with SRMapping); TX ignores the file, so nothing depends on it. SRMapping
// and SRMappingGroup never carry RemovedData: they are whole lookups
// re-sent with every extract.
func init() {
	specs := []struct {
		name, columns string
		reference     bool
	}{
		{name: "SRPatient", columns: "RowIdentifier, IDOrganisationVisibleTo, Title, FirstName, MiddleNames, Surname, PreviousSurname, NHSNumber, DateBirth, DateDeath, BirthPlace, Gender, SpeaksEnglish, EmailAddress, TestPatient, SSRef, SpineMatched, RemovedData"},
		{name: "SRCode", columns: "RowIdentifier, IDOrganisationVisibleTo, DateEventRecorded, DateEvent, IDProfileEnteredBy, IDDoneBy, TextualEventDoneBy, IDOrganisationDoneAt, CTV3Code, CTV3Text, SNOMEDCode, SNOMEDText, NumericComparator, IsNumeric, NumericValue, NumericUnit, EpisodeType, IDTemplate, IDQuestionnaire, IDEvent, IDPatient, IDReferralIn, IDAppointment, IDVisit, IDOrganisation, IDOrganisationRegisteredAt, RemovedData"},
		{name: "SREvent", columns: "RowIdentifier, IDOrganisationVisibleTo, DateEventRecorded, DateEvent, IDProfileEnteredBy, IDDoneBy, IDStaffMemberProfileRole, TextualEventDoneBy, IDOrganisationDoneAt, IDAuthorisedBy, IDProfileAuthorisedBy, ContactEventLocation, ContactMethod, EventIncomplete, ClinicalEvent, IDReferralIn, IDPatient, IDOrganisation, IDTeam, IDBranch, IDOrganisationRegisteredAt, RemovedData"},
		{name: "SROrganisation", reference: true, columns: "RowIdentifier, Name, ID, HouseName, HouseNumber, NameOfRoad, NameOfLocality, NameOfTown, NameOfCounty, FullPostCode, Telephone, SecondaryTelephone, Fax, MadeObsolete, IDTrust, IDCcg, RemovedData"},
		{name: "SRPatientRegistration", columns: "RowIdentifier, IDOrganisationVisibleTo, DateEventRecorded, IDProfileEnteredBy, DateRegistration, DateDeRegistration, RegistrationStatus, PreferredPharmacy, IDPatient, IDOrganisation, IDOrganisationRegisteredAt, RemovedData"},
		{name: "SRMapping", reference: true, columns: "RowIdentifier, IdMappingGroup, Mapping"},
		{name: "SRMappingGroup", reference: true, columns: "RowIdentifier, Description"},
	}
	for _, s := range specs {
		v93 := cols(s.columns)
		t := &Table{Name: s.name, Reference: s.reference}
		for _, name := range versions {
			c := v93
			if s.name == "SRCode" {
				switch name {
				case "91", "90":
					c = without(c, "IDQuestionnaire")
				case "89", "88", "87":
					c = without(c, "IDQuestionnaire", "SNOMEDCode", "SNOMEDText")
				}
			}
			if !VersionHasRemovedData(name) {
				c = without(c, RemovedData)
			}
			t.Versions = append(t.Versions, Version{Name: name, Columns: c})
		}
		if s.name == "SRPatient" {
			t.Versions = append(t.Versions, Version{Name: TestPack, Columns: without(v93, "SpineMatched", RemovedData)})
		}
		if slices.Contains(v93, "IDOrganisationVisibleTo") {
			t.OrgColumn = "IDOrganisationVisibleTo"
		}
		if slices.Contains(v93, "NHSNumber") {
			t.NHSColumn = "NHSNumber"
		}
		catalogue[s.name] = t
	}
}
