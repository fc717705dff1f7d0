package state

import (
	"reflect"
	"testing"
)

// FuzzDecodeDigest: a damaged digest is an error, never a panic or a huge
// allocation, and whatever decodes encodes back to the same bytes.
func FuzzDecodeDigest(f *testing.F) {
	good := &DeliveryDigest{Pending: 1, Groups: []DigestGroup{
		{Source: "emis_site.s", Status: DeliveryLanded, Kind: "delta", Cutoffs: []int64{10, 20, 86400e9}},
		{Source: "emis_site.s", Status: DeliveryQuarantined, Kind: "delta", Cutoffs: []int64{-5}, Batches: []string{"b"}, Reasons: []string{"bad"}},
	}}
	f.Add(good.encode())
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0, 200, 200, 200, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDigest("x", b)
		if err != nil {
			return
		}
		again, err := decodeDigest("x", d.encode())
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, d)
		}
	})
}
