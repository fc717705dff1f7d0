package emisfile

import (
	"slices"
	"sort"
	"strings"

	"github.com/im1dev/im1/providers/landing"
)

// Version names, newest first. TX (Endeavour Transforms) recognises these by
// header and picks the newest that matches; EMIS never announces a change.
const (
	V54 = "5.4" // live Dec 2016
	V53 = "5.3" // live Nov 2016
	V51 = "5.1" // the official test pack
	V50 = "5.0"
)

// Well-known file types.
const (
	SharingOrganisation = "Agreements_SharingOrganisation"
	AdminOrganisation   = "Admin_Organisation"
	AdminPatient        = "Admin_Patient"
)

// Table is one EMIS file type.
type Table struct {
	FileType   string           // "Schema_Table"
	Versions   landing.Versions // newest first
	HasDeleted bool             // has a Deleted column (deltas carry delete rows)
	GUIDColumn string           // the record's own identifier column; "" for Audit_* (no key)
	Key        []string         // columns identifying a row (EEV); a delete row keeps these
	Patient    bool             // rows belong to a patient (a PatientGuid column)
	OrgColumn  string           // "OrganisationGuid" if present
	NHSColumn  string           // "NhsNumber" for Admin_Patient
}

// Version is one known header for a file type.
type Version = landing.HeaderVersion

// Latest is the newest known version.
func (t *Table) Latest() Version { return t.Versions[0] }

// Version returns the column list for an EMIS version name. A table whose
// header did not change in that version answers with the nearest older one.
func (t *Table) Version(name string) (Version, bool) {
	return t.Versions.Named(name)
}

// MatchHeader returns the newest version whose columns equal header exactly.
func (t *Table) MatchHeader(header []string) (Version, bool) {
	return t.Versions.Match(header)
}

// HasColumn reports whether the newest version has the column.
func (t *Table) HasColumn(col string) bool { return slices.Contains(t.Latest().Columns, col) }

var catalogue = map[string]*Table{}

// Lookup returns the catalogue entry for a file type such as "Admin_Patient".
func Lookup(fileType string) (*Table, bool) {
	t, ok := catalogue[fileType]
	return t, ok
}

