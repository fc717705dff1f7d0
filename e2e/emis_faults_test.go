package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/pgpkey/pgpkeytest"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// landedOnce sets a world up with keys handed off and day one landed.
func landedOnce(t *testing.T, tf emissim.TransportFaults) *world {
	t.Helper()
	w := deliveredOnce(t, tf)
	w.mustApply()
	return w
}

// deliveredOnce is a world whose key and site are applied and handed off
// and whose first batch EMIS has delivered, not yet fetched.
func deliveredOnce(t *testing.T, tf emissim.TransportFaults) *world {
	t.Helper()
	w := newWorld(t, tf)
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// A bad file is quarantined with its reason; nothing of its batch lands;
// the quarantine is settled, so the plan is empty; the rerun converges.
func TestEMISQuarantine(t *testing.T) {
	cases := map[string]struct {
		faults emissim.Faults
		reason string
	}{
		"tampered ciphertext": {faults: emissim.Faults{TamperFile: "CareRecord_Observation"}, reason: "integrity"},
		"wrong key":           {faults: emissim.Faults{WrongKey: true}, reason: "not encrypted to any of our keys"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := landedOnce(t, emissim.TransportFaults{})
			w.supplier.WrongKey = openpgp.EntityList{pgpkeytest.Entity(t, "rsa3072")}
			w.now = at("2026-11-21", 9, 0)
			if _, err := w.supplier.Deliver(at("2026-11-21", 2, 15), tc.faults); err != nil {
				t.Fatal(err)
			}
			d := w.apply()
			if !d.HasErrors() || !strings.Contains(d.Error(), "quarantined") {
				t.Fatalf("want a quarantine error, got %v", d)
			}
			ds := w.deliveries()
			var q *state.Delivery
			for i := range ds {
				if ds[i].Day == "2026-11-21" {
					q = &ds[i]
				}
			}
			if q == nil || q.Status != state.DeliveryQuarantined || !strings.Contains(strings.ToLower(q.Reason), tc.reason) {
				t.Fatalf("delivery %+v, want quarantined for %q", q, tc.reason)
			}
			for _, f := range w.landedFiles() {
				if strings.Contains(f, "2026-11-21") {
					t.Errorf("landed from a bad batch: %s", f)
				}
			}
			p := w.plan()
			if ic := instances(p, "extract.core")["2026-11-21"]; ic.Action != providers.Quarantine || !ic.Settled {
				t.Errorf("instance %+v", ic)
			}
			if !p.Empty() {
				t.Errorf("quarantine should be settled, plan not empty")
			}
			if d := w.apply(); d.HasErrors() {
				t.Errorf("rerun: %v", d)
			}
		})
	}
}

// Junk on the site is reported, never fetched.
func TestEMISJunkFilesReported(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.now = at("2026-11-21", 9, 0)
	if _, err := w.supplier.Deliver(at("2026-11-21", 2, 15), emissim.Faults{Junk: []string{".bash_history", "notes.txt", "291_Admin_Patient.csv.gpg"}}); err != nil {
		t.Fatal(err)
	}
	p := w.plan()
	if !strings.Contains(driftText(p), "3 unknown file(s) on the site") {
		t.Errorf("drift: %s", driftText(p))
	}
	w.mustApply()
	for _, f := range w.landedFiles() {
		if strings.Contains(f, "notes") || strings.Contains(f, "bash") {
			t.Errorf("junk landed: %s", f)
		}
	}
}

