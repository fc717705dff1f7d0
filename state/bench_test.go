package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/im1dev/im1/state"
	"github.com/im1dev/im1/state/statetest"
)

const benchDeliveries = 100_000

func putDeliveries(b *testing.B, s state.Store, n int, extract string) {
	b.Helper()
	cutoff := statetest.Epoch
	err := s.Tx(ctx, func(tx state.Tx) error {
		for i := range n {
			day := statetest.Epoch.AddDate(0, 0, -i/20).Format(time.DateOnly)
			d := &state.Delivery{
				Extract: extract, Source: "emis_site.x", Day: day, BatchID: fmt.Sprintf("%sT02.15.%02d", day, i%20),
				Kind: "delta", SeqFrom: fmt.Sprint(i * 10), SeqTo: fmt.Sprint(i*10 + 9), Cutoff: cutoff,
				Status: state.DeliveryLanded, Path: "/landing/x/" + day, Manifest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			}
			if err := tx.PutDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPutDeliveries inserts 100k deliveries in one transaction.
func BenchmarkPutDeliveries(b *testing.B) {
	s := statetest.New(b)
	i := 0
	for b.Loop() {
		putDeliveries(b, s, benchDeliveries, fmt.Sprintf("emis_extract.e%d", i))
		i++
	}
	b.ReportMetric(float64(benchDeliveries*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkEachDelivery streams 100k deliveries of one extract among 200k.
func BenchmarkEachDelivery(b *testing.B) {
	s := statetest.New(b)
	putDeliveries(b, s, benchDeliveries, "emis_extract.a")
	putDeliveries(b, s, benchDeliveries, "emis_extract.b")
	for b.Loop() {
		n := 0
		if err := s.EachDelivery(ctx, "emis_extract.b", func(state.Delivery) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchDeliveries {
			b.Fatalf("walked %d deliveries", n)
		}
	}
	b.ReportMetric(float64(benchDeliveries*b.N)/b.Elapsed().Seconds(), "rows/s")
}
