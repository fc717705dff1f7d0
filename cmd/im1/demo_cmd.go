package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/crypto/ssh"

	"github.com/im1dev/im1/config"
	"github.com/im1dev/im1/coverage"
	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/emis/emissim"
	"github.com/im1dev/im1/providers/systmone/tppsim"
	"github.com/im1dev/im1/reconcile"
)

// demoPassphrase protects the demo's throwaway key; it is never printed.
const demoPassphrase = "im1 demo: a throwaway key in a temporary directory"

// demoStart is the scenario clock's first day: the demo always tells the
// same story, whatever the date, so its output is stable.
var demoStart = time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)

func (c *cli) demoCommand() *ffcli.Command {
	fs := c.newFlags("demo")
	keep := fs.Bool("keep", false, "keep the temporary directory (configuration, state, landed data) instead of removing it")
	htmlOut := fs.String("html", filepath.Join(os.TempDir(), "im1-demo-coverage.html"), "where to write the coverage page")
	return &ffcli.Command{
		Name: "demo", ShortUsage: "im1 demo [-keep] [-html FILE]", FlagSet: fs,
		ShortHelp: "Run a whole scenario against both simulators: plan, apply, faults, repair, coverage.",
		LongHelp: "demo starts the EMIS simulator (an SFTP site) and the SystmOne simulator (a gateway folder)\n" +
			"in-process on 127.0.0.1, writes a configuration into a temporary directory, and runs plan\n" +
			"and apply over a week of deliveries on a fixed scenario clock. Then it simulates faults (a\n" +
			"landed file deleted, a day the supplier missed, a tampered file, a disabled practice), runs\n" +
			"the repairing apply and ends with the coverage report. It cleans up what it started.",
		Exec: func(ctx context.Context, args []string) error {
			work, err := os.MkdirTemp("", "im1-demo-")
			if err != nil {
				return &exitError{1, err}
			}
			if *keep {
				defer fmt.Fprintf(c.stdout, "\nKept the demo directory: %s\n", work)
			} else {
				defer os.RemoveAll(work)
			}
			d := &demo{w: c.stdout, dir: work, now: demoStart}
			if err := d.run(ctx, *htmlOut); err != nil {
				return &exitError{1, err}
			}
			return nil
		},
	}
}

// demo is one run of the scenario.
type demo struct {
	w        io.Writer
	dir      string
	now      time.Time
	step     int
	supplier *emissim.Supplier
	tpp      *tppsim.Sim
}

