package coverage

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// national is a report at national scale: 7,000 practices, a year of daily
// deliveries, a realistic sprinkling of problems.
func national() *Report {
	const orgs, days = 7000, 365
	r := &Report{FormatVersion: FormatVersion, AsOf: asOf, Totals: Counts{}}
	x := &Extract{Address: "extract.core", Source: "emis_site.central", Supplier: "emis", Dataset: "dataset.core", Frequency: "daily", Counts: Counts{}}
	start := time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for d := 0; d < days; d++ {
		p := Period{Key: start.AddDate(0, 0, d).Format(time.DateOnly), Status: Landed, Action: "landed", Rows: 1}
		switch {
		case d == days-1:
			p.Status, p.Action, p.Reason = NotDue, "wait", "expected by tomorrow"
		case d%97 == 50:
			p.Status, p.Action, p.Reason = Quarantined, "quarantine", fmt.Sprintf("batch %s: integrity check failed", p.Key)
		}
		x.Periods = append(x.Periods, p)
	}
	for o := 0; o < orgs; o++ {
		org := &Org{ODS: fmt.Sprintf("%c%05d", 'A'+o%26, o), Name: fmt.Sprintf("Practice %d Medical Centre", o), Counts: Counts{}}
		for d, p := range x.Periods {
			c := Cell{Status: p.Status, Reason: p.Reason}
			if p.Status == Landed {
				c.Rows = int64(rng.IntN(4000))
				if rng.IntN(500) == 0 {
					c.Status, c.Reason, c.Rows = Missing, "disabled in the sharing agreement", 0
				}
			}
			org.Cells = append(org.Cells, c)
			org.Counts[c.Status]++
			org.Rows += c.Rows
			x.Counts[c.Status]++
			_ = d
		}
		x.Orgs = append(x.Orgs, org)
	}
	r.Extracts = []*Extract{x}
	r.Totals = x.Counts
	return r
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// The page for 7,000 organisations × 365 days: its size, stated in the
// package note, and a bound so it does not creep.
func TestNationalPageSize(t *testing.T) {
	if testing.Short() {
		t.Skip("national scale")
	}
	r := national()
	var w countingWriter
	start := time.Now()
	if err := r.WriteHTML(io.Writer(&w)); err != nil {
		t.Fatal(err)
	}
	t.Logf("national page: %d bytes (%.1f MiB) in %s", w.n, float64(w.n)/(1<<20), time.Since(start).Round(time.Millisecond))
	if w.n > 24<<20 {
		t.Errorf("national page is %d bytes; keep it under 24 MiB", w.n)
	}
}
