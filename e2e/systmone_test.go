package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/systmone/srfile"
	"github.com/im1dev/im1/providers/systmone/tppsim"
	"github.com/im1dev/im1/state"
)

const srConfig = `
systmone_reporting_unit "hub" {
  ods               = "Y01234"
  name              = "Harbour Data Hub"
  technical_contact = "Sam Patel <sam.patel@nhs.example>"
}
systmone_organisation_group "north" {
  reporting_unit = systmone_reporting_unit.hub
  organisations  = ["B82005", "B82018"]
}
dataset "sr" {
  ig_approval = "IG-2026-021"
  table "SRPatient" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber", "DateBirth", "Gender"]
  }
  table "SRCode" {
    fields = ["RowIdentifier", "IDOrganisationVisibleTo", "IDPatient", "DateEvent", "CTV3Code", "SNOMEDCode"]
  }
}
schedule "daily" {
  frequency = "daily"
  start     = "2026-11-20"
  lateness  = "36h"
}
systmone_strategic_report "north" {
  reporting_unit     = systmone_reporting_unit.hub
  organisation_group = systmone_organisation_group.north
  dataset            = dataset.sr
  schedule           = schedule.daily
  delimiter          = "%s"
  text_qualifier     = "%s"
  root_directory     = "gateway"
}
extract "sr" {
  source   = systmone_strategic_report.north
  dataset  = dataset.sr
  schedule = schedule.daily
}
`

type srWorld struct {
	*world
	sim *tppsim.Sim
}

func newSRWorld(t *testing.T, delim, qual string) *srWorld {
	w := &world{t: t, dir: t.TempDir(), now: at("2026-11-20", 9, 0)}
	w.rawConfig = strings.Replace(strings.Replace(srConfig, `delimiter          = "%s"`, `delimiter          = "`+delim+`"`, 1), `text_qualifier     = "%s"`, `text_qualifier     = "`+qual+`"`, 1)
	sim := &tppsim.Sim{Root: filepath.Join(w.dir, "gateway"), HandoffDir: filepath.Join(w.dir, "handoff"), Report: "north", Seed: 7, Patients: 5}
	return &srWorld{world: w, sim: sim}
}

func (s *srWorld) deliveries() []state.Delivery {
	ds, err := s.store().Deliveries(context.Background(), "extract.sr")
	if err != nil {
		s.t.Fatal(err)
	}
	return ds
}

func (s *srWorld) step(day string, f tppsim.Faults) string {
	s.t.Helper()
	folder, err := s.sim.Step(at(day, 0, 0), f)
	if err != nil {
		s.t.Fatal(err)
	}
	return folder
}