func (d *demo) run(ctx context.Context, htmlOut string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := os.MkdirAll(filepath.Join(d.dir, "secrets"), 0o700); err != nil {
		return err
	}
	for _, sub := range []string{"emis-site", "gateway"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o750); err != nil {
			return err
		}
	}
	keyFile := filepath.Join(d.dir, "secrets", "sftp_ed25519")
	pub, err := emissim.GenerateClientKey(keyFile)
	if err != nil {
		return err
	}
	srv, err := emissim.StartServer(ctx, emissim.ServerConfig{Dir: filepath.Join(d.dir, "emis-site"), AuthorizedKeys: []ssh.PublicKey{pub}})
	if err != nil {
		return err
	}
	defer srv.Close()
	orgs := []emissim.Org{
		{GUID: guidFor("A81001"), ODS: "A81001", Name: "Densham Surgery"},
		{GUID: guidFor("A81002"), ODS: "A81002", Name: "Queens Park Medical Centre"},
		{GUID: guidFor("A81004"), ODS: "A81004", Name: "Bedale Road Surgery"},
	}
	d.supplier = &emissim.Supplier{
		Dir: filepath.Join(d.dir, "emis-site"), HandoffDir: filepath.Join(d.dir, "handoff"), SiteDir: "central",
		StateFile: filepath.Join(d.dir, "emis-supplier.json"), Agreement: demoAgreement, Orgs: orgs,
		Tables: demoTables, Patients: 12, Seed: 2026,
	}
	d.tpp = &tppsim.Sim{Root: filepath.Join(d.dir, "gateway"), HandoffDir: filepath.Join(d.dir, "handoff"), Report: "north",
		Seed: 2026, Patients: 12, Now: func() time.Time { return d.now },
		OrgNames: map[string]string{"B82005": "Harbour Surgery", "B82018": "Quayside Practice"}}
	cfg := fmt.Sprintf(demoConfig, srv.Port(), srv.User(), emissim.AuthorizedKeyLine(srv.HostKey()), keyFile, demoAgreement)
	if err := os.WriteFile(filepath.Join(d.dir, "main.im1.hcl"), []byte(cfg), 0o640); err != nil {
		return err
	}

	d.heading("A configuration and two simulators",
		"The EMIS simulator serves an SFTP site on 127.0.0.1 (an ephemeral port); the SystmOne simulator",
		"writes strategic-report extracts into a gateway folder. main.im1.hcl declares three EMIS practices,",
		"a curve25519 key, the site, a daily extract, and a daily SystmOne report for two practices.")
	if err := d.plan(ctx); err != nil {
		return err
	}
	if err := d.apply(ctx, false); err != nil {
		return err
	}

	d.at(4, "The suppliers deliver four days",
		"EMIS has the public key im1 handed off and delivers 2026-11-16 to 2026-11-19, encrypted to it;",
		"the SystmOne client follows the report sheet and writes the same days (a full extract, then deltas).")
	for day := 16; day <= 19; day++ {
		if err := d.deliver(day, emissim.Faults{}); err != nil {
			return err
		}
	}
	if err := d.plan(ctx); err != nil {
		return err
	}
	if err := d.apply(ctx, false); err != nil {
		return err
	}

	d.at(3, "Things go wrong",
		"- a landed file is deleted behind im1's back (CareRecord_Observation of 2026-11-17);",
		"- EMIS misses 2026-11-20 altogether;",
		"- Bedale Road Surgery (A81004) is disabled in the sharing agreement of every batch sent from now on;",
		"- the file CareRecord_Observation of 2026-11-22 is tampered with in transit.")
	victims, _ := filepath.Glob(filepath.Join(d.dir, "landing", "core", "central", "2026-11-17", "*", "CareRecord_Observation.csv"))
	for _, v := range victims {
		if err := os.Remove(v); err != nil {
			return err
		}
	}
	if err := d.supplier.Miss(day(20)); err != nil {
		return err
	}
	if err := d.step20to22(); err != nil {
		return err
	}
	if err := d.plan(ctx); err != nil {
		return err
	}
	if err := d.apply(ctx, false); err != nil {
		return err
	}

	d.heading("EMIS answers the re-extract request",
		"The EMIS service desk (the simulator) reads the request im1 handed off and delivers 2026-11-20.",
		"The repairing apply lands it and the delta it unblocks; the tampered file stays quarantined.")
	if _, err := d.supplier.AnswerRequests(d.now); err != nil {
		return err
	}
	if err := d.apply(ctx, true); err != nil {
		return err
	}
	fmt.Fprintln(d.w, "A last plan: the disabled practice is drift for a human to look at, the quarantined batch is")
	fmt.Fprintln(d.w, "settled (it needs EMIS, not apply), so there is nothing left for apply to do.")
	fmt.Fprintln(d.w)
	if err := d.plan(ctx); err != nil {
		return err
	}

	d.heading("Coverage", "What landed per organisation and day, and why the rest did not.")
	fmt.Fprintf(d.w, "$ im1 coverage -html %s\n", htmlOut)
	e, err := d.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.OpenState(ctx, false); err != nil {
		return err
	}
	plan, diags := e.Plan(ctx)
	if plan == nil || plan.Errored() {
		d.diags(e, diags)
		return errors.New("the coverage plan failed")
	}
	rep, err := coverage.Build(ctx, plan.Document(), e.Store())
	if err != nil {
		return err
	}
	if err := rep.WriteText(d.w); err != nil {
		return err
	}
	if err := writeCoveragePage(htmlOut, rep); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "\nCoverage page: %s\n", htmlOut)
	return nil
}

