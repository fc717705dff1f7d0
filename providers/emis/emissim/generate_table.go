package emissim

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/im1dev/im1/providers/emis/emisfile"
)

// GenerateTable writes one plaintext EMIS CSV for fileType: header first,
// every field quoted, CRLF line ends. It streams: rows are derived from
// (Seed, org, patient, sequence) as they are written, so memory does not
// grow with spec.Patients. The same spec always gives the same bytes.
func GenerateTable(w io.Writer, spec BatchSpec, fileType string) error {
	tab, ok := emisfile.Lookup(fileType)
	if !ok {
		return fmt.Errorf("emissim: unknown EMIS file type %q", fileType)
	}
	version := spec.Version
	if version == "" {
		version = emisfile.V54
	}
	v, ok := tab.Version(version)
	if !ok {
		return fmt.Errorf("emissim: unknown EMIS version %q", version)
	}
	if spec.ProcStart < 0 || spec.ProcEnd < spec.ProcStart {
		return fmt.Errorf("emissim: bad processing id range %d-%d", spec.ProcStart, spec.ProcEnd)
	}
	g := newGen(spec, tab, v, w)
	g.writeHeader()
	g.rows()
	return g.w.Flush()
}

// Older versions misspell some columns; generators set the 5.4 names.
var columnAliases = map[string]string{
	"ExternalUsusalGP":             "ExternalUsualGP",
	"ExternalUsusalGPOrganisation": "ExternalUsualGPOrganisation",
	"ClinicanUserInRoleGuid":       "ClinicianUserInRoleGuid",
}

type gen struct {
	spec BatchSpec
	tab  *emisfile.Table
	w    *bufio.Writer
	cols []string
	idx  map[string]int
	vals []string
	pcg  rand.PCG
	r    *rand.Rand
	day  time.Time // the batch's calendar day
}

func newGen(spec BatchSpec, tab *emisfile.Table, v emisfile.Version, w io.Writer) *gen {
	g := &gen{spec: spec, tab: tab, w: bufio.NewWriterSize(w, 64<<10), cols: v.Columns,
		idx: make(map[string]int, len(v.Columns)), vals: make([]string, len(v.Columns))}
	for i, c := range v.Columns {
		if a, ok := columnAliases[c]; ok {
			c = a
		}
		g.idx[c] = i
	}
	g.r = rand.New(&g.pcg)
	t := spec.Time.UTC()
	g.day = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return g
}

func (g *gen) set(col, val string) {
	if i, ok := g.idx[col]; ok {
		g.vals[i] = val
	}
}

func (g *gen) writeHeader() {
	copy(g.vals, g.cols)
	g.emit()
}

// emit writes the current row fully quoted and clears it.
func (g *gen) emit() {
	for i, v := range g.vals {
		if i > 0 {
			g.w.WriteByte(',')
		}
		g.w.WriteByte('"')
		if strings.IndexByte(v, '"') >= 0 {
			v = strings.ReplaceAll(v, `"`, `""`)
		}
		g.w.WriteString(v)
		g.w.WriteByte('"')
		g.vals[i] = ""
	}
	g.w.WriteString("\r\n")
}

// Entity kinds, mixed into every derived GUID and random stream.
const (
	kOrg uint64 = iota + 1
	kCCG
	kLocation
	kUser
	kSession
	kPatient
	kPerson
	kSlot
	kConsultation
	kObservation
	kDiary
	kDrug
	kIssue
	kDeleted
	kProfile
	kRows
)

// mix is the splitmix64 finaliser: it spreads (kind, org, a, b) over the
// PCG seed space so neighbouring entities get unrelated streams.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (g *gen) seed(kind uint64, org, a, b int) {
	s := uint64(g.spec.Seed)
	g.pcg.Seed(mix(s^mix(kind)), mix(mix(uint64(org)+1)^mix(uint64(a)<<1)^uint64(b)))
}

