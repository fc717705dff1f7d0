package coverage

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
	"github.com/im1dev/im1/state/statetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var asOf = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// scenario is a plan document and the state behind it, as apply would
// have left them: what the report joins.
type scenario struct {
	doc        *reconcile.Doc
	deliveries []fixtureDelivery
}

type fixtureDelivery struct {
	d    state.Delivery
	rows []int64 // rows per file
	obs  []state.Observation
}

func rc(addr, typ string, after map[string]any, inst ...reconcile.InstanceDoc) reconcile.ResourceChange {
	name := strings.TrimPrefix(addr, typ+".")
	index := ""
	if i := strings.Index(name, "["); i >= 0 {
		name, index = name[:i], strings.Trim(name[i:], `[]"`)
	}
	return reconcile.ResourceChange{Address: addr, Type: typ, Name: name, Index: index, Action: providers.NoOp, After: after, Instances: inst}
}

func ref(addr string) map[string]any { return map[string]any{"address": addr} }

func in(key string, a providers.InstanceAction, reason string, settled bool) reconcile.InstanceDoc {
	return reconcile.InstanceDoc{Key: key, Action: a, Reason: reason, Settled: settled}
}

func obs(src, ods, name string, rows int64, disabled bool) state.Observation {
	return state.Observation{Source: src, OrgGUID: "GUID-" + ods, ODS: ods, Name: name, IsActivated: true, Disabled: disabled, Rows: rows}
}

func landed(extract, src, day, batch string, rows []int64, o ...state.Observation) fixtureDelivery {
	return fixtureDelivery{d: state.Delivery{Extract: extract, Source: src, Day: day, BatchID: batch, Kind: "delta", Status: state.DeliveryLanded}, rows: rows, obs: o}
}