// The report sheet goes to the reporting unit; the simulator follows it;
// extracts are ingested, decoded from Windows-1252, validated against the
// declared fields, landed, and the next plan is empty.
func TestSystmOneEndToEnd(t *testing.T) {
	for _, dq := range [][2]string{{",", `\"`}, {"|", ""}} {
		t.Run("delimiter "+dq[0], func(t *testing.T) {
			s := newSRWorld(t, dq[0], dq[1])
			s.mustApply()
			if _, err := os.Stat(filepath.Join(s.dir, "handoff", "systmone", "north")); err != nil {
				t.Fatalf("no report sheet handed off: %v", err)
			}
			s.step("2026-11-20", tppsim.Faults{})
			if ic := instances(s.plan(), "extract.sr")["2026-11-20"]; ic.Action != providers.Fetch {
				t.Fatalf("instance %+v", ic)
			}
			s.mustApply()
			s.now = at("2026-11-21", 9, 0)
			s.step("2026-11-21", tppsim.Faults{})
			s.mustApply()
			ds := s.deliveries()
			if len(ds) != 2 || ds[0].Kind != "full" || ds[1].Kind != "delta" || ds[1].Status != state.DeliveryLanded {
				t.Fatalf("deliveries %+v", ds)
			}
			pat, err := os.ReadFile(filepath.Join(s.dir, "landing", ds[0].Path, "SRPatient.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(pat, []byte("NHSNumber")) {
				t.Errorf("SRPatient header: %.200s", pat)
			}
			obs, _ := s.store().Observations(context.Background(), "systmone_strategic_report.north")
			rows := map[string]int64{}
			for _, o := range obs {
				if o.DeliveryID == ds[0].ID {
					rows[o.ODS] = o.Rows
				}
			}
			if rows["B82005"] == 0 || rows["B82018"] == 0 {
				t.Errorf("per-organisation rows %v", rows)
			}
			p := s.plan()
			if !p.Empty() {
				t.Errorf("plan not empty")
			}
			if d := driftText(p); d != "" {
				t.Errorf("drift: %s", d)
			}
			r, _ := s.store().Resource(context.Background(), "systmone_strategic_report.north")
			if r.Status != state.StatusReady {
				t.Errorf("report status %s: the matching delivery should prove the sheet", r.Status)
			}
		})
	}
}

// Every tppsim fault knob, asserting state and disk.
func TestSystmOneFaults(t *testing.T) {
	cases := map[string]struct {
		f      tppsim.Faults
		action providers.InstanceAction
		reason string
		landed bool
		warn   string
	}{
		"manifest lists a missing file": {f: tppsim.Faults{ManifestListsMissing: "SREvent"}, action: providers.Quarantine, reason: "missing from SRExtract"},
		"non-CSV entry in the zip":      {f: tppsim.Faults{NonCSVEntry: true}, action: providers.Quarantine, reason: "readme.txt"},
		"evil entry name":               {f: tppsim.Faults{EvilEntryName: true}, action: providers.Quarantine, reason: "SRExtract"},
		"split zip":                     {f: tppsim.Faults{SplitZip: true}, action: providers.Landed, landed: true},
		"RemovedData toggles":           {f: tppsim.Faults{RemovedDataToggle: true}, action: providers.Landed, landed: true},
		"overlapping re-bulk":           {f: tppsim.Faults{Overlap: true}, action: providers.Landed, landed: true, warn: "TPP re-bulk of SRCode"},
		"From/To gap":                   {f: tppsim.Faults{GapMinutes: 90}, action: providers.Blocked, reason: "does not match end date of last batch"},
		"folder left in progress":       {f: tppsim.Faults{LeaveInProgress: true}, action: providers.Wait},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSRWorld(t, ",", `\"`)
			s.mustApply()
			s.step("2026-11-20", tppsim.Faults{})
			s.mustApply()
			s.now = at("2026-11-21", 9, 0)
			s.step("2026-11-21", tc.f)
			if tc.warn != "" {
				p := s.plan()
				var found bool
				for _, d := range p.Diagnostics {
					found = found || strings.Contains(d.Summary, tc.warn)
				}
				if !found {
					t.Errorf("plan does not warn %q", tc.warn)
				}
			}
			s.apply()
			ic := instances(s.plan(), "extract.sr")["2026-11-21"]
			if ic.Action != tc.action || !strings.Contains(ic.Reason, tc.reason) {
				t.Fatalf("instance %+v, want %s with %q", ic, tc.action, tc.reason)
			}
			var landedToday bool
			for _, f := range s.landedFiles() {
				landedToday = landedToday || strings.Contains(f, "2026-11-21")
			}
			if landedToday != tc.landed {
				t.Errorf("landed for the 21st: %v, want %v (%v)", landedToday, tc.landed, s.landedFiles())
			}
			if d := s.apply(); d.HasErrors() {
				t.Errorf("rerun did not converge: %v", d)
			}
		})
	}
}

// A manifest whose IsDelta contradicts the content is reported.
func TestSystmOneManifestDiscrepancy(t *testing.T) {
	s := newSRWorld(t, ",", `\"`)
	s.mustApply()
	s.step("2026-11-20", tppsim.Faults{})
	s.mustApply()
	s.now = at("2026-11-21", 9, 0)
	s.step("2026-11-21", tppsim.Faults{WrongIsDelta: true})
	d := s.apply()
	var all strings.Builder
	for _, x := range d {
		all.WriteString(x.Summary + "\n")
	}
	if d.HasErrors() || !strings.Contains(all.String(), "possible discrepancy between SRManifest (bulk = true) and file content (bulk = false) for SRPatient") {
		t.Fatalf("diagnostics: %s", all.String())
	}
}