// guid derives an upper-case version-4 style GUID for an entity.
func (g *gen) guid(kind uint64, org, a, b int) string {
	var p rand.PCG
	s := uint64(g.spec.Seed)
	p.Seed(mix(s^mix(kind)^0x5eed), mix(mix(uint64(org)+1)^mix(uint64(a)<<1)^uint64(b)))
	hi, lo := p.Uint64(), p.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12
	lo = lo&^(0x3<<62) | 0x2<<62
	const hexd = "0123456789ABCDEF"
	var out [36]byte
	j := 0
	for i := 0; i < 32; i++ {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			out[j] = '-'
			j++
		}
		var nib uint64
		if i < 16 {
			nib = hi >> (60 - 4*i) & 0xf
		} else {
			nib = lo >> (60 - 4*(i-16)) & 0xf
		}
		out[j] = hexd[nib]
		j++
	}
	return string(out[:])
}

func (g *gen) orgGUID(o int) string { return strings.ToUpper(g.spec.Orgs[o].GUID) }

func (g *gen) active(o int) bool {
	org := g.spec.Orgs[o]
	return !org.Disabled && !org.NotActivated && !org.Deleted
}

func (g *gen) procID() string {
	s, e := g.spec.ProcStart, g.spec.ProcEnd
	return strconv.FormatInt(s+g.r.Int64N(e-s+1), 10)
}

func (g *gen) date(t time.Time) string { return t.Format("2006-01-02") }

// daysAgo is a date up to n days before the batch day.
func (g *gen) daysAgo(n int) time.Time { return g.day.AddDate(0, 0, -g.r.IntN(n+1)) }

// entered is the date a record was entered: the day before the extract for a
// delta, any time in the last ten years for a full extract.
func (g *gen) entered() time.Time {
	if g.spec.Full {
		return g.daysAgo(3650)
	}
	return g.day.AddDate(0, 0, -1)
}

func (g *gen) clock() string {
	sec := 8*3600 + g.r.IntN(10*3600)
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

func boolStr(b bool) string { return strconv.FormatBool(b) }

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

// nhsNumber is a valid Modulus 11 number in the 999 range, which is never
// issued to real patients.
func (g *gen) nhsNumber() string {
	for {
		stem := "999" + fmt.Sprintf("%06d", g.r.IntN(1_000_000))
		if d, ok := emisfile.NHSCheckDigit(stem); ok {
			return stem + string(d)
		}
	}
}

func (g *gen) users() int    { return 3 + g.spec.Patients/1000 }
func (g *gen) sessions() int { return 2 + g.spec.Patients/200 }

// profile is what every table needs to agree on about one patient; it is
// derived from its own stream so each table computes the same one.
type profile struct {
	consultations, observations, drugs, issuesPerDrug int
	problem, diary, referral, registrationAudit, del  bool
}

func (g *gen) profile(o, p int) profile {
	g.seed(kProfile, o, p, 0)
	pr := profile{
		consultations:     1 + g.r.IntN(3),
		observations:      2 + g.r.IntN(7),
		drugs:             g.r.IntN(3),
		issuesPerDrug:     1 + g.r.IntN(2),
		problem:           g.r.IntN(3) == 0,
		diary:             g.r.IntN(4) == 0,
		referral:          g.r.IntN(6) == 0,
		registrationAudit: g.r.IntN(5) == 0,
		del:               g.r.IntN(25) == 0,
	}
	if pr.problem || pr.referral {
		pr.observations = max(pr.observations, 3)
	}
	return pr
}

func (g *gen) rows() {
	switch g.tab.FileType {
	case emisfile.SharingOrganisation, emisfile.AdminOrganisation, "Admin_Location", "Admin_OrganisationLocation":
		for o := range g.spec.Orgs {
			g.orgRow(o)
		}
	case "Admin_UserInRole":
		for o := range g.spec.Orgs {
			for u := 0; u < g.users(); u++ {
				g.userRow(o, u)
			}
		}
	case "Appointment_Session", "Appointment_SessionUser":
		for o := range g.spec.Orgs {
			if !g.active(o) {
				continue
			}
			for s := 0; s < g.sessions(); s++ {
				g.sessionRows(o, s)
			}
		}
	case "Coding_ClinicalCode":
		for _, c := range clinicalCodes {
			g.set("CodeId", c.id)
			g.set("Term", c.term)
			g.set("ReadTermId", c.read)
			g.set("SnomedCTConceptId", c.concept)
			g.set("SnomedCTDescriptionId", c.desc)
			g.set("EmisCodeCategoryDescription", c.category)
			g.set("ProcessingId", strconv.FormatInt(g.spec.ProcStart, 10))
			g.emit()
		}
	case "Coding_DrugCode":
		for _, d := range drugCodes {
			g.set("CodeId", d.id)
			g.set("Term", d.term)
			g.set("DmdProductCodeId", d.dmd)
			g.set("ProcessingId", strconv.FormatInt(g.spec.ProcStart, 10))
			g.emit()
		}
	default: // patient-level tables
		for o := range g.spec.Orgs {
			if !g.active(o) {
				continue
			}
			for p := 0; p < g.spec.Patients; p++ {
				pr := g.profile(o, p)
				g.seed(kRows^tableHash(g.tab.FileType), o, p, 0)
				g.patientRows(o, p, pr)
				if pr.del && !g.spec.Full && g.tab.HasDeleted {
					g.deleteRow(o, p)
				}
			}
		}
	}
}

// tableHash (FNV-1a) gives each table its own row stream.
func tableHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h << 8
}

