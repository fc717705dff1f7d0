package state_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/im1dev/im1/state"
	"github.com/im1dev/im1/state/statetest"
)

// wantDigest groups Deliveries the way a digest must.
func wantDigest(t *testing.T, s state.Store, extract string) *state.DeliveryDigest {
	t.Helper()
	ds, err := s.Deliveries(ctx, extract)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		return nil
	}
	d := &state.DeliveryDigest{Extract: extract}
	idx := map[[3]string]int{}
	for _, x := range ds {
		if x.Status == state.DeliveryPending {
			d.Pending++
		}
		k := [3]string{x.Source, x.Status, x.Kind}
		i, ok := idx[k]
		if !ok {
			i = len(d.Groups)
			idx[k] = i
			d.Groups = append(d.Groups, state.DigestGroup{Source: x.Source, Status: x.Status, Kind: x.Kind})
		}
		g := &d.Groups[i]
		g.Cutoffs = append(g.Cutoffs, x.Cutoff.UnixNano())
		if g.Detailed() {
			g.Batches, g.Reasons = append(g.Batches, x.BatchID), append(g.Reasons, x.Reason)
		}
	}
	return d
}

// TestDeliveryDigests: after any mix of inserts, updates, moves between
// extracts and deletes, in one transaction or several, every extract's
// digest says exactly what its delivery rows say.
func TestDeliveryDigests(t *testing.T) {
	s, err := state.OpenSQLite(ctx, filepath.Join(t.TempDir(), "im1.state"),
		state.Options{Create: true, Now: statetest.NewClock(statetest.Epoch, time.Second).Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	extracts := []string{`extract.a`, `extract.b["A81001"]`, `extract.c`}
	statuses := []string{state.DeliveryLanded, state.DeliveryLanded, state.DeliveryLanded, state.DeliveryQuarantined,
		state.DeliveryPending, state.DeliveryWithdrawn, state.DeliveryExpired}
	var ids []int64
	base := time.Date(2026, 1, 1, 2, 15, 0, 0, time.UTC)
	for round := 0; round < 40; round++ {
		mustTx(t, s, func(tx state.Tx) error {
			for op := 0; op < 1+rng.IntN(20); op++ {
				switch r := rng.IntN(10); {
				case r < 6 || len(ids) == 0: // insert
					day := base.AddDate(0, 0, rng.IntN(400))
					kind := "delta"
					if rng.IntN(10) == 0 {
						kind = "full"
					}
					d := &state.Delivery{Extract: extracts[rng.IntN(len(extracts))], Source: fmt.Sprintf("emis_site.s%d", rng.IntN(2)),
						Day: day.Format(time.DateOnly), BatchID: day.Format("2006-01-02T15.04.05"), Kind: kind,
						Cutoff: day.Add(time.Duration(rng.IntN(3600)) * time.Second), Status: statuses[rng.IntN(len(statuses))],
						Reason: fmt.Sprintf("reason %d", rng.IntN(3))}
					if err := tx.PutDelivery(d); err != nil {
						return err
					}
					ids = append(ids, d.ID)
				case r < 8: // update in place, sometimes to another extract
					d, err := s.Delivery(ctx, ids[rng.IntN(len(ids))])
					if err != nil || d == nil {
						return err // nil: deleted earlier in this transaction's view
					}
					d.Status = statuses[rng.IntN(len(statuses))]
					if rng.IntN(4) == 0 {
						d.Extract = extracts[rng.IntN(len(extracts))]
					}
					if err := tx.PutDelivery(d); err != nil {
						return err
					}
				default:
					i := rng.IntN(len(ids))
					if err := tx.DeleteDelivery(ids[i]); err != nil {
						return err
					}
					ids = append(ids[:i], ids[i+1:]...)
				}
			}
			return nil
		})
		digests, err := s.DeliveryDigests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range extracts {
			got, err := digests.Get(x)
			if err != nil {
				t.Fatal(err)
			}
			if want := wantDigest(t, s, x); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: digest of %s =\n%+v\nwant\n%+v", round, x, got, want)
			}
		}
	}
}

// TestDeliveryDigestsKeepSerial: rebuilding digests is not a change of
// state; a transaction that only audits leaves the serial alone.
func TestDeliveryDigestsKeepSerial(t *testing.T) {
	s, err := state.OpenSQLite(ctx, filepath.Join(t.TempDir(), "im1.state"), state.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := &state.Delivery{Extract: "extract.a", Source: "emis_site.s", Day: "2026-01-01", BatchID: "b", Kind: "full", Status: state.DeliveryLanded}
	mustTx(t, s, func(tx state.Tx) error { return tx.PutDelivery(d) })
	ds, err := s.DeliveryDigests(ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("digests = %v, %v; want one", ds, err)
	}
	// An audit entry alone leaves the serial alone, digests or not.
	before := serial(t, s)
	mustTx(t, s, func(tx state.Tx) error { _, err := tx.AppendAudit(state.AuditEntry{Operation: "test"}); return err })
	if after := serial(t, s); after != before {
		t.Errorf("serial moved from %d to %d for an audit entry", before, after)
	}
}