// scenarios are the fixed cases the golden files hold.
func scenarios() map[string]scenario {
	const site = "emis_site.central"
	emisDaily := scenario{
		doc: &reconcile.Doc{Created: asOf, Serial: 42, ResourceChanges: []reconcile.ResourceChange{
			rc(`organisation.emis["A81001"]`, "organisation", map[string]any{"ods": "A81001", "name": "Densham Surgery"}),
			rc(`organisation.emis["A81002"]`, "organisation", map[string]any{"ods": "A81002", "name": "Queens Park Medical Centre"}),
			rc(`organisation.emis["A81004"]`, "organisation", map[string]any{"ods": "A81004", "name": "Bedale Road Surgery", "permission_until": "2026-11-21"}),
			rc(site, "emis_site", map[string]any{"organisations": []any{"A81001", "A81002", "A81004"}}),
			rc("schedule.daily", "schedule", map[string]any{"frequency": "daily"}),
			rc("extract.core", "extract", map[string]any{"source": ref(site), "dataset": ref("dataset.core"), "schedule": ref("schedule.daily")},
				in("2026-11-16", providers.Landed, "", false),
				in("2026-11-17", providers.Landed, "", false),
				in("2026-11-18", providers.Repair, "batch 2026-11-18T02.15.00: CareRecord_Observation missing", false),
				in("2026-11-19", providers.Awaiting, "re-extract requested 2026-11-21", true),
				in("2026-11-20", providers.Blocked, "batch 2026-11-20T02.15.00: processing ids 4-4 are missing before this batch", false),
				in("2026-11-21", providers.Quarantine, "CareRecord_Observation: integrity check failed", true),
				in("2026-11-22", providers.Request, "no delivery by 2026-11-23 00:00 GMT; ask EMIS to re-extract", false),
				in("2026-11-23", providers.Wait, "not yet due", false),
			),
		}},
		deliveries: []fixtureDelivery{
			landed("extract.core", site, "2026-11-16", "2026-11-16T02.15.00", []int64{1200, 3400},
				obs(site, "A81001", "Densham Surgery", 2100, false), obs(site, "A81002", "Queens Park Medical Centre", 1500, false), obs(site, "A81004", "Bedale Road Surgery", 1000, false)),
			landed("extract.core", site, "2026-11-17", "2026-11-17T02.15.00", []int64{40, 110},
				obs(site, "A81001", "Densham Surgery", 90, false), obs(site, "A81002", "Queens Park Medical Centre", 0, true), obs(site, "A81004", "Bedale Road Surgery", 60, false)),
			landed("extract.core", site, "2026-11-18", "2026-11-18T02.15.00", []int64{30, 70},
				obs(site, "A81001", "Densham Surgery", 55, false), obs(site, "A81002", "Queens Park Medical Centre", 0, true)),
			{d: state.Delivery{Extract: "extract.core", Source: site, Day: "2026-11-21", BatchID: "2026-11-21T02.15.00", Status: state.DeliveryQuarantined, Reason: "CareRecord_Observation: integrity check failed"}},
		},
	}
	const report = "systmone_strategic_report.north"
	srWeekly := scenario{
		doc: &reconcile.Doc{Created: asOf, Serial: 7, ResourceChanges: []reconcile.ResourceChange{
			rc("systmone_organisation_group.north", "systmone_organisation_group", map[string]any{"organisations": []any{"B82005", "B82018"}}),
			rc(report, "systmone_strategic_report", map[string]any{"organisation_group": ref("systmone_organisation_group.north")}),
			rc("schedule.weekly", "schedule", map[string]any{"frequency": "weekly"}),
			rc("extract.sr", "extract", map[string]any{"source": ref(report), "dataset": ref("dataset.sr"), "schedule": ref("schedule.weekly")},
				in("2026-11-02", providers.Landed, "", false),
				in("2026-11-09", providers.Landed, "", false),
				in("2026-11-16", providers.Fetch, "delivered, not yet landed", false),
				in("2026-11-23", providers.Wait, "not yet due", false),
			),
		}},
		deliveries: []fixtureDelivery{
			landed("extract.sr", report, "2026-11-02", "20261102_0215", []int64{5000},
				obs(report, "B82005", "Harbour Surgery", 3000, false), obs(report, "B82018", "Quayside Practice", 2000, false)),
			landed("extract.sr", report, "2026-11-09", "20261109_0231", []int64{800},
				obs(report, "B82005", "Harbour Surgery", 800, false)),
		},
	}
	orgSpecificMonthly := scenario{
		doc: &reconcile.Doc{Created: asOf, Serial: 3, ResourceChanges: []reconcile.ResourceChange{
			rc(`organisation.p["A81001"]`, "organisation", map[string]any{"ods": "A81001", "name": "Densham Surgery", "permission_from": "2026-10-15"}),
			rc(`emis_site.per_org["A81001"]`, "emis_site", map[string]any{"organisations": []any{"A81001"}}),
			rc("schedule.monthly", "schedule", map[string]any{"frequency": "monthly"}),
			rc(`extract.core["A81001"]`, "extract", map[string]any{"source": ref(`emis_site.per_org["A81001"]`), "dataset": ref("dataset.core"), "schedule": ref("schedule.monthly")},
				in("2026-09-01", providers.Withdrawn, "not fetched: IG approval IG-2025-001 ended 2026-09-30", true),
				in("2026-10-01", providers.Landed, "", false),
				in("2026-11-01", providers.Wait, "expected by 2026-12-02 00:00 GMT", false),
			),
		}},
		deliveries: []fixtureDelivery{
			landed(`extract.core["A81001"]`, `emis_site.per_org["A81001"]`, "2026-10-01", "2026-10-01T02.15.00", []int64{77}),
		},
	}
	return map[string]scenario{"emis_daily": emisDaily, "systmone_weekly": srWeekly, "org_specific_monthly": orgSpecificMonthly}
}

