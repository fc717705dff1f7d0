package tppsim

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/providers/systmone/srfile"
)

// TPP's text formats (TX TppCsvToFhirTransformer): dates, datetimes, and
// the minute-precision datetimes of SRPatient.
const (
	dateLayout        = "02 Jan 2006"
	dateTimeLayout    = "02 Jan 2006 15:04:05"
	patientTimeLayout = "02 Jan 2006 15:04"
)

type gen struct {
	spec         ExtractSpec
	delim, quote byte
	pcg          rand.PCG
	r            *rand.Rand
}

// Entity kinds, mixed into every derived id and random stream.
const (
	kPatient uint64 = iota + 1
	kEvent
	kCode
	kChange
	kRows
	kOrg
)

// mix is the splitmix64 finaliser: neighbouring inputs get unrelated
// outputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (g *gen) key(kind uint64, a ...int64) uint64 {
	h := mix(uint64(g.spec.Seed) ^ mix(kind))
	for _, v := range a {
		h = mix(h ^ uint64(v))
	}
	return h
}

// seed restarts the random stream for one entity.
func (g *gen) seed(kind uint64, a ...int64) {
	if g.r == nil {
		g.r = rand.New(&g.pcg)
	}
	k := g.key(kind, a...)
	g.pcg.Seed(k, mix(k))
}

// id is a RowIdentifier-like positive integer for an entity: stable for
// the same seed, so a delta's rows update the full extract's ones.
func (g *gen) id(kind uint64, a ...int64) string {
	return strconv.FormatUint(1_000_000_000+g.key(kind, a...)%8_000_000_000, 10)
}

// stamp is the extract's own number, so new rows in a delta get new ids.
func (g *gen) stamp() int64 { return g.spec.To.Unix() / 60 }

func (g *gen) pick(list []string) string { return list[g.r.IntN(len(list))] }

// nhsNumber is a valid Modulus 11 number in the 999 range, never issued
// to real patients. It tries check digits rather than computing one, so
// landing's validator stays the single definition.
func (g *gen) nhsNumber() string {
	for {
		stem := fmt.Sprintf("999%06d", g.r.IntN(1_000_000))
		for d := byte('0'); d <= '9'; d++ {
			if n := stem + string(d); landing.NHSNumberValid(n) {
				return n
			}
		}
	}
}

// changed reports whether a patient has changes in this delta (about one
// in five); a full extract holds everyone.
func (g *gen) changed(o, p int) bool {
	return g.spec.Full || g.key(kChange, int64(o), int64(p), g.stamp())%5 == 0
}

// full reports whether tableName is written whole in this extract.
func (g *gen) full(tableName string) bool {
	return g.spec.Full || (g.spec.Faults.Overlap && tableName == "SRCode")
}

func (g *gen) orgs() []string { return g.spec.Config.Organisations }

// table writes one table's header and rows.
func (g *gen) table(w *bufio.Writer, t table) {
	c := newCSVOut(w, g.delim, g.quote, t.cols)
	c.header()
	name := t.tab.Name
	switch name {
	case "SROrganisation":
		g.organisations(c)
		return
	case "SRMapping", "SRMappingGroup":
		g.lookupRows(c, name)
		return
	}
	full := g.full(name)
	for o, ods := range g.orgs() {
		for p := 0; p < g.spec.Patients; p++ {
			if !full && !g.changed(o, p) {
				continue
			}
			g.seed(kRows, int64(o), int64(p), int64(len(name)), g.stamp())
			switch name {
			case "SRPatient":
				g.patient(c, o, p, ods)
			case "SRPatientRegistration":
				g.registration(c, o, p, ods)
			case "SREvent", "SRCode":
				g.events(c, o, p, ods, name, full)
			}
		}
	}
}

// patient writes one SRPatient row; the person is derived from (seed,
// org, patient) alone, so every extract describes the same person.
func (g *gen) patient(c *csvOut, o, p int, ods string) {
	g.seed(kPatient, int64(o), int64(p))
	female := g.r.IntN(2) == 0
	c.set("RowIdentifier", g.id(kPatient, int64(o), int64(p)))
	c.set("IDOrganisationVisibleTo", ods)
	if female {
		c.set("Title", g.pick([]string{"Mrs", "Ms", "Miss"}))
		c.set("FirstName", g.pick(femaleNames))
		c.set("Gender", "F")
	} else {
		c.set("Title", "Mr")
		c.set("FirstName", g.pick(maleNames))
		c.set("Gender", "M")
	}
	if g.r.IntN(4) == 0 {
		c.set("MiddleNames", g.pick(append(slices.Clone(femaleNames), maleNames...)))
	}
	c.set("Surname", g.pick(surnames))
	if female && g.r.IntN(3) == 0 {
		c.set("PreviousSurname", g.pick(surnames))
	}
	c.set("NHSNumber", g.nhsNumber())
	day := g.spec.Time.Truncate(24 * time.Hour)
	dob := day.AddDate(-g.r.IntN(95), 0, -g.r.IntN(365))
	c.set("DateBirth", dob.Format(patientTimeLayout))
	if g.r.IntN(60) == 0 {
		c.set("DateDeath", day.AddDate(0, 0, -g.r.IntN(300)).Format(patientTimeLayout))
	}
	c.set("BirthPlace", g.pick(towns))
	c.set("SpeaksEnglish", g.pick([]string{"1", "1", "1", "0"}))
	if g.r.IntN(3) == 0 {
		c.set("EmailAddress", fmt.Sprintf("patient%d@example.invalid", p))
	}
	c.set("TestPatient", "0")
	c.set("SpineMatched", "1")
	c.set(srfile.RemovedData, "0")
	c.emit()
}

