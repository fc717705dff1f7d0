package emisfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const testAgreement = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"

func TestParseName(t *testing.T) {
	ts := time.Date(2015, 2, 11, 16, 45, 36, 0, time.UTC)
	tests := []struct {
		in        string
		want      Name
		canonical string // "" means in
	}{
		{in: "291_Agreements_SharingOrganisation_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg",
			want: Name{ProcStart: 291, ProcEnd: 291, Schema: "Agreements", Table: "SharingOrganisation", Time: ts, Agreement: testAgreement, Ext: ".csv.gpg"}},
		{in: "291-300_Admin_UserInRole_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.pgp",
			want: Name{ProcStart: 291, ProcEnd: 300, Schema: "Admin", Table: "UserInRole", Time: ts, Agreement: testAgreement, Ext: ".csv.pgp"}},
		{in: "0_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.asc",
			want: Name{Schema: "Admin", Table: "Patient", Time: ts, Agreement: testAgreement, Ext: ".csv.asc"}},
		{in: "291_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv",
			want: Name{ProcStart: 291, ProcEnd: 291, Schema: "Admin", Table: "Patient", Time: ts, Agreement: testAgreement, Ext: ".csv"}},
		// Accepted but canonicalised: a one-id range, leading zeros, a lower-case GUID.
		{in: "291-291_Admin_Patient_20150211164536_45e7cd20-ee37-41ab-90d6-dc9d4b03d102.csv.gpg",
			want:      Name{ProcStart: 291, ProcEnd: 291, Schema: "Admin", Table: "Patient", Time: ts, Agreement: testAgreement, Ext: ".csv.gpg"},
			canonical: "291_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg"},
		{in: "007_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg",
			want:      Name{ProcStart: 7, ProcEnd: 7, Schema: "Admin", Table: "Patient", Time: ts, Agreement: testAgreement, Ext: ".csv.gpg"},
			canonical: "7_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseName(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Raw = tt.in
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			canon := tt.canonical
			if canon == "" {
				canon = tt.in
			}
			if got.String() != canon {
				t.Errorf("String() = %q, want %q", got.String(), canon)
			}
		})
	}
}

func TestNameAccessors(t *testing.T) {
	n, err := ParseName("291-300_CareRecord_Observation_20261121021500_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"FileType", n.FileType(), "CareRecord_Observation"},
		{"BatchID", n.BatchID(), "2026-11-21T02.15.00"},
		{"Decrypted", n.Decrypted(), "291-300_CareRecord_Observation_20261121021500_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !n.Encrypted() {
		t.Error("Encrypted() = false for .csv.gpg")
	}
}

func TestParseNameRejects(t *testing.T) {
	const g = "45E7CD20-EE37-41AB-90D6-DC9D4B03D102"
	tests := []struct{ in, reason string }{
		{"", "length"},
		{strings.Repeat("1", 250) + "_A_B_20150211164536_" + g + ".csv.gpg", "length"},
		{"291_Admin_Patient_20150211164536_" + g + ".txt", "extension"},
		{"291_Admin_Patient_20150211164536_" + g + ".csv.gpg.partial", "extension"},
		{"291_Admin_Patient_20150211164536_" + g + ".CSV.GPG", "extension"},
		{"291_Admin_Patient.csv.gpg", "parts"},
		{"291_Admin_Patient_Extra_20150211164536_" + g + ".csv.gpg", "parts"},
		{"291_Admin__20150211164536_" + g + ".csv.gpg", "letters"},
		{"291-292-293_Admin_Patient_20150211164536_" + g + ".csv.gpg", "Too many processing ids"},
		{"300-291_Admin_Patient_20150211164536_" + g + ".csv.gpg", "start is after"},
		{"-291_Admin_Patient_20150211164536_" + g + ".csv.gpg", "non-negative"},
		{"+291_Admin_Patient_20150211164536_" + g + ".csv.gpg", "non-negative"},
		{"291-_Admin_Patient_20150211164536_" + g + ".csv.gpg", "non-negative"},
		{"1234567890123456789_Admin_Patient_20150211164536_" + g + ".csv.gpg", "non-negative"},
		{"291_Admin_Patient_2015021116453_" + g + ".csv.gpg", "14 digits"},
		{"291_Admin_Patient_20151311164536_" + g + ".csv.gpg", "invalid timestamp"},
		{"291_Admin_Patient_20150230164536_" + g + ".csv.gpg", "invalid timestamp"},
		{"291_Admin_Patient_20150211246036_" + g + ".csv.gpg", "invalid timestamp"},
		{"291_Admin_Patient_20150211164536_45E7CD20EE3741AB90D6DC9D4B03D102.csv.gpg", "GUID"},
		{"291_Admin_Patient_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D10G.csv.gpg", "GUID"},
		{"../291_Admin_Patient_20150211164536_" + g + ".csv.gpg", ".."},
		{"dir/291_Admin_Patient_20150211164536_" + g + ".csv.gpg", "path separator"},
		{`dir\291_Admin_Patient_20150211164536_` + g + ".csv.gpg", "path separator"},
		{"291_Admin_Pat\x00ient_20150211164536_" + g + ".csv.gpg", "control"},
		{"291_Admin_Pat\nient_20150211164536_" + g + ".csv.gpg", "control"},
		{"291_Admin_Patïent_20150211164536_" + g + ".csv.gpg", "non-ASCII"},
		{".bash_history", "extension"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			_, err := ParseName(tt.in)
			if err == nil {
				t.Fatalf("ParseName(%q) succeeded", tt.in)
			}
			if !errors.Is(err, ErrUnparsable) {
				t.Errorf("error %v does not wrap ErrUnparsable", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not mention %q", err, tt.reason)
			}
		})
	}
}

func TestValidNHSNumber(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"9434765919", true}, {"9434765870", true}, {"4010232137", true},
		{"9434765918", false}, {"943476591", false}, {"94347659190", false}, {"943476591X", false},
		{"1000000010", false}, // stem whose check digit would be 10
	} {
		if got := ValidNHSNumber(tt.in); got != tt.want {
			t.Errorf("ValidNHSNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"291_Agreements_SharingOrganisation_20150211164536_45E7CD20-EE37-41AB-90D6-DC9D4B03D102.csv.gpg",
		"291-300_Admin_Patient_20261121021500_45e7cd20-ee37-41ab-90d6-dc9d4b03d102.csv.asc",
		"000-0_A_B_00000101000000_00000000-0000-0000-0000-000000000000.csv",
		"../x.csv.gpg", ".bash_history",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		c := n.String()
		m, err := ParseName(c)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", c, s, err)
		}
		if m.Raw != c || m.String() != c {
			t.Fatalf("canonical %q is not a fixed point", c)
		}
		m.Raw, n.Raw = "", ""
		if m != n {
			t.Fatalf("round trip of %q: got %+v, want %+v", s, m, n)
		}
	})
}
