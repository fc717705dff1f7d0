package extract

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/im1dev/im1/providers"
	"github.com/im1dev/im1/state"
)

// TestDigestPictureMatchesRows: a plan without refresh reads an extract's
// delivery digest instead of its rows; for any history (statuses, kinds,
// other sources, late and out-of-order deliveries, gaps, a full extract
// part-way, periods before the schedule's start) and every frequency, the
// instances must be exactly those the rows give.
func TestDigestPictureMatchesRows(t *testing.T) {
	ctx := context.Background()
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	statuses := []string{state.DeliveryLanded, state.DeliveryLanded, state.DeliveryLanded, state.DeliveryLanded,
		state.DeliveryQuarantined, state.DeliveryWithdrawn, state.DeliveryExpired}
	for seed := uint64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		st, err := state.OpenSQLite(ctx, filepath.Join(t.TempDir(), "im1.state"), state.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		const addr, src = `extract.core["A81001"]`, `emis_site.org["A81001"]`
		start := time.Date(2026, 3, 1+rng.IntN(28), 0, 0, 0, 0, london) // spans the clock change
		days := 30 + rng.IntN(300)
		err = st.Tx(ctx, func(tx state.Tx) error {
			for d := -5; d < days; d++ {
				if rng.IntN(8) == 0 {
					continue // a missed day
				}
				for range 1 + rng.IntN(2) {
					cut := start.AddDate(0, 0, d).Add(time.Duration(rng.IntN(24*60)) * time.Minute)
					kind := "delta"
					if rng.IntN(40) == 0 {
						kind = "full"
					}
					source := src
					if rng.IntN(30) == 0 {
						source = "emis_site.old"
					}
					del := &state.Delivery{Extract: addr, Source: source, Day: cut.Format(time.DateOnly), BatchID: cut.UTC().Format("2006-01-02T15.04.05"),
						Kind: kind, Cutoff: cut, Status: statuses[rng.IntN(len(statuses))], Reason: fmt.Sprintf("reason %d", rng.IntN(2))}
					if err := tx.PutDelivery(del); err != nil {
						return err
					}
				}
			}
			return tx.PutHandoff(state.Handoff{ID: RequestID(addr, start.AddDate(0, 0, 3).Format(time.DateOnly)), Source: addr,
				Kind: "reextract-request", Status: state.HandoffAwaiting, Created: start})
		})
		if err != nil {
			t.Fatal(err)
		}
		digests, err := st.DeliveryDigests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := start.AddDate(0, 0, days+rng.IntN(20)).Add(9 * time.Hour)
		for _, freq := range []string{"daily", "weekly", "monthly"} {
			sched := Schedule{Frequency: freq, Start: start.AddDate(0, 0, rng.IntN(10)), Lateness: 24 * time.Hour, Zone: london}
			if rng.IntN(3) == 0 {
				sched.Retention = time.Duration(60+rng.IntN(100)) * 24 * time.Hour
			}
			env := &providers.Env{Store: st, NoRefresh: true, Zone: london, Now: func() time.Time { return now }}
			req := &Request{Addr: addr, Schedule: sched, Env: env, SourceReady: rng.IntN(4) != 0}
			if rng.IntN(3) == 0 {
				req.Ends = Ending{Day: now.AddDate(0, 0, -rng.IntN(40)), Reason: "IG approval ended"}
			}
			plan := func(withDigest bool) []providers.InstanceChange {
				r := *req
				if withDigest {
					r.digests = digests
				}
				pic := NewPicture(sched)
				if _, err := pic.Load(ctx, &r, src); err != nil {
					t.Fatal(err)
				}
				if withDigest && pic.plain == nil {
					t.Fatalf("seed %d: the digest was not used", seed)
				}
				inst := pic.Instances(&r, "EMIS")
				if withDigest {
					// Its per-period counts go back to the pool, and the
					// next picture's must not show what they held.
					pic.Release()
				}
				return inst
			}
			rows, dig := plan(false), plan(true)
			if !reflect.DeepEqual(rows, dig) {
				t.Fatalf("seed %d %s: from rows\n%v\nfrom the digest\n%v", seed, freq, rows, dig)
			}
			if len(rows) == 0 {
				t.Fatalf("seed %d %s: no instances", seed, freq)
			}
		}
		st.Close()
	}
}