func (g *gen) orgRow(o int) {
	org := g.spec.Orgs[o]
	g.seed(kOrg, o, 0, 0)
	guid := g.orgGUID(o)
	switch g.tab.FileType {
	case emisfile.SharingOrganisation:
		g.set("OrganisationGuid", guid)
		g.set("IsActivated", boolStr(!org.NotActivated))
		g.set("LastModifiedDate", g.date(g.daysAgo(400)))
		g.set("Disabled", boolStr(org.Disabled))
		g.set("Deleted", boolStr(org.Deleted))
	case emisfile.AdminOrganisation:
		ods := org.ODS
		if c, ok := g.spec.Faults.ODSChange[org.GUID]; ok {
			ods = c
		} else if c, ok := g.spec.Faults.ODSChange[guid]; ok {
			ods = c
		}
		g.set("OrganisationGuid", guid)
		g.set("CDB", strconv.Itoa(7000+o))
		g.set("OrganisationName", org.Name)
		g.set("ODSCode", ods)
		g.set("CCGOrganisationGuid", g.guid(kCCG, 0, 0, 0))
		g.set("OrganisationType", "General Practice")
		g.set("OpenDate", g.date(g.daysAgo(10000).AddDate(-5, 0, 0)))
		g.set("MainLocationGuid", g.guid(kLocation, o, 0, 0))
		g.set("ProcessingId", g.procID())
	case "Admin_Location":
		g.set("LocationGuid", g.guid(kLocation, o, 0, 0))
		g.set("LocationName", org.Name)
		g.set("LocationTypeDescription", "Main Surgery")
		g.set("OpenDate", g.date(g.daysAgo(10000).AddDate(-5, 0, 0)))
		g.set("MainContactName", "Practice Manager")
		g.set("PhoneNumber", fmt.Sprintf("01632 %06d", 960000+o))
		g.set("NumberAndStreet", fmt.Sprintf("%d %s", 1+g.r.IntN(120), g.pick(streets)))
		g.set("Town", g.pick(towns))
		g.set("Postcode", g.postcode())
		g.set("Deleted", "false")
		g.set("ProcessingId", g.procID())
	case "Admin_OrganisationLocation":
		g.set("OrganisationGuid", guid)
		g.set("LocationGuid", g.guid(kLocation, o, 0, 0))
		g.set("IsMainLocation", "true")
		g.set("Deleted", "false")
		g.set("ProcessingId", g.procID())
	}
	g.emit()
}

func (g *gen) userRow(o, u int) {
	g.seed(kUser, o, u, 0)
	g.set("UserInRoleGuid", g.guid(kUser, o, u, 0))
	g.set("OrganisationGuid", g.orgGUID(o))
	if u%3 == 2 {
		g.set("Title", g.pick([]string{"Mrs", "Mr", "Ms"}))
		g.set("JobCategoryCode", "R0690")
		g.set("JobCategoryName", "Practice Nurse")
	} else {
		g.set("Title", "Dr")
		g.set("JobCategoryCode", "R0260")
		g.set("JobCategoryName", "General Medical Practitioner")
	}
	g.set("GivenName", g.pick(givenNames))
	g.set("Surname", g.pick(surnames))
	g.set("ContractStartDate", g.date(g.daysAgo(7000)))
	g.set("ProcessingId", g.procID())
	g.emit()
}