func (g *gen) registration(c *csvOut, o, p int, ods string) {
	g.seed(kPatient, int64(o), int64(p), 1)
	reg := g.spec.Time.AddDate(-g.r.IntN(30), 0, -g.r.IntN(365))
	c.set("RowIdentifier", g.id(kPatient, int64(o), int64(p), 1))
	c.set("IDOrganisationVisibleTo", ods)
	c.set("DateEventRecorded", reg.Add(time.Duration(g.r.IntN(36000))*time.Second).Format(dateTimeLayout))
	c.set("IDProfileEnteredBy", strconv.Itoa(5000+100*o+g.r.IntN(8)))
	c.set("DateRegistration", reg.Format(dateLayout))
	c.set("RegistrationStatus", g.pick([]string{"GMS", "GMS", "GMS", "GMS,Contraception"}))
	c.set("PreferredPharmacy", fmt.Sprintf("F%c%03d", 'A'+rune(g.r.IntN(26)), g.r.IntN(1000)))
	c.set("IDPatient", g.id(kPatient, int64(o), int64(p)))
	c.set("IDOrganisation", ods)
	c.set("IDOrganisationRegisteredAt", ods)
	c.set(srfile.RemovedData, "0")
	c.emit()
}

// events writes a patient's SREvent or SRCode rows. A full extract holds
// the patient's history; a delta holds one new event, and, when the
// version carries RemovedData, sometimes removes a coded entry sent before.
func (g *gen) events(c *csvOut, o, p int, ods, name string, full bool) {
	type ev struct {
		key  int64 // the event's index in a full extract, the extract stamp in a delta
		when time.Time
		n    int // codes in the event
	}
	var evs []ev
	at := g.spec.To
	if full {
		g.seed(kEvent, int64(o), int64(p))
		for e := range 1 + g.r.IntN(3) {
			when := at.AddDate(0, 0, -1-g.r.IntN(3650))
			evs = append(evs, ev{int64(e), when, 1 + g.r.IntN(3)})
		}
	} else {
		g.seed(kEvent, int64(o), int64(p), g.stamp())
		when := at.Add(-time.Duration(1+g.r.IntN(20*3600)) * time.Second)
		evs = append(evs, ev{g.stamp(), when, 1 + g.r.IntN(3)})
	}
	patientID := g.id(kPatient, int64(o), int64(p))
	for _, e := range evs {
		eventID := g.id(kEvent, int64(o), int64(p), e.key)
		g.seed(kEvent, int64(o), int64(p), e.key, 1)
		staff := strconv.Itoa(5000 + 100*o + g.r.IntN(8))
		common := func() {
			c.set("IDOrganisationVisibleTo", ods)
			c.set("DateEventRecorded", e.when.Format(dateTimeLayout))
			c.set("DateEvent", e.when.Format(dateTimeLayout))
			c.set("IDProfileEnteredBy", staff)
			c.set("IDDoneBy", staff)
			c.set("IDOrganisationDoneAt", ods)
			c.set("IDReferralIn", "-1")
			c.set("IDPatient", patientID)
			c.set("IDOrganisation", ods)
			c.set("IDOrganisationRegisteredAt", ods)
			c.set(srfile.RemovedData, "0")
		}
		if name == "SREvent" {
			c.set("RowIdentifier", eventID)
			common()
			c.set("IDStaffMemberProfileRole", strconv.Itoa(7000+g.r.IntN(5)))
			c.set("IDAuthorisedBy", "-1")
			c.set("IDProfileAuthorisedBy", "-1")
			c.set("ContactEventLocation", g.pick([]string{"GP surgery", "Patient's home", "Telephone"}))
			c.set("ContactMethod", g.pick(contactMethods))
			c.set("EventIncomplete", "0")
			c.set("ClinicalEvent", "1")
			c.set("IDTeam", "-1")
			c.set("IDBranch", strconv.Itoa(100+o))
			c.emit()
			continue
		}
		for k := range e.n {
			code := codes[g.r.IntN(len(codes))]
			c.set("RowIdentifier", g.id(kCode, int64(o), int64(p), e.key, int64(k)))
			common()
			c.set("CTV3Code", code.ctv3)
			c.set("CTV3Text", code.text)
			c.set("SNOMEDCode", code.snomed)
			c.set("SNOMEDText", code.text)
			if code.unit != "" {
				c.set("IsNumeric", "1")
				c.set("NumericValue", strconv.FormatFloat(code.lo+g.r.Float64()*(code.hi-code.lo), 'f', 1, 64))
				c.set("NumericUnit", code.unit)
			} else {
				c.set("IsNumeric", "0")
			}
			c.set("EpisodeType", g.pick([]string{"First", "New", "Ongoing", ""}))
			c.set("IDTemplate", "-1")
			c.set("IDQuestionnaire", "-1")
			c.set("IDEvent", eventID)
			c.set("IDAppointment", "-1")
			c.set("IDVisit", "-1")
			c.emit()
		}
	}
	if name == "SRCode" && !full && c.has(srfile.RemovedData) && g.r.IntN(3) == 0 {
		// The first coded entry of the full extract, struck out: only the
		// key and the split columns are filled.
		c.set("RowIdentifier", g.id(kCode, int64(o), int64(p), 0, 0))
		c.set("IDOrganisationVisibleTo", ods)
		c.set("IDPatient", patientID)
		c.set(srfile.RemovedData, "1")
		c.emit()
	}
}

