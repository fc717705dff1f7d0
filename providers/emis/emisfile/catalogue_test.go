package emisfile

import (
	"slices"
	"testing"
)

func TestCatalogue(t *testing.T) {
	types := FileTypes()
	if len(types) != 20 {
		t.Fatalf("%d file types, want 20", len(types))
	}
	// reference §1.5: the tables without a Deleted column.
	noDeleted := []string{"Admin_Organisation", "Admin_UserInRole", "Audit_PatientAudit", "Audit_RegistrationAudit",
		"CareRecord_ObservationReferral", "Coding_ClinicalCode", "Coding_DrugCode"}
	for _, ft := range types {
		tab, _ := Lookup(ft)
		if tab.HasDeleted == slices.Contains(noDeleted, ft) {
			t.Errorf("%s HasDeleted = %v", ft, tab.HasDeleted)
		}
		if len(tab.Versions) != 4 || tab.Latest().Name != V54 {
			t.Errorf("%s versions %v", ft, tab.Versions)
		}
		for _, k := range tab.Key {
			if !tab.HasColumn(k) {
				t.Errorf("%s key column %s missing", ft, k)
			}
		}
		if ft != SharingOrganisation && !tab.HasColumn("ProcessingId") {
			t.Errorf("%s has no ProcessingId", ft)
		}
	}
	if _, ok := Lookup("PatientAdmin_ListEntry"); ok {
		t.Error("PatientAdmin_ListEntry is not in the configured set")
	}
}

func TestCatalogueVersions(t *testing.T) {
	tests := []struct {
		fileType, version string
		has, lacks        string
	}{
		{"Admin_Patient", V54, "ExternalUsualGP", "ExternalUsusalGP"},
		{"Admin_Patient", V51, "ExternalUsusalGPOrganisation", "ExternalUsualGPOrganisation"},
		{"Admin_Patient", V50, "ExternalUsusalGP", "ExternalUsualGP"},
		{"Prescribing_DrugRecord", V53, "ClinicianUserInRoleGuid", "ClinicanUserInRoleGuid"},
		{"Prescribing_DrugRecord", V51, "ClinicanUserInRoleGuid", "ClinicianUserInRoleGuid"},
		{"Prescribing_IssueRecord", V50, "ClinicanUserInRoleGuid", "EnteredTime"},
		{"CareRecord_Diary", V51, "ClinicanUserInRoleGuid", "ClinicianUserInRoleGuid"},
		{"CareRecord_Consultation", V50, "ClinicianUserInRoleGuid", "EnteredTime"},
		{"Coding_ClinicalCode", V54, "ParentCodeId", ""},
		{"Coding_ClinicalCode", V53, "ProcessingId", "ParentCodeId"},
	}
	for _, tt := range tests {
		tab, _ := Lookup(tt.fileType)
		v, ok := tab.Version(tt.version)
		if !ok {
			t.Fatalf("%s has no version %s", tt.fileType, tt.version)
		}
		if !slices.Contains(v.Columns, tt.has) || (tt.lacks != "" && slices.Contains(v.Columns, tt.lacks)) {
			t.Errorf("%s %s: columns %v", tt.fileType, tt.version, v.Columns)
		}
		// Header detection picks the newest identical version, as TX does.
		m, ok := tab.MatchHeader(v.Columns)
		if !ok {
			t.Fatalf("%s %s: own header does not match", tt.fileType, tt.version)
		}
		if m.Name < tt.version {
			t.Errorf("%s %s: matched older version %s", tt.fileType, tt.version, m.Name)
		}
	}
	tab, _ := Lookup("Admin_Patient")
	if v, _ := tab.MatchHeader(tab.Versions[2].Columns); v.Name != V51 {
		t.Errorf("5.1 Admin_Patient header detected as %s", v.Name)
	}
	if _, ok := tab.MatchHeader([]string{"PatientGuid"}); ok {
		t.Error("truncated header matched")
	}
	obs, _ := Lookup("CareRecord_Observation")
	if obs.GUIDColumn != "ObservationGuid" || !obs.Patient || obs.OrgColumn != "OrganisationGuid" || obs.NHSColumn != "" {
		t.Errorf("CareRecord_Observation attributes %+v", obs)
	}
	pat, _ := Lookup(AdminPatient)
	if pat.NHSColumn != "NhsNumber" {
		t.Errorf("Admin_Patient NHSColumn %q", pat.NHSColumn)
	}
}