func (g *gen) sessionRows(o, s int) {
	g.seed(kSession, o, s, 0)
	sg := g.guid(kSession, o, s, 0)
	if g.tab.FileType == "Appointment_Session" {
		start := 8 + 5*(s%2)
		g.set("AppointmentSessionGuid", sg)
		g.set("Description", fmt.Sprintf("Session %d", s+1))
		g.set("LocationGuid", g.guid(kLocation, o, 0, 0))
		g.set("SessionTypeDescription", "Timed Appointments")
		g.set("SessionCategoryDisplayName", g.pick([]string{"GP Clinic", "Nurse Clinic", "Telephone Triage"}))
		g.set("StartDate", g.date(g.day))
		g.set("StartTime", fmt.Sprintf("%02d:30:00", start))
		g.set("EndDate", g.date(g.day))
		g.set("EndTime", fmt.Sprintf("%02d:00:00", start+4))
		g.set("Private", "false")
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("Deleted", "false")
		g.set("ProcessingId", g.procID())
		g.emit()
		return
	}
	n := 1 + s%2
	for k := 0; k < n; k++ {
		repeat := 1
		// EMIS sends duplicate SessionUser rows (reference §1.5).
		if g.spec.Faults.DuplicateRows && (s+k)%3 == 0 {
			repeat = 2
		}
		pid := g.procID()
		for range repeat {
			g.set("SessionGuid", sg)
			g.set("UserInRoleGuid", g.guid(kUser, o, (s+k)%g.users(), 0))
			g.set("Deleted", "false")
			g.set("ProcessingId", pid)
			g.emit()
		}
	}
}

// common sets the columns every clinical record shares.
func (g *gen) common(o, p int, when time.Time) {
	g.set("PatientGuid", g.guid(kPatient, o, p, 0))
	g.set("OrganisationGuid", g.orgGUID(o))
	g.set("EffectiveDate", g.date(when))
	g.set("EffectiveDatePrecision", "YMD")
	g.set("EnteredDate", g.date(when))
	g.set("EnteredTime", g.clock())
	clin := g.guid(kUser, o, g.r.IntN(g.users()), 0)
	g.set("ClinicianUserInRoleGuid", clin)
	g.set("EnteredByUserInRoleGuid", clin)
	g.set("IsConfidential", "false")
	g.set("Deleted", "false")
	g.set("ProcessingId", g.procID())
}

