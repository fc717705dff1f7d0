package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/landing"
	"github.com/im1dev/im1/state"
)

func at(day string, hh, mm int) time.Time {
	d, _ := time.Parse(time.DateOnly, day)
	return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, time.UTC)
}

// The whole loop: keys and site handed off, a batch delivered, fetched,
// verified and landed, and the next plan is empty.
func TestEMISFetchLandConverge(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{})
	w.now = at("2026-11-20", 9, 0)
	w.mustApply() // key, site (public key handed to EMIS), extract
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	p := w.plan()
	inst := instances(p, "extract.core")
	if inst["2026-11-20"].Action != providers.Fetch {
		t.Fatalf("want fetch, got %+v", inst)
	}
	w.mustApply()
	ds := w.deliveries()
	if len(ds) != 1 || ds[0].Status != state.DeliveryLanded || ds[0].Kind != "full" || ds[0].SeqFrom != "1" {
		t.Fatalf("deliveries %+v", ds)
	}
	files := w.landedFiles()
	for _, want := range []string{"Admin_Patient.csv", "CareRecord_Observation.csv", "Agreements_SharingOrganisation.csv", "Admin_Organisation.csv", "manifest.json"} {
		found := false
		for _, f := range files {
			if filepath.Base(f) == want && strings.Contains(f, filepath.Join("core", "central", "2026-11-20")) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not landed: %v", want, files)
		}
	}
	// The manifest's hashes match the landed files.
	d, err := landing.OpenDir(filepath.Join(w.dir, "landing"), 0o640, 0o750)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := landing.ReadManifest(d, filepath.Join(ds[0].Path, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		sum, _, err := d.Hash(filepath.Join(ds[0].Path, f.Path))
		if err != nil || sum != f.SHA256 {
			t.Errorf("%s: hash %s vs manifest %s (%v)", f.Path, sum, f.SHA256, err)
		}
	}
	p = w.plan()
	if !p.Empty() {
		t.Errorf("plan after landing not empty: %+v", instances(p, "extract.core"))
	}
	if drift := driftText(p); drift != "" {
		t.Errorf("unexpected drift: %s", drift)
	}
	// The public-key handoff is proven done by the delivery.
	hs, _ := w.store().Handoffs(context.Background(), "emis_site.central")
	if len(hs) != 1 || hs[0].Status != state.HandoffDone {
		t.Errorf("handoffs %+v", hs)
	}
	// Landed patient data is not world-readable.
	fi, err := os.Stat(filepath.Join(w.dir, "landing", ds[0].Path, "Admin_Patient.csv"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("landed mode %v %v", fi.Mode(), err)
	}
}