// step20to22 has the suppliers deliver the days after the missed one.
func (d *demo) step20to22() error {
	if _, err := d.tpp.Step(day(20), tppsim.Faults{}); err != nil {
		return err
	}
	d.supplier.Orgs[2].Disabled = true
	if err := d.deliver(21, emissim.Faults{}); err != nil {
		return err
	}
	return d.deliver(22, emissim.Faults{TamperFile: "CareRecord_Observation"})
}

// deliver has both suppliers deliver one day (EMIS with the given faults).
func (d *demo) deliver(n int, f emissim.Faults) error {
	t := day(n)
	if _, err := d.supplier.Deliver(time.Date(t.Year(), t.Month(), t.Day(), 2, 15, 0, 0, time.UTC), f); err != nil {
		return err
	}
	_, err := d.tpp.Step(t, tppsim.Faults{})
	return err
}

func day(n int) time.Time { return time.Date(2026, 11, n, 0, 0, 0, 0, time.UTC) }

// at moves the scenario clock on by days and starts a step.
func (d *demo) at(days int, title string, lines ...string) {
	d.now = d.now.AddDate(0, 0, days)
	d.heading(title, lines...)
}

func (d *demo) heading(title string, lines ...string) {
	d.step++
	fmt.Fprintf(d.w, "\n=== %d. %s (scenario clock: %s)\n", d.step, title, d.now.Format("Mon 2006-01-02 15:04 MST"))
	for _, l := range lines {
		fmt.Fprintln(d.w, l)
	}
	fmt.Fprintln(d.w)
}

func (d *demo) engine() (*reconcile.Engine, error) {
	now := d.now
	e, diags := reconcile.Load(reconcile.Options{
		Dir: d.dir, Registry: registry(), Now: func() time.Time { return now },
		Getenv: func(k string) string {
			if k == "IM1_KEY_PASSPHRASE" {
				return demoPassphrase
			}
			return ""
		},
		Environ:   []string{},
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Operation: "apply",
	})
	if diags.HasErrors() {
		d.diags(e, diags)
		return nil, errors.New("the demo configuration does not load")
	}
	return e, nil
}

func (d *demo) diags(e *reconcile.Engine, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	var files map[string]*hcl.File
	if e != nil && e.Config() != nil {
		files = e.Config().Files
	}
	fmt.Fprintln(d.w)
	_ = config.WriteDiagnostics(d.w, files, diags, 100, false)
}

func (d *demo) plan(ctx context.Context) error {
	fmt.Fprintln(d.w, "$ im1 plan")
	e, err := d.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.OpenState(ctx, false); err != nil {
		return err
	}
	plan, diags := e.Plan(ctx)
	d.diags(e, diags)
	if plan == nil || plan.Errored() {
		return errors.New("plan failed")
	}
	reconcile.RenderPlan(d.w, plan.Document(), reconcile.RenderOptions{})
	fmt.Fprintln(d.w)
	return nil
}

// apply is `im1 apply -auto-approve`; showPlan is false right after the
// same plan was printed. Errors apply reports (a quarantined batch) are
// part of the story and printed; only a failure to run at all stops the
// demo.
func (d *demo) apply(ctx context.Context, showPlan bool) error {
	fmt.Fprintln(d.w, "$ im1 apply -auto-approve")
	e, err := d.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := e.OpenState(ctx, true); err != nil {
		return err
	}
	id, err := e.Lock(ctx, "apply")
	if err != nil {
		return err
	}
	defer e.Unlock(ctx, id)
	plan, diags := e.Plan(ctx)
	if showPlan || diags.HasErrors() {
		d.diags(e, diags) // else the plan above showed them
	}
	if plan == nil || plan.Errored() {
		return errors.New("plan failed")
	}
	doc := plan.Document()
	if showPlan {
		reconcile.RenderPlan(d.w, doc, reconcile.RenderOptions{})
		fmt.Fprintln(d.w)
	} else {
		fmt.Fprintln(d.w, "(the plan above)")
	}
	if plan.Empty() {
		return nil
	}
	res, adiags := e.Apply(ctx, plan, doc.Hash(), demoObserver{d.w})
	d.diags(e, adiags)
	if res != nil {
		fmt.Fprintf(d.w, "\nApply complete! Resources: %d added, %d changed, %d destroyed.", res.Added, res.Changed, res.Destroyed)
		if res.Failed+res.Skipped > 0 {
			fmt.Fprintf(d.w, " %d failed, %d skipped.", res.Failed, res.Skipped)
		}
		fmt.Fprintln(d.w)
	}
	fmt.Fprintln(d.w)
	return nil
}