func (g *gen) patientRows(o, p int, pr profile) {
	pg := g.guid(kPatient, o, p, 0)
	switch g.tab.FileType {
	case emisfile.AdminPatient:
		female := g.r.IntN(2) == 0
		g.set("PatientGuid", pg)
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("UsualGpUserInRoleGuid", g.guid(kUser, o, p%g.users(), 0))
		g.set("Sex", map[bool]string{true: "F", false: "M"}[female])
		dob := g.day.AddDate(-g.r.IntN(95), 0, -g.r.IntN(365))
		g.set("DateOfBirth", g.date(dob))
		if female {
			g.set("Title", g.pick([]string{"Mrs", "Ms", "Miss"}))
			g.set("GivenName", g.pick(femaleNames))
		} else {
			g.set("Title", "Mr")
			g.set("GivenName", g.pick(givenNames))
		}
		g.set("Surname", g.pick(surnames))
		reg := dob.AddDate(0, 0, g.r.IntN(int(g.day.Sub(dob).Hours()/24)+1))
		g.set("DateOfRegistration", g.date(reg))
		g.set("NhsNumber", g.nhsNumber())
		g.set("PatientNumber", strconv.Itoa(10000+p))
		g.set("PatientTypeDescription", "Regular")
		g.set("DummyType", "false")
		g.set("NumberAndStreet", fmt.Sprintf("%d %s", 1+g.r.IntN(200), g.pick(streets)))
		g.set("Town", g.pick(towns))
		g.set("Postcode", g.postcode())
		g.set("NHSNumberStatus", "Number present and verified")
		g.set("PersonGuid", g.guid(kPerson, o, p, 0))
		g.set("Deleted", "false")
		g.set("SpineSensitive", "false")
		g.set("IsConfidential", "false")
		g.set("MobilePhone", fmt.Sprintf("07700 9%05d", g.r.IntN(100000)))
		g.set("ProcessingId", g.procID())
		g.emit()
	case "Appointment_Slot":
		g.set("SlotGuid", g.guid(kSlot, o, p, 0))
		g.set("AppointmentDate", g.date(g.entered()))
		g.set("AppointmentStartTime", g.clock())
		g.set("PlannedDurationInMinutes", "10")
		g.set("PatientGuid", pg)
		dna := g.r.IntN(12) == 0
		if !dna {
			g.set("SendInTime", g.clock())
			g.set("LeftTime", g.clock())
			g.set("PatientWaitInMin", strconv.Itoa(g.r.IntN(30)))
			g.set("AppointmentDelayInMin", strconv.Itoa(g.r.IntN(20)))
			g.set("ActualDurationInMinutes", strconv.Itoa(5+g.r.IntN(15)))
		}
		g.set("DidNotAttend", boolStr(dna))
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("SessionGuid", g.guid(kSession, o, p%g.sessions(), 0))
		g.set("Deleted", "false")
		g.set("ProcessingId", g.procID())
		g.emit()
	case "Audit_PatientAudit":
		g.set("ItemGuid", g.guid(kObservation, o, p, 0))
		g.set("PatientGuid", pg)
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("ModifiedDate", g.date(g.entered()))
		g.set("ModifiedTime", g.clock())
		g.set("UserInRoleGuid", g.guid(kUser, o, p%g.users(), 0))
		g.set("ItemType", "Observation")
		g.set("ModeType", g.pick([]string{"Add", "Edit"}))
		g.set("ProcessingId", g.procID())
		g.emit()
	case "Audit_RegistrationAudit":
		if !pr.registrationAudit {
			return
		}
		g.set("PatientGuid", pg)
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("ModifiedDate", g.date(g.entered()))
		g.set("ModifiedTime", g.clock())
		g.set("UserInRoleGuid", g.guid(kUser, o, p%g.users(), 0))
		g.set("ModeType", g.pick([]string{"Add", "Edit"}))
		g.set("ProcessingId", g.procID())
		g.emit()
	case "CareRecord_Consultation":
		for c := 0; c < pr.consultations; c++ {
			g.set("ConsultationGuid", g.guid(kConsultation, o, p, c))
			g.common(o, p, g.entered())
			g.set("AppointmentSlotGuid", g.guid(kSlot, o, p, 0))
			g.set("ConsultationSourceTerm", g.pick([]string{"Surgery consultation", "Telephone encounter", "Home visit"}))
			g.set("ConsultationSourceCodeId", "1415371000006111")
			g.set("Complete", "true")
			g.emit()
		}
	case "CareRecord_Observation":
		for k := 0; k < pr.observations; k++ {
			code := clinicalCodes[g.r.IntN(len(clinicalCodes))]
			g.set("ObservationGuid", g.guid(kObservation, o, p, k))
			g.common(o, p, g.entered())
			g.set("CodeId", code.id)
			g.set("ConsultationGuid", g.guid(kConsultation, o, p, k%pr.consultations))
			if pr.problem && k > 0 {
				g.set("ProblemGuid", g.guid(kObservation, o, p, 1))
			}
			if code.unit != "" {
				g.set("Value", strconv.FormatFloat(code.lo+g.r.Float64()*(code.hi-code.lo), 'f', 1, 64))
				g.set("NumericUnit", code.unit)
				g.set("ObservationType", "Value")
				g.set("NumericRangeLow", strconv.FormatFloat(code.lo, 'f', -1, 64))
				g.set("NumericRangeHigh", strconv.FormatFloat(code.hi, 'f', -1, 64))
			} else {
				g.set("ObservationType", "Observation")
			}
			g.emit()
		}
	case "CareRecord_ObservationReferral":
		if !pr.referral {
			return
		}
		g.set("ObservationGuid", g.guid(kObservation, o, p, 2))
		g.set("PatientGuid", pg)
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("ReferralTargetOrganisationGuid", g.guid(kCCG, 1, g.r.IntN(5), 0))
		g.set("ReferralUrgency", g.pick([]string{"Routine", "Urgent", "2 Week Wait"}))
		g.set("ReferralServiceType", "Assessment")
		g.set("ReferralMode", "Written")
		g.set("ReferralReceivedDate", g.date(g.entered()))
		g.set("ReferralReceivedTime", g.clock())
		g.set("ReferralSourceOrganisationGuid", g.orgGUID(o))
		g.set("ReferralUBRN", fmt.Sprintf("%012d", g.r.Int64N(1e12)))
		g.set("ProcessingId", g.procID())
		g.emit()
	case "CareRecord_Problem":
		if !pr.problem {
			return
		}
		g.set("ObservationGuid", g.guid(kObservation, o, p, 1))
		g.set("PatientGuid", pg)
		g.set("OrganisationGuid", g.orgGUID(o))
		g.set("Deleted", "false")
		g.set("LastReviewDate", g.date(g.entered()))
		g.set("LastReviewDatePrecision", "YMD")
		g.set("LastReviewUserInRoleGuid", g.guid(kUser, o, p%g.users(), 0))
		g.set("ProblemStatusDescription", g.pick([]string{"Active", "Past"}))
		g.set("SignificanceDescription", g.pick([]string{"Significant Problem", "Minor Problem"}))
		g.set("ProcessingId", g.procID())
		g.emit()
	case "CareRecord_Diary":
		if !pr.diary {
			return
		}
		code := clinicalCodes[g.r.IntN(len(clinicalCodes))]
		g.set("DiaryGuid", g.guid(kDiary, o, p, 0))
		g.common(o, p, g.day.AddDate(0, 1+g.r.IntN(11), 0))
		g.set("EnteredDate", g.date(g.entered()))
		g.set("CodeId", code.id)
		g.set("OriginalTerm", code.term+" recall")
		g.set("DurationTerm", "6 months")
		g.set("IsActive", "true")
		g.set("IsComplete", "false")
		g.set("ConsultationGuid", g.guid(kConsultation, o, p, 0))
		g.emit()
	case "Prescribing_DrugRecord":
		for d := 0; d < pr.drugs; d++ {
			drug := drugCodes[g.r.IntN(len(drugCodes))]
			g.set("DrugRecordGuid", g.guid(kDrug, o, p, d))
			g.common(o, p, g.entered())
			g.set("CodeId", drug.id)
			g.set("Dosage", drug.dosage)
			g.set("Quantity", drug.qty)
			g.set("QuantityUnit", drug.unit)
			g.set("PrescriptionType", "Repeat")
			g.set("IsActive", "true")
			g.set("NumberOfIssues", strconv.Itoa(pr.issuesPerDrug))
			g.set("NumberOfIssuesAuthorised", "6")
			g.emit()
		}
	case "Prescribing_IssueRecord":
		for d := 0; d < pr.drugs; d++ {
			for i := 0; i < pr.issuesPerDrug; i++ {
				drug := drugCodes[g.r.IntN(len(drugCodes))]
				g.set("IssueRecordGuid", g.guid(kIssue, o, p, d*8+i))
				g.common(o, p, g.entered())
				g.set("DrugRecordGuid", g.guid(kDrug, o, p, d))
				g.set("CodeId", drug.id)
				g.set("Dosage", drug.dosage)
				g.set("Quantity", drug.qty)
				g.set("QuantityUnit", drug.unit)
				g.set("CourseDurationInDays", "28")
				g.set("EstimatedNhsCost", fmt.Sprintf("%.2f", 0.5+g.r.Float64()*10))
				g.emit()
			}
		}
	}
}