// A zip made by a real tool (Info-ZIP's zip) is ingested the same as the
// Go-made one: the landed tables are byte-identical.
func TestSystmOneInfoZip(t *testing.T) {
	if _, err := exec.LookPath("zip"); err != nil {
		t.Skip("zip not installed")
	}
	goMade := newSRWorld(t, ",", `\"`)
	goMade.mustApply()
	goMade.step("2026-11-20", tppsim.Faults{})
	goMade.mustApply()

	zipMade := newSRWorld(t, ",", `\"`)
	zipMade.mustApply()
	folder := zipMade.step("2026-11-20", tppsim.Faults{})
	// Unpack the simulator's zip and pack it again with Info-ZIP.
	dir := filepath.Join(zipMade.dir, "gateway", filepath.Base(folder))
	tmp := t.TempDir()
	if out, err := exec.Command("unzip", "-q", filepath.Join(dir, "SRExtract.zip"), "-d", tmp).CombinedOutput(); err != nil {
		t.Skipf("unzip: %v %s", err, out)
	}
	os.Remove(filepath.Join(dir, "SRExtract.zip"))
	cmd := exec.Command("sh", "-c", "zip -q -X "+filepath.Join(dir, "SRExtract.zip")+" *.csv")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, out)
	}
	zipMade.mustApply()
	a, b := goMade.deliveries(), zipMade.deliveries()
	if len(a) != 1 || len(b) != 1 || b[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v / %+v", a, b)
	}
	for _, tbl := range []string{"SRPatient.csv", "SRCode.csv", "SROrganisation.csv"} {
		x, _ := os.ReadFile(filepath.Join(goMade.dir, "landing", a[0].Path, tbl))
		y, _ := os.ReadFile(filepath.Join(zipMade.dir, "landing", b[0].Path, tbl))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between Go-made and Info-ZIP-made zips", tbl)
		}
	}
}