// FileTypes lists the 20 catalogued file types, sorted.
func FileTypes() []string {
	out := make([]string, 0, len(catalogue))
	for k := range catalogue {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Versions lists the known version names, newest first.
func Versions() []string { return []string{V54, V53, V51, V50} }

// cols splits a comma-separated column list as written in the reference.
func cols(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// variant derives an older header from the 5.4 one by renaming and dropping
// columns, which is how the versions differ in practice.
func variant(base []string, rename map[string]string, drop ...string) []string {
	var out []string
	for _, c := range base {
		if slices.Contains(drop, c) {
			continue
		}
		if r, ok := rename[c]; ok {
			c = r
		}
		out = append(out, c)
	}
	return out
}

// Column lists per reference/supplier-formats.md §1.7 (TX …/emis/csv/schema,
// cross-checked with EEV). Older-version differences were read in TX's
// getCsvHeaders: Admin_Patient "Ususal" typos (5.0, 5.1), "ClinicanUserInRoleGuid"
// in CareRecord_Diary and Prescribing_* (5.0, 5.1), no EnteredTime in
// CareRecord_Consultation and Prescribing_* (5.0), ParentCodeId only in 5.4.
func init() {
	type spec struct {
		fileType, columns string
		key               []string
		// older-version edits; 5.3 only differs from 5.4 in Coding_ClinicalCode
		v51Rename map[string]string
		v50Drop   []string
	}
	usual := map[string]string{"ExternalUsualGP": "ExternalUsusalGP", "ExternalUsualGPOrganisation": "ExternalUsusalGPOrganisation"}
	clinican := map[string]string{"ClinicianUserInRoleGuid": "ClinicanUserInRoleGuid"}
	specs := []spec{
		{fileType: "Admin_Location", key: []string{"LocationGuid"}, columns: "LocationGuid, LocationName, LocationTypeDescription, ParentLocationGuid, OpenDate, CloseDate, MainContactName, FaxNumber, EmailAddress, PhoneNumber, HouseNameFlatNumber, NumberAndStreet, Village, Town, County, Postcode, Deleted, ProcessingId"},
		{fileType: "Admin_Organisation", key: []string{"OrganisationGuid"}, columns: "OrganisationGuid, CDB, OrganisationName, ODSCode, ParentOrganisationGuid, CCGOrganisationGuid, OrganisationType, OpenDate, CloseDate, MainLocationGuid, ProcessingId"},
		{fileType: "Admin_OrganisationLocation", key: []string{"OrganisationGuid", "LocationGuid"}, columns: "OrganisationGuid, LocationGuid, IsMainLocation, Deleted, ProcessingId"},
		{fileType: "Admin_Patient", key: []string{"PatientGuid"}, v51Rename: usual, columns: "PatientGuid, OrganisationGuid, UsualGpUserInRoleGuid, Sex, DateOfBirth, DateOfDeath, Title, GivenName, MiddleNames, Surname, DateOfRegistration, NhsNumber, PatientNumber, PatientTypeDescription, DummyType, HouseNameFlatNumber, NumberAndStreet, Village, Town, County, Postcode, ResidentialInstituteCode, NHSNumberStatus, CarerName, CarerRelation, PersonGuid, DateOfDeactivation, Deleted, SpineSensitive, IsConfidential, EmailAddress, HomePhone, MobilePhone, ExternalUsualGPGuid, ExternalUsualGP, ExternalUsualGPOrganisation, ProcessingId"},
		{fileType: "Admin_UserInRole", key: []string{"UserInRoleGuid"}, columns: "UserInRoleGuid, OrganisationGuid, Title, GivenName, Surname, JobCategoryCode, JobCategoryName, ContractStartDate, ContractEndDate, ProcessingId"},
		{fileType: "Agreements_SharingOrganisation", key: []string{"OrganisationGuid"}, columns: "OrganisationGuid, IsActivated, LastModifiedDate, Disabled, Deleted"},
		{fileType: "Appointment_Session", key: []string{"AppointmentSessionGuid"}, columns: "AppointmentSessionGuid, Description, LocationGuid, SessionTypeDescription, SessionCategoryDisplayName, StartDate, StartTime, EndDate, EndTime, Private, OrganisationGuid, Deleted, ProcessingId"},
		{fileType: "Appointment_SessionUser", key: []string{"SessionGuid", "UserInRoleGuid"}, columns: "SessionGuid, UserInRoleGuid, Deleted, ProcessingId"},
		{fileType: "Appointment_Slot", key: []string{"SlotGuid"}, columns: "SlotGuid, AppointmentDate, AppointmentStartTime, PlannedDurationInMinutes, PatientGuid, SendInTime, LeftTime, DidNotAttend, PatientWaitInMin, AppointmentDelayInMin, ActualDurationInMinutes, OrganisationGuid, SessionGuid, DnaReasonCodeId, Deleted, ProcessingId"},
		{fileType: "Audit_PatientAudit", columns: "ItemGuid, PatientGuid, OrganisationGuid, ModifiedDate, ModifiedTime, UserInRoleGuid, ItemType, ModeType, ProcessingId"},
		{fileType: "Audit_RegistrationAudit", columns: "PatientGuid, OrganisationGuid, ModifiedDate, ModifiedTime, UserInRoleGuid, ModeType, ProcessingId"},
		{fileType: "CareRecord_Consultation", key: []string{"ConsultationGuid"}, v50Drop: []string{"EnteredTime"}, columns: "ConsultationGuid, PatientGuid, OrganisationGuid, EffectiveDate, EffectiveDatePrecision, EnteredDate, EnteredTime, ClinicianUserInRoleGuid, EnteredByUserInRoleGuid, AppointmentSlotGuid, ConsultationSourceTerm, ConsultationSourceCodeId, Complete, Deleted, IsConfidential, ProcessingId"},
		{fileType: "CareRecord_Diary", key: []string{"DiaryGuid"}, v51Rename: clinican, columns: "DiaryGuid, PatientGuid, OrganisationGuid, EffectiveDate, EffectiveDatePrecision, EnteredDate, EnteredTime, ClinicianUserInRoleGuid, EnteredByUserInRoleGuid, CodeId, OriginalTerm, AssociatedText, DurationTerm, LocationTypeDescription, Deleted, IsConfidential, IsActive, IsComplete, ConsultationGuid, ProcessingId"},
		{fileType: "CareRecord_Observation", key: []string{"ObservationGuid"}, columns: "ObservationGuid, PatientGuid, OrganisationGuid, EffectiveDate, EffectiveDatePrecision, EnteredDate, EnteredTime, ClinicianUserInRoleGuid, EnteredByUserInRoleGuid, ParentObservationGuid, CodeId, ProblemGuid, AssociatedText, ConsultationGuid, Value, NumericUnit, ObservationType, NumericRangeLow, NumericRangeHigh, DocumentGuid, Deleted, IsConfidential, ProcessingId"},
		{fileType: "CareRecord_ObservationReferral", key: []string{"ObservationGuid"}, columns: "ObservationGuid, PatientGuid, OrganisationGuid, ReferralTargetOrganisationGuid, ReferralUrgency, ReferralServiceType, ReferralMode, ReferralReceivedDate, ReferralReceivedTime, ReferralEndDate, ReferralSourceId, ReferralSourceOrganisationGuid, ReferralUBRN, ReferralReasonCodeId, ReferringCareProfessionalStaffGroupCodeId, ReferralEpisodeRTTMeasurementTypeId, ReferralEpisodeClosureDate, ReferralEpisodeDischargeLetterIssuedDate, ReferralClosureReasonCodeId, ProcessingId"},
		{fileType: "CareRecord_Problem", key: []string{"ObservationGuid"}, columns: "ObservationGuid, PatientGuid, OrganisationGuid, ParentProblemObservationGuid, Deleted, Comment, EndDate, EndDatePrecision, ExpectedDuration, LastReviewDate, LastReviewDatePrecision, LastReviewUserInRoleGuid, ParentProblemRelationship, ProblemStatusDescription, SignificanceDescription, ProcessingId"},
		{fileType: "Coding_ClinicalCode", key: []string{"CodeId"}, columns: "CodeId, Term, ReadTermId, SnomedCTConceptId, SnomedCTDescriptionId, NationalCode, NationalCodeCategory, NationalDescription, EmisCodeCategoryDescription, ProcessingId, ParentCodeId"},
		{fileType: "Coding_DrugCode", key: []string{"CodeId"}, columns: "CodeId, Term, DmdProductCodeId, ProcessingId"},
		{fileType: "Prescribing_DrugRecord", key: []string{"DrugRecordGuid"}, v51Rename: clinican, v50Drop: []string{"EnteredTime"}, columns: "DrugRecordGuid, PatientGuid, OrganisationGuid, EffectiveDate, EffectiveDatePrecision, EnteredDate, EnteredTime, ClinicianUserInRoleGuid, EnteredByUserInRoleGuid, CodeId, Dosage, Quantity, QuantityUnit, ProblemObservationGuid, PrescriptionType, IsActive, CancellationDate, NumberOfIssues, NumberOfIssuesAuthorised, IsConfidential, Deleted, ProcessingId"},
		{fileType: "Prescribing_IssueRecord", key: []string{"IssueRecordGuid"}, v51Rename: clinican, v50Drop: []string{"EnteredTime"}, columns: "IssueRecordGuid, PatientGuid, OrganisationGuid, DrugRecordGuid, EffectiveDate, EffectiveDatePrecision, EnteredDate, EnteredTime, ClinicianUserInRoleGuid, EnteredByUserInRoleGuid, CodeId, Dosage, Quantity, QuantityUnit, ProblemObservationGuid, CourseDurationInDays, EstimatedNhsCost, IsConfidential, Deleted, ProcessingId"},
	}
	for _, s := range specs {
		v54 := cols(s.columns)
		v53 := v54
		if s.fileType == "Coding_ClinicalCode" {
			v53 = variant(v54, nil, "ParentCodeId")
		}
		v51 := variant(v53, s.v51Rename)
		v50 := variant(v51, nil, s.v50Drop...)
		t := &Table{
			FileType: s.fileType,
			Versions: landing.Versions{{Name: V54, Columns: v54}, {Name: V53, Columns: v53}, {Name: V51, Columns: v51}, {Name: V50, Columns: v50}},
			Key:      s.key,
		}
		if len(s.key) > 0 {
			t.GUIDColumn = s.key[len(s.key)-1]
			if s.fileType == "Appointment_SessionUser" {
				t.GUIDColumn = "SessionGuid"
			}
		}
		t.HasDeleted = t.HasColumn("Deleted")
		t.Patient = t.HasColumn("PatientGuid")
		if t.HasColumn("OrganisationGuid") {
			t.OrgColumn = "OrganisationGuid"
		}
		if t.HasColumn("NhsNumber") {
			t.NHSColumn = "NhsNumber"
		}
		catalogue[s.fileType] = t
	}
}