// deleteRow writes a GUID-only delete as EMIS does: the record's key,
// PatientGuid and OrganisationGuid, Deleted=true, everything else empty
// (ProcessingId kept, so the row sorts into its processing run).
func (g *gen) deleteRow(o, p int) {
	for _, k := range g.tab.Key {
		g.set(k, g.guid(kDeleted, o, p, len(k)))
	}
	if g.tab.FileType != emisfile.AdminPatient {
		g.set("PatientGuid", g.guid(kPatient, o, p, 0))
	}
	g.set("OrganisationGuid", g.orgGUID(o))
	g.set("Deleted", "true")
	g.set("ProcessingId", g.procID())
	g.emit()
}

func (g *gen) postcode() string {
	const letters = "ABDEFGHJLNPQRSTUWXYZ"
	return fmt.Sprintf("%s%d %d%c%c", g.pick([]string{"LS", "BD", "HX", "WF", "HG"}), 1+g.r.IntN(29),
		g.r.IntN(10), letters[g.r.IntN(len(letters))], letters[g.r.IntN(len(letters))])
}

type clinicalCode struct {
	id, term, read, concept, desc, category, unit string
	lo, hi                                        float64
}

// A small SNOMED-flavoured vocabulary; EMIS CodeIds are EMIS's own numbers.
var clinicalCodes = []clinicalCode{
	{id: "2469", term: "O/E - Systolic BP reading", read: "2469.00", concept: "163030003", desc: "254067017", category: "Value", unit: "mmHg", lo: 95, hi: 170},
	{id: "246A", term: "O/E - Diastolic BP reading", read: "246A.00", concept: "163031004", desc: "254068010", category: "Value", unit: "mmHg", lo: 55, hi: 105},
	{id: "22K", term: "Body Mass Index", read: "22K..00", concept: "60621009", desc: "100716012", category: "Value", unit: "kg/m2", lo: 17, hi: 42},
	{id: "44P", term: "Serum cholesterol", read: "44P..00", concept: "1005671000000105", desc: "1993761000000116", category: "Value", unit: "mmol/L", lo: 3, hi: 8},
	{id: "42W5", term: "HbA1c level", read: "42W5.00", concept: "999791000000106", desc: "1485221000000117", category: "Value", unit: "mmol/mol", lo: 30, hi: 90},
	{id: "1894821000006117", term: "Essential hypertension", read: "G20..00", concept: "59621000", desc: "99042012", category: "Problem"},
	{id: "1780381000006112", term: "Type 2 diabetes mellitus", read: "C10F.00", concept: "44054006", desc: "73211009", category: "Problem"},
	{id: "1994021000006114", term: "Asthma", read: "H33..00", concept: "195967001", desc: "301485011", category: "Problem"},
	{id: "137R", term: "Current smoker", read: "137R.00", concept: "77176002", desc: "128130017", category: "Observation"},
	{id: "8CA4", term: "Patient given advice", read: "8CA4.00", concept: "183060002", desc: "283232012", category: "Observation"},
	{id: "9N1y", term: "Seen in GP surgery", read: "9N11.00", concept: "185212001", desc: "283880015", category: "Observation"},
	{id: "65E", term: "Influenza vaccination", read: "65E..00", concept: "86198006", desc: "142934010", category: "Immunisation"},
}