// demoObserver prints apply's steps without timings, so the demo reads
// the same on every run.
type demoObserver struct{ w io.Writer }

func (o demoObserver) Started(addr string, a providers.Action) {
	fmt.Fprintf(o.w, "%s: %s\n", addr, ing[a][0])
}
func (o demoObserver) Finished(addr string, a providers.Action, err error, _ time.Duration) {
	if err != nil {
		fmt.Fprintf(o.w, "%s: failed (the error follows)\n", addr)
		return
	}
	fmt.Fprintf(o.w, "%s: %s\n", addr, ing[a][1])
}
func (o demoObserver) Skipped(addr, because string) {
	fmt.Fprintf(o.w, "%s: skipped (%s)\n", addr, because)
}

const demoAgreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"

var demoTables = []string{"Admin_Patient", "CareRecord_Observation", "Prescribing_DrugRecord"}

// demoConfig is the demo's main.im1.hcl: port, user, host key, client key
// file and agreement are the simulator's.
const demoConfig = `# Written by im1 demo: three EMIS practices on one multi-organisation site,
# and a SystmOne strategic report for two more.

im1 {
  zone = "Europe/London"
}

organisation "emis" {
  for_each = {
    A81001 = "Densham Surgery"
    A81002 = "Queens Park Medical Centre"
    A81004 = "Bedale Road Surgery"
  }
  ods      = each.key
  name     = each.value
  supplier = "emis"
}

organisation "tpp" {
  for_each = {
    B82005 = "Harbour Surgery"
    B82018 = "Quayside Practice"
  }
  ods      = each.key
  name     = each.value
  supplier = "systmone"
}

key "emis" {
  algorithm      = "curve25519"
  passphrase_env = "IM1_KEY_PASSPHRASE"
}

emis_site "central" {
  host              = "127.0.0.1"
  port              = %d
  user              = %q
  host_key          = %q
  auth_key_file     = %q
  sharing_agreement = %q
  organisations     = [for o in organisation.emis : o.ods]
  recipient_keys    = [key.emis.fingerprint]
  stable_after      = "0s"
}

dataset "core" {
  tables      = ["Admin_Patient", "CareRecord_Observation", "Prescribing_DrugRecord"]
  ig_approval = "IG-2026-014"
}

schedule "daily" {
  frequency = "daily"
  start     = "2026-11-16"
  lateness  = "24h"
}

extract "core" {
  source   = emis_site.central
  dataset  = dataset.core
  schedule = schedule.daily
}

systmone_reporting_unit "hub" {
  ods               = "Y01234"
  name              = "Harbour Data Hub"
  technical_contact = "Sam Patel <sam.patel@nhs.example>"
}

systmone_organisation_group "north" {
  reporting_unit = systmone_reporting_unit.hub
  organisations  = [for o in organisation.tpp : o.ods]
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

systmone_strategic_report "north" {
  reporting_unit     = systmone_reporting_unit.hub
  organisation_group = systmone_organisation_group.north
  dataset            = dataset.sr
  schedule           = schedule.daily
  root_directory     = "gateway"
}

extract "sr" {
  source   = systmone_strategic_report.north
  dataset  = dataset.sr
  schedule = schedule.daily
}
`