// A disabled practice and an ODS code change are drift a human must see.
func TestEMISSharingAgreementDrift(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.supplier.Orgs = []emissim.Org{orgs[0], orgs[1]}
	w.supplier.Orgs[1].Disabled = true
	w.now = at("2026-11-21", 9, 0)
	if _, err := w.supplier.Deliver(at("2026-11-21", 2, 15), emissim.Faults{ODSChange: map[string]string{orgs[0].GUID: "A81099"}}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	drift := driftText(w.plan())
	for _, want := range []string{
		"organisation A81002 is disabled in the sharing agreement",
		"ODS code for " + orgs[0].GUID + " changed from A81001 to A81099",
		"organisation A81001 is missing from the sharing agreement",
	} {
		if !strings.Contains(drift, want) {
			t.Errorf("drift lacks %q:\n%s", want, drift)
		}
	}
}

// A deleted or edited landed file is repaired from the archive, to the
// same bytes; a corrupt archive falls back to a fresh download.
func TestEMISRepair(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	ds := w.deliveries()
	victim := filepath.Join(w.dir, "landing", ds[0].Path, "CareRecord_Observation.csv")
	want, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(victim)
	p := w.plan()
	ic := instances(p, "extract.core")["2026-11-20"]
	if ic.Action != providers.Repair || !strings.Contains(ic.Reason, "CareRecord_Observation missing") {
		t.Fatalf("instance %+v", ic)
	}
	w.mustApply()
	got, err := os.ReadFile(victim)
	if err != nil || string(got) != string(want) {
		t.Fatalf("not repaired to the same bytes (%v)", err)
	}
	// Changed content, with the archive damaged too: re-downloaded.
	os.WriteFile(victim, append(got[:len(got)-3], 'X', 'Y', '\n'), 0o640)
	files, _ := w.store().Files(context.Background(), ds[0].ID)
	for _, f := range files {
		if f.Table == "CareRecord_Observation" {
			os.WriteFile(filepath.Join(w.dir, "archive", f.ArchivePath), []byte("garbage"), 0o640)
		}
	}
	if ic := instances(w.plan(), "extract.core")["2026-11-20"]; ic.Action != providers.Repair {
		t.Fatalf("changed file not found: %+v", ic)
	}
	w.mustApply()
	if got, _ := os.ReadFile(victim); string(got) != string(want) {
		t.Fatalf("not repaired after archive damage")
	}
	if !w.plan().Empty() {
		t.Errorf("not converged after repair")
	}
}

// A connection dropped mid-file is resumed; the batch lands intact.
func TestEMISDroppedConnection(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{DropAfterBytes: 700})
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	if ds := w.deliveries(); len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v", ds)
	}
	if w.srv.Connections() < 2 {
		t.Errorf("expected a reconnect, saw %d connections", w.srv.Connections())
	}
}

// A file still growing between two listings is not fetched yet.
func TestEMISStillUploading(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{GrowSteps: 4})
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	names, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	_ = names
	// Restart the server with the growing fault on one file of the batch.
	w.srv.Close()
	grow := ""
	for _, n := range names {
		if strings.Contains(n, "CareRecord_Observation") {
			grow = n
		}
	}
	w.restart(emissim.TransportFaults{GrowingFile: grow, GrowSteps: 4})
	d := w.apply()
	if !strings.Contains(d.Error(), "still being uploaded: "+grow) {
		t.Errorf("want a still-uploading warning, got %v", d)
	}
	if ds := w.deliveries(); len(ds) != 0 {
		t.Fatalf("landed an incomplete batch: %+v", ds)
	}
	// Later, the upload has finished: two listings agree, and it lands.
	for i := 0; i < 3 && len(w.deliveries()) == 0; i++ {
		w.apply()
	}
	if ds := w.deliveries(); len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v", ds)
	}
}

