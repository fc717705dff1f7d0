package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/providers/extract"
	"github.com/im1dev/im1/providers/handoff"
	"github.com/im1dev/im1/providers/registry"
	"github.com/im1dev/im1/reconcile"
	"github.com/im1dev/im1/state"
)

// BenchmarkNationalPlan measures a no-change `plan -refresh=false` over N
// organisation-specific EMIS sites with a year of daily deliveries each,
// built straight into state by a generator (IM1_NATIONAL_ORGS, default 100;
// the national figure is 7,000). It reports the plan's wall time and the
// heap in use after it.
func BenchmarkNationalPlan(b *testing.B) { nationalPlan(b, false, 0) }

// BenchmarkNationalPlanMissing is the same with 1,000 deliveries missing
// (one each from the first 1,000 sites, spread over the year): the plan
// must ask for exactly those.
func BenchmarkNationalPlanMissing(b *testing.B) { nationalPlan(b, false, 1000) }

// BenchmarkNationalPlanJSON is the same plan written by plan -json's
// streaming writer (to io.Discard): instances are not kept.
func BenchmarkNationalPlanJSON(b *testing.B) { nationalPlan(b, true, 0) }

func nationalPlan(b *testing.B, stream bool, missing int) {
	orgs := 100
	if v, err := strconv.Atoi(os.Getenv("IM1_NATIONAL_ORGS")); err == nil {
		orgs = v
	}
	const days = 365
	dir := b.TempDir()
	if d := os.Getenv("IM1_NATIONAL_DIR"); d != "" {
		dir = d // kept, to time the CLI on it: see bench/README.md
		if err := os.MkdirAll(dir, 0o750); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC)
	now := start.AddDate(0, 0, days-1).Add(9 * time.Hour)
	var sites strings.Builder
	for i := 0; i < orgs; i++ {
		fmt.Fprintf(&sites, "    %s = %q\n", ods(i), fmt.Sprintf("45E7CD20-EE37-41AB-90D6-%012X", i))
	}
	cfg := fmt.Sprintf(`
variable "sites" {
  type = map(string)
  default = {
%s  }
}
emis_site "org" {
  for_each          = var.sites
  host              = "127.0.0.1"
  port              = 1
  user              = "im1"
  host_key          = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
  architecture      = "organisation_specific"
  sharing_agreement = each.value
  organisations     = [each.key]
  recipient_keys    = ["0000000000000000000000000000000000000000"]
}
`, sites.String()) + dailyExtracts(start)
	if err := os.WriteFile(filepath.Join(dir, "main.im1.hcl"), []byte(cfg), 0o640); err != nil {
		b.Fatal(err)
	}
	opts := reconcile.Options{Dir: dir, Registry: registry.New(), NoRefresh: true, Now: func() time.Time { return now },
		Getenv: func(string) string { return "" }}
	if v, err := strconv.Atoi(os.Getenv("IM1_NATIONAL_PARALLELISM")); err == nil {
		opts.Parallelism = v // -parallelism; 0 is the default
	}
	// Resources in state as an apply would leave them: plan, then record
	// every planned value (the sites' key fingerprint is a placeholder).
	e, diags := reconcile.Load(opts)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	ctx := context.Background()
	if err := e.OpenState(ctx, true); err != nil {
		b.Fatal(err)
	}
	st := e.Store()
	genStart := time.Now()
	missing = min(missing, orgs)
	if err := seedNational(ctx, e, st, orgs, days, start, missing); err != nil {
		b.Fatal(err)
	}
	e.Close()
	b.Logf("generated %d organisations x %d days = %d deliveries in %s", orgs, days, orgs*days, time.Since(genStart).Round(time.Millisecond))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, _ := reconcile.Load(opts)
		if err := e.OpenState(ctx, false); err != nil {
			b.Fatal(err)
		}
		var js *reconcile.JSONStream
		if stream {
			js = reconcile.NewJSONStream(io.Discard, e)
			e.SetStream(js.Change)
		}
		p, diags := e.Plan(ctx)
		if js != nil {
			if err := js.Finish(p); err != nil {
				b.Fatal(err)
			}
		}
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		requests := 0
		for _, c := range p.Changes {
			for _, ic := range c.Instances {
				if ic.Action == providers.Request {
					requests += ic.N()
				}
			}
		}
		switch {
		case missing == 0 && !p.Empty():
			b.Fatalf("the generated state should plan empty")
		case !stream && requests != missing:
			b.Fatalf("the plan requests %d deliveries; %d are missing", requests, missing)
		}
		e.Close()
	}
}

// dailyExtracts declares the national benchmarks' dataset, daily schedule
// from start, and an extract per emis_site.org instance.
func dailyExtracts(start time.Time) string {
	return fmt.Sprintf(`dataset "core" {
  tables      = ["Admin_Patient"]
  ig_approval = "IG-2026-014"
}
schedule "daily" {
  frequency = "daily"
  start     = %q
}
extract "core" {
  for_each = emis_site.org
  source   = each.value
  dataset  = dataset.core
  schedule = schedule.daily
}
`, start.Format(time.DateOnly))
}

func ods(i int) string { return fmt.Sprintf("A%05d", 10000+i) }

// seedNational records the resources as applied and a year of landed
// daily deliveries per site, in large transactions.
// The first missing sites each lack one day, spread over the year.
func seedNational(ctx context.Context, e *reconcile.Engine, st state.Store, orgs, days int, start time.Time, missing int) error {
	p, diags := e.Plan(ctx)
	if diags.HasErrors() {
		return diags
	}
	if err := e.RecordPlanned(ctx, p); err != nil {
		return err
	}
	for lo := 0; lo < orgs; lo += 200 {
		err := st.Tx(ctx, func(tx state.Tx) error {
			for i := lo; i < lo+200 && i < orgs; i++ {
				site := fmt.Sprintf(`emis_site.org["%s"]`, ods(i))
				ext := fmt.Sprintf(`extract.core["%s"]`, ods(i))
				// EMIS has proven the site's key: the public-key handoff is done.
				if err := tx.PutHandoff(state.Handoff{ID: extract.DirName(site) + "-0000000000000000000000000000000000000000",
					Source: site, Kind: handoff.PublicKey, Status: state.HandoffDone}); err != nil {
					return err
				}
				for d := 0; d < days; d++ {
					if i < missing && d == 1+i%(days-10) {
						continue
					}
					t := start.AddDate(0, 0, d).Add(2*time.Hour + 15*time.Minute)
					kind := "delta"
					if d == 0 {
						kind = "full"
					}
					del := &state.Delivery{Extract: ext, Source: site, Day: t.Format(time.DateOnly), BatchID: t.Format("2006-01-02T15.04.05"),
						Kind: kind, SeqFrom: strconv.Itoa(d + 1), SeqTo: strconv.Itoa(d + 1), Cutoff: t, Status: state.DeliveryLanded}
					if err := tx.PutDelivery(del); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