// What the reporting unit configured differently from the declaration is
// drift with its evidence: a table missing, an undeclared table, an
// organisation of the group absent, another delimiter.
func TestSystmOneDrift(t *testing.T) {
	s := newSRWorld(t, ",", `\"`)
	s.mustApply()
	s.step("2026-11-20", tppsim.Faults{})
	s.mustApply()
	cfg, err := tppsim.ReadHandoffConfig(filepath.Join(s.dir, "handoff"), "north")
	if err != nil {
		t.Fatal(err)
	}
	// The unit set the report up without SRCode, with SREvent, for B82005 only.
	c := *cfg
	c.Tables = append([]srfile.ReportTable{}, c.Tables[0], srfile.ReportTable{Name: "SREvent"})
	c.Organisations = []string{"B82005"}
	s.now = at("2026-11-21", 9, 0)
	from, _ := time.Parse(srfile.DateLayout, lastTo(t, s))
	if _, err := tppsim.WriteExtract(tppsim.ExtractSpec{Root: s.sim.Root, Config: c, Time: at("2026-11-21", 2, 30), From: from, To: at("2026-11-21", 2, 30), Patients: 3, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	s.mustApply()
	drift := driftText(s.plan())
	for _, want := range []string{
		"declared table SRCode is absent from the latest delivery",
		"undeclared table SREvent is in the delivery",
		"organisation B82018 of the group is absent from SROrganisation",
	} {
		if !strings.Contains(drift, want) {
			t.Errorf("drift lacks %q:\n%s", want, drift)
		}
	}
	// Another delimiter: the header does not match, and the reason says why.
	c = *cfg
	c.Delimiter = "|"
	s.now = at("2026-11-22", 9, 0)
	from, _ = time.Parse(srfile.DateLayout, lastTo(t, s))
	if _, err := tppsim.WriteExtract(tppsim.ExtractSpec{Root: s.sim.Root, Config: c, Time: at("2026-11-22", 2, 30), From: from, To: at("2026-11-22", 2, 30), Patients: 3, Seed: 10}); err != nil {
		t.Fatal(err)
	}
	s.apply()
	ic := instances(s.plan(), "extract.sr")["2026-11-22"]
	if ic.Action != providers.Quarantine || !strings.Contains(ic.Reason, `looks "|"-delimited; the report declares ","`) {
		t.Errorf("instance %+v", ic)
	}
}

func lastTo(t *testing.T, s *srWorld) string {
	ds := s.deliveries()
	return ds[len(ds)-1].SeqTo
}

// A day the client did not run is requested after the lateness tolerance;
// the simulated service desk re-runs it; it lands, overlapping (allowed).
func TestSystmOneMissedDayRecovered(t *testing.T) {
	s := newSRWorld(t, ",", `\"`)
	s.mustApply()
	s.step("2026-11-20", tppsim.Faults{})
	s.mustApply()
	s.now = at("2026-11-22", 9, 0)
	s.step("2026-11-22", tppsim.Faults{})
	s.mustApply()
	s.now = at("2026-11-23", 9, 0)
	if ic := instances(s.plan(), "extract.sr")["2026-11-21"]; ic.Action != providers.Request {
		t.Fatalf("21st: %+v", ic)
	}
	s.mustApply()
	if ic := instances(s.plan(), "extract.sr")["2026-11-21"]; ic.Action != providers.Awaiting || !ic.Settled {
		t.Fatalf("21st after the request: %+v", ic)
	}
	days, err := s.sim.AnswerRequests()
	if err != nil || len(days) != 1 {
		t.Fatalf("answered %v %v", days, err)
	}
	s.mustApply()
	for _, k := range []string{"2026-11-20", "2026-11-21", "2026-11-22"} {
		if ic := instances(s.plan(), "extract.sr")[k]; ic.Action != providers.Landed {
			t.Errorf("%s: %+v", k, ic)
		}
	}
}

// A delta after a gap is blocked; a new full extract supersedes it and
// the chain goes on from the full one.
func TestSystmOneGapThenFull(t *testing.T) {
	s := newSRWorld(t, ",", `\"`)
	s.mustApply()
	s.step("2026-11-20", tppsim.Faults{})
	s.mustApply()
	s.now = at("2026-11-21", 9, 0)
	s.step("2026-11-21", tppsim.Faults{GapMinutes: 120})
	s.mustApply()
	if ic := instances(s.plan(), "extract.sr")["2026-11-21"]; ic.Action != providers.Blocked {
		t.Fatalf("21st: %+v", ic)
	}
	cfg, err := tppsim.ReadHandoffConfig(filepath.Join(s.dir, "handoff"), "north")
	if err != nil {
		t.Fatal(err)
	}
	s.now = at("2026-11-22", 9, 0)
	if _, err := tppsim.WriteExtract(tppsim.ExtractSpec{Root: s.sim.Root, Config: *cfg, Time: at("2026-11-22", 2, 30), To: at("2026-11-22", 2, 30), Full: true, Patients: 3, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	s.mustApply()
	inst := instances(s.plan(), "extract.sr")
	if ic := inst["2026-11-22"]; ic.Action != providers.Landed {
		t.Fatalf("22nd: %+v", ic)
	}
	if ic := inst["2026-11-21"]; ic.Action != providers.Withdrawn || !ic.Settled || !strings.Contains(ic.Reason, "superseded by full extract") {
		t.Fatalf("21st after the full extract: %+v", ic)
	}
	if !s.plan().Empty() {
		t.Errorf("not converged")
	}
}

// A practice added to the organisation group arrives with its bulk: the
// ingest recognises data for a practice never seen before.
func TestSystmOneNewPracticeBulk(t *testing.T) {
	s := newSRWorld(t, ",", `\"`)
	s.rawConfig = strings.Replace(s.rawConfig, `organisations  = ["B82005", "B82018"]`, `organisations  = ["B82005"]`, 1)
	s.mustApply()
	s.step("2026-11-20", tppsim.Faults{})
	s.mustApply()
	s.rawConfig = strings.Replace(s.rawConfig, `organisations  = ["B82005"]`, `organisations  = ["B82005", "B82018"]`, 1)
	s.now = at("2026-11-21", 9, 0)
	s.mustApply() // the changed report: a new sheet for the reporting unit
	s.step("2026-11-21", tppsim.Faults{})
	d := s.apply()
	var all strings.Builder
	for _, x := range d {
		all.WriteString(x.Summary + "\n")
	}
	if d.HasErrors() || !strings.Contains(all.String(), "brings data for new practice(s) B82018") {
		t.Fatalf("diagnostics: %s", all.String())
	}
}
