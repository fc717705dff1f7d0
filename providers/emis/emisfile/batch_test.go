package emisfile

import (
	"fmt"
	"strings"
	"testing"
)

func mustNames(t *testing.T, ss ...string) []Name {
	t.Helper()
	out := make([]Name, len(ss))
	for i, s := range ss {
		n, err := ParseName(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

func name(ids, ft, ts string) string {
	return fmt.Sprintf("%s_%s_%s_%s.csv.gpg", ids, ft, ts, testAgreement)
}

func TestGroupBatches(t *testing.T) {
	names := mustNames(t,
		name("292", "Admin_Patient", "20261122021500"),
		name("291", "Admin_Patient", "20261121021500"),
		name("291", "Admin_Organisation", "20261121021500"),
		name("292", "Admin_Organisation", "20261122021500"),
		name("291-292", "Admin_Patient", "20261121021500"), // duplicate type
	)
	bs := GroupBatches(names)
	if len(bs) != 2 || bs[0].ID != "2026-11-21T02.15.00" || bs[1].ID != "2026-11-22T02.15.00" {
		t.Fatalf("batches %+v", bs)
	}
	if len(bs[0].Files) != 2 || len(bs[0].Duplicates) != 1 || bs[0].Files["Admin_Patient"].ProcEnd != 291 {
		t.Errorf("first batch %+v", bs[0])
	}
	// Independent of input order.
	rev := append([]Name(nil), names...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if fmt.Sprint(GroupBatches(rev)[0].Names()) != fmt.Sprint(bs[0].Names()) {
		t.Error("grouping depends on input order")
	}
}

func TestBatchCheck(t *testing.T) {
	const ts = "20261121021500"
	base := []string{
		name("291", SharingOrganisation, ts), name("291", AdminOrganisation, ts), name("291", AdminPatient, ts),
	}
	tests := []struct {
		name      string
		files     []string
		required  []string
		agreement string
		want      []string // substrings; none means complete
	}{
		{"complete", base, []string{AdminPatient}, testAgreement, nil},
		{"extra types allowed", append(base, name("291", "Coding_DrugCode", ts)), []string{AdminPatient}, "", nil},
		{"missing required", base, []string{AdminPatient, "CareRecord_Observation"}, "",
			[]string{"Could not find file of type CareRecord_Observation in batch.  Batch identifier = 2026-11-21T02.15.00"}},
		{"missing organisation files", base[2:], nil, "", []string{
			"Could not find file of type Admin_Organisation", "Could not find file of type Agreements_SharingOrganisation"}},
		{"processing ids differ", append(base[:2:2], name("290-291", AdminPatient, ts)), nil, "", []string{
			"Emis start processing id does not match the rest in the batch.  Filename = 290-291_Admin_Patient"}},
		{"end ids differ", append(base[:2:2], name("291-292", AdminPatient, ts)), nil, "", []string{
			"Emis end processing id does not match"}},
		{"duplicate", append(base, strings.Replace(name("291", AdminPatient, ts), ".gpg", ".pgp", 1)), nil, "",
			[]string{"Incorrect number of files in batch. Batch identifier = 2026-11-21T02.15.00"}},
		{"wrong agreement", base, nil, "11111111-2222-3333-4444-555555555555",
			[]string{"Sharing agreement 45E7CD20-EE37-41AB-90D6-DC9D4B03D102 does not match expected 11111111-2222-3333-4444-555555555555"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := GroupBatches(mustNames(t, tt.files...))
			if len(bs) != 1 {
				t.Fatalf("%d batches", len(bs))
			}
			err := bs[0].Check(tt.required, tt.agreement)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.name == "wrong agreement" && strings.Count(err.Error(), "Sharing agreement") != 1 {
				t.Errorf("agreement mismatch reported per file: %q", err)
			}
		})
	}
}