// build writes the scenario's deliveries into a real SQLite state and
// builds the report from it.
func (s scenario) build(t *testing.T) *Report {
	t.Helper()
	ctx := context.Background()
	st := statetest.New(t)
	err := st.Tx(ctx, func(tx state.Tx) error {
		for _, fd := range s.deliveries {
			d := fd.d
			if err := tx.PutDelivery(&d); err != nil {
				return err
			}
			for i, n := range fd.rows {
				f := state.File{DeliveryID: d.ID, Table: []string{"Admin_Patient", "CareRecord_Observation"}[i%2], Rows: n, Status: state.FileLanded}
				if err := tx.PutFile(&f); err != nil {
					return err
				}
			}
			if len(fd.obs) > 0 {
				if err := tx.PutObservations(d.ID, fd.obs); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(ctx, s.doc, st)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./coverage -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./coverage -update rewrites it):\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for name, s := range scenarios() {
		t.Run(name, func(t *testing.T) {
			r := s.build(t)
			var text, js bytes.Buffer
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", text.Bytes())
			golden(t, name+".json", js.Bytes())
		})
	}
}

// The cell statuses and reasons per organisation, spelled out.
func TestCells(t *testing.T) {
	r := scenarios()["emis_daily"].build(t)
	x := r.Extracts[0]
	want := map[string]string{
		"A81001": "landed landed missing awaiting-supplier blocked quarantined missing not-yet-due",
		"A81002": "landed missing missing awaiting-supplier blocked quarantined missing not-yet-due",
		"A81004": "landed landed missing awaiting-supplier blocked quarantined not-extracted not-extracted",
	}
	for _, o := range x.Orgs {
		var got []string
		for _, c := range o.Cells {
			got = append(got, strings.ReplaceAll(string(c.Status), " ", "-"))
		}
		if g := strings.Join(got, " "); g != want[o.ODS] {
			t.Errorf("%s: %s\nwant %s", o.ODS, g, want[o.ODS])
		}
	}
	a81002 := x.Orgs[1]
	if a81002.Cells[1].Reason != "disabled in the sharing agreement" || a81002.Rows != 1500 {
		t.Errorf("A81002: %+v rows %d", a81002.Cells[1], a81002.Rows)
	}
	if x.Orgs[2].Cells[2].Reason != "batch 2026-11-18T02.15.00: CareRecord_Observation missing" {
		t.Errorf("A81004 on the 18th is missing from the delivery and the batch awaits repair: %+v", x.Orgs[2].Cells[2])
	}
	if r.Totals[Landed] != 5 || r.Totals.Problems() != 12 {
		t.Errorf("totals %v", r.Totals)
	}
}

// The page for each fixed scenario: self-contained, the legend, the same
// figures as the text, and the data the script draws from.
func TestHTMLStructure(t *testing.T) {
	for name, s := range scenarios() {
		t.Run(name, func(t *testing.T) {
			r := s.build(t)
			var b bytes.Buffer
			if err := r.WriteHTML(&b); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			// Nothing is fetched: no external references of any kind.
			for _, bad := range []string{"src=", "href=", "url(", "@import", "http://", "https://", "fetch(", "XMLHttpRequest", "<link", "<iframe"} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			for _, st := range Statuses {
				if !strings.Contains(page, ">"+string(st)+" (") {
					t.Errorf("legend lacks %q", st)
				}
			}
			for _, x := range r.Extracts {
				if !strings.Contains(page, "<h2>"+htmlEsc(x.Address)+"</h2>") {
					t.Errorf("no section for %s", x.Address)
				}
				for _, run := range periodRuns(x) {
					if !strings.Contains(page, "<td>"+htmlEsc(run.Detail)+"</td>") {
						t.Errorf("figures lack %q", run.Detail)
					}
				}
			}
			m := regexp.MustCompile(`(?s)<script type="application/json" id="im1-data">(.*?)</script>`).FindStringSubmatch(page)
			if m == nil {
				t.Fatal("no data block")
			}
			var d pageData
			if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Extracts) != len(r.Extracts) {
				t.Fatalf("%d extracts in the data, %d in the report", len(d.Extracts), len(r.Extracts))
			}
			for i, x := range r.Extracts {
				px := d.Extracts[i]
				if len(px.Keys) != len(x.Periods) || len(px.Periods) != len(x.Periods) || len(px.Orgs) != len(x.Orgs) {
					t.Errorf("%s: data shape %d/%d/%d", x.Address, len(px.Keys), len(px.Periods), len(px.Orgs))
				}
				in := 0
				for _, g := range px.Groups {
					in += len(g.Orgs)
					if !g.Open {
						t.Errorf("%s: group %s closed in a small report", x.Address, g.Name)
					}
				}
				if in != len(x.Orgs) {
					t.Errorf("%s: groups hold %d of %d organisations", x.Address, in, len(x.Orgs))
				}
			}
		})
	}
}

// Worst first: problems, then awaiting the supplier, then ODS code.
func TestPageOrder(t *testing.T) {
	r := scenarios()["emis_daily"].build(t)
	d := r.pageData()
	var got []string
	for _, o := range d.Extracts[0].Orgs {
		got = append(got, o.ODS)
	}
	if strings.Join(got, ",") != "A81002,A81001,A81004" {
		t.Errorf("order %v", got)
	}
	if d.Extracts[0].Orgs[0].Status != "01142315" {
		t.Errorf("A81002 codes %s", d.Extracts[0].Orgs[0].Status)
	}
}

func htmlEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}
