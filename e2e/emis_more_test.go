package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/registry"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// A key rotation never drops a delivery: a batch encrypted to the old key
// but fetched after the rotation still lands, the new key is handed to
// EMIS, and the next batch (to the new key) proves the handoff.
func TestEMISKeyRotation(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{})
	w.keyExtra = `valid_for = "40d"` + "\n  rotate_before = \"30d\""
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	_, oldFpr, _ := w.supplier.RecipientKey()
	// Inside the rotation window, a batch still encrypted to the old key arrives.
	w.now = at("2026-12-05", 9, 0)
	if _, err := w.supplier.Deliver(at("2026-12-05", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	p := w.plan()
	if a := actionOf(p, "key.emis"); a != providers.Rotate {
		t.Fatalf("key action %s", a)
	}
	d := w.apply()
	if d.HasErrors() {
		t.Fatalf("rotation apply: %v", d)
	}
	_, newFpr, _ := w.supplier.RecipientKey()
	if newFpr == oldFpr {
		t.Fatalf("no new key handed off")
	}
	byDay := map[string]state.Delivery{}
	for _, d := range w.deliveries() {
		byDay[d.Day] = d
	}
	if byDay["2026-12-05"].Status != state.DeliveryLanded {
		t.Fatalf("old-key batch after rotation: %+v", byDay["2026-12-05"])
	}
	site, _ := w.store().Resource(context.Background(), "emis_site.central")
	if site.Status != state.StatusAwaitingSupplier {
		t.Errorf("site status %s, want awaiting supplier", site.Status)
	}
	w.now = at("2026-12-06", 9, 0)
	if _, err := w.supplier.Deliver(at("2026-12-06", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	files, _ := w.store().Files(context.Background(), lastDelivery(w).ID)
	if len(files) == 0 || !strings.EqualFold(files[0].KeyID, newFpr) {
		t.Errorf("latest batch decrypted with %v, want %s", files, newFpr)
	}
	site, _ = w.store().Resource(context.Background(), "emis_site.central")
	if site.Status != state.StatusReady {
		t.Errorf("site status %s after the new key was proven", site.Status)
	}
}

func lastDelivery(w *world) state.Delivery {
	ds := w.deliveries()
	return ds[len(ds)-1]
}

func actionOf(p *reconcile.Plan, addr string) providers.Action {
	for _, c := range p.Changes {
		if c.Addr == addr {
			return c.Action
		}
	}
	return ""
}

// A table added to the dataset after a batch landed is fetched as a late
// file into the same batch, and manifest.json is rewritten to list it.
func TestEMISLateFileForLandedBatch(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{})
	w.supplier.Tables = append(w.supplier.Tables, "Prescribing_DrugRecord")
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	w.tables = `["Admin_Patient", "CareRecord_Observation", "Prescribing_DrugRecord"]`
	ic := instances(w.plan(), "extract.core")["2026-11-20"]
	if ic.Action != providers.Fetch || !strings.Contains(ic.Reason, "1 late file(s) for landed batch") {
		t.Fatalf("instance %+v", ic)
	}
	w.mustApply()
	ds := w.deliveries()
	if len(ds) != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	m, err := os.ReadFile(filepath.Join(w.dir, "landing", ds[0].Path, "manifest.json"))
	if err != nil || !strings.Contains(string(m), "Prescribing_DrugRecord.csv") || !strings.Contains(string(m), "Admin_Patient.csv") {
		t.Fatalf("manifest: %s %v", m, err)
	}
	if !w.plan().Empty() {
		t.Errorf("not converged")
	}
}

// Organisation-specific sites, one per practice declared with for_each,
// and an extract per site: addresses and landing paths never collide.
func TestEMISOrganisationSpecificSites(t *testing.T) {
	dir := t.TempDir()
	now := at("2026-11-20", 9, 0)
	type siteRig struct {
		ods      string
		srv      *emissim.Server
		supplier *emissim.Supplier
	}
	keyFile := filepath.Join(dir, "client_ed25519")
	pub, err := emissim.GenerateClientKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var rigs []*siteRig
	var sites strings.Builder
	for i, o := range orgs {
		siteDir := filepath.Join(dir, "sites", o.ODS)
		os.MkdirAll(siteDir, 0o750)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		srv, err := emissim.StartServer(ctx, emissim.ServerConfig{Dir: siteDir, AuthorizedKeys: []ssh.PublicKey{pub}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		agr := fmt.Sprintf("45E7CD20-EE37-41AB-90D6-DC9D4B03D10%d", i)
		rigs = append(rigs, &siteRig{ods: o.ODS, srv: srv, supplier: &emissim.Supplier{
			Dir: siteDir, HandoffDir: filepath.Join(dir, "handoff"), SiteDir: "per_org-" + o.ODS,
			StateFile: filepath.Join(dir, "supplier-"+o.ODS+".json"), Agreement: agr,
			Orgs: []emissim.Org{o}, Tables: []string{"Admin_Patient"}, Patients: 3, Seed: int64(i),
		}})
		fmt.Fprintf(&sites, "    %s = { port = %d, host_key = %q, agreement = %q }\n", o.ODS, srv.Port(), emissim.AuthorizedKeyLine(srv.HostKey()), agr)
	}
	cfg := fmt.Sprintf(`
variable "sites" {
  default = {
%s  }
}
organisation "A81001" {
  name     = "Densham Surgery"
  supplier = "emis"
}
organisation "A81002" {
  name     = "Queens Park Medical Centre"
  supplier = "emis"
}
key "emis" {
  algorithm      = "curve25519"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}
emis_site "per_org" {
  for_each          = var.sites
  host              = "127.0.0.1"
  port              = each.value.port
  user              = "im1"
  host_key          = each.value.host_key
  auth_key_file     = %q
  architecture      = "organisation_specific"
  sharing_agreement = each.value.agreement
  organisations     = [each.key]
  recipient_keys    = [key.emis.fingerprint]
  stable_after      = "0s"
}
dataset "core" {
  tables      = ["Admin_Patient"]
  ig_approval = "IG-2026-014"
}
schedule "daily" {
  frequency = "daily"
  start     = "2026-11-20"
}
extract "core" {
  for_each = emis_site.per_org
  source   = each.value
  dataset  = dataset.core
  schedule = schedule.daily
}
`, sites.String(), keyFile)
	w := &world{t: t, dir: dir, now: now}
	w.rawConfig = cfg
	w.mustApply()
	for _, r := range rigs {
		if _, err := r.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
			t.Fatal(err)
		}
	}
	w.mustApply()
	for _, r := range rigs {
		addr := `extract.core["` + r.ods + `"]`
		ds, err := w.store().Deliveries(context.Background(), addr)
		if err != nil || len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
			t.Fatalf("%s: %+v %v", addr, ds, err)
		}
		want := filepath.Join("core-"+r.ods, "per_org-"+r.ods, "2026-11-20")
		if !strings.HasPrefix(ds[0].Path, want) {
			t.Errorf("%s landed at %s, want under %s", addr, ds[0].Path, want)
		}
	}
	if !w.plan().Empty() {
		t.Errorf("not converged")
	}
	_ = time.Now
}

// The simulator's variants a supplier may send: armoured and compressed.
func TestEMISArmouredCompressed(t *testing.T) {
	w := newWorld(t, emissim.TransportFaults{})
	w.supplier.Armor, w.supplier.Compress = true, true
	w.now = at("2026-11-20", 9, 0)
	w.mustApply()
	if _, err := w.supplier.Deliver(at("2026-11-20", 2, 15), emissim.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.mustApply()
	if ds := w.deliveries(); len(ds) != 1 || ds[0].Status != state.DeliveryLanded {
		t.Fatalf("deliveries %+v", ds)
	}
	if !w.plan().Empty() {
		t.Errorf("not converged")
	}
}

// plan -refresh=false plans from state alone: it does not need the site.
func TestPlanWithoutRefresh(t *testing.T) {
	w := landedOnce(t, emissim.TransportFaults{})
	w.srv.Close() // the site is unreachable now
	e := w.engine()
	defer e.Close()
	e2 := reconcileLoadNoRefresh(t, w)
	defer e2.Close()
	if err := e2.OpenState(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	p, diags := e2.Plan(context.Background())
	if diags.HasErrors() {
		t.Fatalf("plan -refresh=false needed the site: %v", diags)
	}
	if ic := instances(p, "extract.core")["2026-11-20"]; ic.Action != providers.Landed {
		t.Errorf("instance %+v", ic)
	}
}

func reconcileLoadNoRefresh(t *testing.T, w *world) *reconcile.Engine {
	t.Helper()
	now := w.now
	e, diags := reconcile.Load(reconcile.Options{Dir: w.dir, Registry: registry.New(), NoRefresh: true,
		Now: func() time.Time { return now }, Getenv: func(string) string { return "" }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return e
}
