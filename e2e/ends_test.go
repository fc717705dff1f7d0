package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/state"
)

// When the dataset's IG approval ends, plan stops fetching and says so,
// lists what landed after the end, and only apply -purge-withdrawn
// removes it, with an audit record.
func TestApprovalEndsAndPurge(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.now = at("2026-11-21", 9, 0)
	w.supplier.Deliver(at("2026-11-21", 2, 15), emissim.Faults{})
	w.mustApply() // the 21st lands under the approval
	w.now = at("2026-11-23", 9, 0)
	w.supplier.Deliver(at("2026-11-22", 2, 15), emissim.Faults{})
	w.supplier.Deliver(at("2026-11-23", 2, 15), emissim.Faults{})
	// The approval is recorded as having ended on the 20th (a late correction).
	w.tables = `["Admin_Patient", "CareRecord_Observation"]
  approval_expires = "2026-11-20"`
	p := w.plan()
	inst := instances(p, "extract.core")
	if ic := inst["2026-11-22"]; ic.Action != providers.Withdrawn || !ic.Settled || !strings.Contains(ic.Reason, "not fetched: IG approval IG-2026-014 ended 2026-11-20") {
		t.Fatalf("22nd: %+v", ic)
	}
	if ic := inst["2026-11-21"]; ic.Action != providers.Withdrawn || !strings.Contains(ic.Reason, "apply -purge-withdrawn") {
		t.Fatalf("21st: %+v", ic)
	}
	if ic := inst["2026-11-20"]; ic.Action != providers.Landed {
		t.Fatalf("20th: %+v", ic)
	}
	w.mustApply()
	if n := len(w.deliveries()); n != 2 {
		t.Fatalf("fetched after the approval ended: %d deliveries", n)
	}
	landed21 := w.deliveries()[1].Path
	if _, err := os.Stat(filepath.Join(w.dir, "landing", landed21)); err != nil {
		t.Fatalf("removed without -purge-withdrawn: %v", err)
	}
	w.purge = true
	if ic := instances(w.plan(), "extract.core")["2026-11-21"]; ic.Action != providers.Purge {
		t.Fatalf("with purge: %+v", ic)
	}
	// The site may be gone by then: removing data must not need it.
	w.srv.Close()
	w.noRefresh = true
	w.mustApply()
	if _, err := os.Stat(filepath.Join(w.dir, "landing", landed21)); !os.IsNotExist(err) {
		t.Fatalf("not purged: %v", err)
	}
	ds := w.deliveries()
	if ds[1].Status != state.DeliveryWithdrawn || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v", ds)
	}
	audit, _ := w.store().Audit(context.Background())
	var purged bool
	for _, a := range audit {
		purged = purged || (a.Operation == "purge-withdrawn" && strings.Contains(a.Detail, "2026-11-21"))
	}
	if !purged {
		t.Errorf("no audit record of the purge: %+v", audit)
	}
	w.purge = false
	if !w.plan().Empty() {
		t.Errorf("not converged after the purge")
	}
}

// Landed deliveries past the schedule's retention are removed by apply.
func TestRetentionExpiry(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.retention = "3d"
	w.now = at("2026-11-22", 9, 0)
	w.supplier.Deliver(at("2026-11-22", 2, 15), emissim.Faults{})
	w.supplier.Miss(at("2026-11-21", 2, 15)) // a gap too: still requestable within retention
	w.mustApply()
	w.now = at("2026-11-25", 9, 0)
	inst := instances(w.plan(), "extract.core")
	if ic := inst["2026-11-20"]; ic.Action != providers.Expire {
		t.Fatalf("20th: %+v", ic)
	}
	old := w.deliveries()[0].Path
	w.mustApply()
	if _, err := os.Stat(filepath.Join(w.dir, "landing", old)); !os.IsNotExist(err) {
		t.Fatalf("expired batch still landed: %v", err)
	}
	if d := w.deliveries()[0]; d.Status != state.DeliveryExpired {
		t.Fatalf("delivery %+v", d)
	}
	if _, ok := instances(w.plan(), "extract.core")["2026-11-20"]; ok {
		t.Errorf("an expired period is still expected")
	}
}