func (g *gen) orgName(o int, ods string) string {
	if n, ok := g.spec.OrgNames[ods]; ok {
		return n
	}
	// Offset by the seed but stepped by index, so names differ within a group.
	return practiceNames[(g.key(kOrg)+uint64(o))%uint64(len(practiceNames))]
}

// organisations writes SROrganisation: the organisation group, then the
// reporting unit when it is not one of them.
func (g *gen) organisations(c *csvOut) {
	orgs := slices.Clone(g.orgs())
	if ru := g.spec.Config.ReportingUnit; ru != "" && !slices.Contains(orgs, ru) {
		orgs = append(orgs, ru)
	}
	for o, ods := range orgs {
		name := g.orgName(o, ods)
		g.seed(kOrg, int64(o), 1)
		c.set("RowIdentifier", strconv.Itoa(100+o))
		c.set("Name", name)
		c.set("ID", ods)
		c.set("HouseNumber", strconv.Itoa(1+g.r.IntN(120)))
		c.set("NameOfRoad", g.pick(streets))
		c.set("NameOfTown", g.pick(towns))
		c.set("NameOfCounty", "West Yorkshire")
		c.set("FullPostCode", fmt.Sprintf("LS%d %d%c%c", 1+g.r.IntN(29), g.r.IntN(10), 'A'+rune(g.r.IntN(26)), 'A'+rune(g.r.IntN(26))))
		c.set("Telephone", fmt.Sprintf("0113 496 %04d", g.r.IntN(10000)))
		c.set("MadeObsolete", "0")
		c.set("IDTrust", "-1")
		c.set("IDCcg", "15F")
		c.set(srfile.RemovedData, "0")
		c.emit()
	}
}

// lookup writes SRMapping.csv or SRMappingGroup.csv: whole lookups with
// every column, sent beside the zip in every extract.
func (g *gen) lookup(w *bufio.Writer, name string) error {
	tab, _ := srfile.Lookup(name)
	g.table(w, table{tab: tab, cols: tab.Latest().Columns})
	return nil
}

func (g *gen) lookupRows(c *csvOut, name string) {
	for _, grp := range mappingGroups {
		if name == "SRMappingGroup" {
			c.set("RowIdentifier", grp.id)
			c.set("Description", grp.desc)
			c.emit()
			continue
		}
		for _, m := range grp.rows {
			c.set("RowIdentifier", m[0])
			c.set("IdMappingGroup", grp.id)
			c.set("Mapping", m[1])
			c.emit()
		}
	}
}

// manifest writes SRManifest.csv: one row per table file in the zip (and
// the ManifestListsMissing table, present or not).
func (g *gen) manifest(w *bufio.Writer, tables []table) error {
	c := newCSVOut(w, g.delim, g.quote, []string{"FileName", "IsDelta", "IsReference", "DateExtractFrom", "DateExtractTo"})
	c.header()
	f := g.spec.Faults
	from := g.spec.From.Add(time.Duration(f.GapMinutes) * time.Minute)
	if f.Overlap {
		from = g.spec.From.Add(-overlap)
	}
	names := []string{}
	for _, t := range tables {
		names = append(names, t.tab.Name)
	}
	if m := f.ManifestListsMissing; m != "" && !slices.Contains(names, m) {
		names = append(names, m)
	}
	for _, n := range names {
		tab, known := srfile.Lookup(n)
		ref := known && tab.Reference
		delta := !ref && !g.full(n)
		if f.WrongIsDelta && n == "SRPatient" {
			delta = !delta
		}
		c.set("FileName", n)
		c.set("IsDelta", yn(delta))
		c.set("IsReference", yn(ref))
		if delta {
			fr := from
			if g.spec.Full || fr.IsZero() { // a flipped flag in a full extract still needs a start
				fr = g.spec.To.AddDate(0, 0, -1)
			}
			c.set("DateExtractFrom", fr.Format(srfile.DateLayout))
		}
		c.set("DateExtractTo", g.spec.To.Format(srfile.DateLayout))
		c.emit()
	}
	return nil
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}