// A missed day blocks the later deltas (loading them would corrupt the
// chain); after the lateness tolerance a re-extract request is handed to
// EMIS; the supplier answers it; everything lands in order.
func TestEMISGapBlocksThenRecovers(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	if err := w.supplier.Miss(at("2026-11-21", 2, 15)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.supplier.Deliver(at("2026-11-22", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.now = at("2026-11-22", 9, 0)
	inst := instances(w.plan(), "extract.core")
	if inst["2026-11-21"].Action != providers.Wait || inst["2026-11-22"].Action != providers.Blocked {
		t.Fatalf("before the deadline: %+v", inst)
	}
	w.now = at("2026-11-23", 9, 0)
	inst = instances(w.plan(), "extract.core")
	if inst["2026-11-21"].Action != providers.Request {
		t.Fatalf("after the deadline: %+v", inst)
	}
	w.mustApply()
	inst = instances(w.plan(), "extract.core")
	if ic := inst["2026-11-21"]; ic.Action != providers.Awaiting || !ic.Settled {
		t.Fatalf("request not settled: %+v", ic)
	}
	days, err := w.supplier.AnswerRequests(w.now)
	if err != nil || len(days) != 1 || days[0] != "2026-11-21" {
		t.Fatalf("answered %v %v", days, err)
	}
	w.mustApply()
	got := map[string]string{}
	for _, d := range w.deliveries() {
		got[d.Day] = d.Status + "/" + d.SeqFrom
	}
	for day, want := range map[string]string{"2026-11-20": "landed/1", "2026-11-21": "landed/2", "2026-11-22": "landed/3"} {
		if got[day] != want {
			t.Errorf("%s: %s, want %s", day, got[day], want)
		}
	}
	p := w.plan()
	for k, ic := range instances(p, "extract.core") {
		if k <= "2026-11-22" && ic.Action != providers.Landed {
			t.Errorf("%s: %+v", k, ic)
		}
	}
}

var _ = errors.New

// After a gap, EMIS may answer the re-extract request with a full extract
// (declared in its acknowledgement): the blocked delta is superseded, the
// missing day is covered, and the chain goes on from the full extract.
func TestEMISGapThenFullReextract(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.supplier.Miss(at("2026-11-21", 2, 15))
	w.supplier.Deliver(at("2026-11-22", 2, 15), emissim.Faults{})
	w.now = at("2026-11-23", 9, 0)
	w.mustApply() // the 21st is requested; the 22nd is blocked
	if ic := instances(w.plan(), "extract.core")["2026-11-22"]; ic.Action != providers.Blocked {
		t.Fatalf("22nd: %+v", ic)
	}
	if _, err := w.supplier.AnswerWithFull(at("2026-11-23", 2, 15)); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	inst := instances(w.plan(), "extract.core")
	if ic := inst["2026-11-23"]; ic.Action != providers.Landed {
		t.Fatalf("23rd (the full re-extract): %+v", ic)
	}
	if ic := inst["2026-11-22"]; ic.Action != providers.Withdrawn || !strings.Contains(ic.Reason, "superseded by full extract 2026-11-23T02.15.00") {
		t.Fatalf("22nd: %+v", ic)
	}
	if ic := inst["2026-11-21"]; ic.Action != providers.Withdrawn || !strings.Contains(ic.Reason, "covered by full extract") {
		t.Fatalf("21st: %+v", ic)
	}
	if !w.plan().Empty() {
		t.Errorf("not converged")
	}
	ds := w.deliveries()
	if last := ds[len(ds)-1]; last.Kind != "full" || last.Status != state.DeliveryLanded {
		t.Errorf("last delivery %+v", last)
	}
}

// A quarantined delta stops the run: the next one, delivered at the same
// time, is not landed across the hole, and plan says why.
func TestEMISQuarantineStopsLaterDeltas(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.supplier.Deliver(at("2026-11-21", 2, 15), emissim.Faults{TamperFile: "Admin_Patient"})
	w.supplier.Deliver(at("2026-11-22", 2, 15), emissim.Faults{})
	w.now = at("2026-11-22", 9, 0)
	w.apply()
	for _, d := range w.deliveries() {
		if d.Day == "2026-11-22" {
			t.Fatalf("the 22nd landed across the quarantined 21st: %+v", d)
		}
	}
	ic := instances(w.plan(), "extract.core")["2026-11-22"]
	if ic.Action != providers.Blocked || !strings.Contains(ic.Reason, "quarantined") {
		t.Fatalf("22nd: %+v", ic)
	}
}

// Applying a saved plan does what was reviewed: a batch delivered after
// the plan was made waits for the next plan.
func TestSavedPlanAppliesOnlyWhatWasReviewed(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.now = at("2026-11-21", 9, 0)
	ctx := context.Background()
	saved := w.plan().Document()
	w.supplier.Deliver(at("2026-11-21", 2, 15), emissim.Faults{})
	e := w.engine()
	defer e.Close()
	if err := e.OpenState(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := reconcile.CheckSaved(saved, e.Meta(), e.Config()); err != nil {
		t.Fatal(err)
	}
	p, diags := e.Plan(ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p.Restrict(saved)
	if _, d := e.Apply(ctx, p, "saved", nil); d.HasErrors() {
		t.Fatal(d)
	}
	e.Close()
	if n := len(w.deliveries()); n != 1 {
		t.Fatalf("the saved plan fetched a batch it never showed: %d deliveries", n)
	}
	if ic := instances(w.plan(), "extract.core")["2026-11-21"]; ic.Action != providers.Fetch {
		t.Errorf("the next plan should show the new batch: %+v", ic)
	}
}