type drugCode struct{ id, term, dmd, dosage, qty, unit string }

var drugCodes = []drugCode{
	{"6451", "Amlodipine 5mg tablets", "319283006", "One To Be Taken Each Day", "28", "tablet"},
	{"5734", "Metformin 500mg tablets", "325278007", "One To Be Taken Twice A Day", "56", "tablet"},
	{"8874", "Salbutamol 100micrograms/dose inhaler CFC free", "320176004", "Two Puffs When Required", "1", "inhaler"},
	{"7221", "Atorvastatin 20mg tablets", "320000009", "One To Be Taken At Night", "28", "tablet"},
	{"3210", "Ramipril 5mg capsules", "318903005", "One To Be Taken Each Day", "28", "capsule"},
	{"9912", "Omeprazole 20mg gastro-resistant capsules", "317335000", "One To Be Taken Each Day", "28", "capsule"},
}

var (
	givenNames  = []string{"George", "Oliver", "Harry", "Jack", "Mohammed", "Noah", "Arthur", "Leo", "Samuel", "David", "Ravi", "Tomasz"}
	femaleNames = []string{"Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Freya", "Aisha", "Sophie", "Margaret", "Priya", "Zofia"}
	surnames    = []string{"Smith", "Jones", "Taylor", "Brown", "Hartley", "Oakes", "Khan", "Patel", "Wilson", "Brennan", "Walker", "Nowak", "O'Neill"}
	streets     = []string{"High Street", "Mill Lane", "Station Road", "Church Street", "Queens Park Road", "Cardigan Road", "Victoria Terrace"}
	towns       = []string{"Leeds", "Bradford", "Halifax", "Wakefield", "Harrogate", "Otley"}
)
