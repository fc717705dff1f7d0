package srfile

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, ok := parseDate(s)
	if !ok {
		panic(s)
	}
	return t
}

func TestParseFolder(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"20261121_0215", true},
		{"20200229_2359", true},
		{"20261121_0215.tmp", false},
		{"~20261121_0215", false},
		{".20261121_0215", false},
		{"20261121-0215", false},
		{"20261321_0215", false},
		{"20261121_2460", false},
		{"2026112_02155", false},
		{"+0261121_0215", false},
		{"", false},
		{".tppsim", false},
	}
	for _, tc := range cases {
		got, ok := ParseFolder(tc.name)
		if ok != tc.ok {
			t.Errorf("ParseFolder(%q) ok = %v", tc.name, ok)
		}
		if ok && FolderName(got) != tc.name {
			t.Errorf("round trip %q -> %q", tc.name, FolderName(got))
		}
	}
}

const goodManifest = "\"FileName\",\"IsDelta\",\"IsReference\",\"DateExtractFrom\",\"DateExtractTo\"\r\n" +
	"\"SRPatient\",\"Y\",\"N\",\"20200313_0405\",\"20200314_0412\"\r\n" +
	"\"SRCode\",\"Y\",\"N\",\"20200313_0405\",\"20200314_0412\"\r\n" +
	"\"SROrganisation\",\"N\",\"Y\",\"\",\"20200314_0412\"\r\n"

func TestParseManifest(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // error substring; "" for success
		full     bool
	}{
		{name: "good", in: goodManifest},
		{name: "unquoted, LF, reordered", in: "DateExtractTo,FileName,DateExtractFrom,IsDelta\n20200314_0412,SRPatient,20200313_0405,Y\n20200314_0412,SRCode,20200313_0405,Y\n20200314_0412,SROrganisation,,N\n"},
		{name: "pipe delimited", in: "FileName|IsDelta|IsReference|DateExtractFrom|DateExtractTo\nSRPatient|Y|N|20200313_0405|20200314_0412\nSRCode|Y|N|20200313_0405|20200314_0412\nSROrganisation|N|Y||20200314_0412\n"},
		{name: "tab delimited, BOM", in: "\xef\xbb\xbfFileName\tIsDelta\tDateExtractFrom\tDateExtractTo\nSRPatient\tY\t20200313_0405\t20200314_0412\nSRCode\tY\t20200313_0405\t20200314_0412\nSROrganisation\tN\t\t20200314_0412\n"},
		{name: "bulk", full: true, in: "FileName,IsDelta,IsReference,DateExtractFrom,DateExtractTo\nSRPatient,N,N,,20200314_0412\nSRCode,N,N,,20200314_0412\n"},
		{name: "Windows-1252 bytes in an unread column", in: "FileName,IsDelta,DateExtractFrom,DateExtractTo,Note\nSRPatient,Y,20200313_0405,20200314_0412,caf\xe9 \x80\n"},
		{name: "bad IsDelta", in: "FileName,IsDelta,DateExtractTo\nSRPatient,T,20200314_0412\n", want: "Unexpected value [T] in manifest file"},
		{name: "lower-case IsDelta", in: "FileName,IsDelta,DateExtractTo\nSRPatient,y,20200314_0412\n", want: "Unexpected value [y]"},
		{name: "no end date", in: "FileName,IsDelta,DateExtractTo\nSRPatient,N,\n", want: "No end date in SRManifest for SRPatient"},
		{name: "delta without start", in: "FileName,IsDelta,DateExtractFrom,DateExtractTo\nSRCode,Y,,20200314_0412\n", want: "No start date in SRManifest for delta SRCode"},
		{name: "delta and no start column", in: "FileName,IsDelta,DateExtractTo\nSRCode,Y,20200314_0412\n", want: "No start date"},
		{name: "bad date", in: "FileName,IsDelta,DateExtractTo\nSRCode,N,2020-03-14 04:12\n", want: "is not yyyyMMdd_HHmm"},
		{name: "bad start date", in: "FileName,IsDelta,DateExtractFrom,DateExtractTo\nSRCode,Y,20201340_0000,20200314_0412\n", want: "DateExtractFrom [20201340_0000]"},
		{name: "no FileName column", in: "Name,IsDelta,DateExtractTo\nSRCode,N,20200314_0412\n", want: "no FileName column"},
		{name: "no DateExtractTo column", in: "FileName,IsDelta\nSRCode,N\n", want: "no DateExtractTo column"},
		{name: "duplicate column", in: "FileName,IsDelta,IsDelta,DateExtractTo\n", want: "appears twice"},
		{name: "unsafe file name", in: "FileName,IsDelta,DateExtractTo\n../SRCode,N,20200314_0412\n", want: "not a table name"},
		{name: "file name with extension", in: "FileName,IsDelta,DateExtractTo\nSRCode.csv,N,20200314_0412\n", want: "not a table name"},
		{name: "listed twice", in: "FileName,IsDelta,DateExtractTo\nSRCode,N,20200314_0412\nSRCode,N,20200314_0412\n", want: "listed twice"},
		{name: "empty", in: "", want: "no header"},
		{name: "ragged", in: "\"FileName\",\"IsDelta\",\"DateExtractTo\"\n\"SRCode\",\"N\"\"\n", want: "SRManifest.csv"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(strings.NewReader(tc.in))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			if !m.Cutoff().Equal(at("20200314_0412")) {
				t.Errorf("cutoff %v", m.Cutoff())
			}
			if m.IsFull() != tc.full {
				t.Errorf("IsFull = %v", m.IsFull())
			}
			if !tc.full && !m.From().Equal(at("20200313_0405")) {
				t.Errorf("From %v", m.From())
			}
			if m.Tables()[0] != "SRPatient" {
				t.Errorf("tables %v", m.Tables())
			}
		})
	}
}

func TestManifestCheck(t *testing.T) {
	to, from := at("20200314_0412"), at("20200313_0405")
	row := func(name string, delta bool, f, t time.Time) ManifestRow {
		return ManifestRow{FileName: name, IsDelta: delta, From: f, To: t}
	}
	cases := []struct {
		name string
		rows []ManifestRow
		want string
	}{
		{"consistent", []ManifestRow{row("SRPatient", true, from, to), row("SROrganisation", false, time.Time{}, to)}, ""},
		{"different end", []ManifestRow{row("SRPatient", true, from, to), row("SRCode", true, from, to.Add(time.Minute))}, "Different end dates in SRManifest for SRPatient (20200314_0412) and SRCode (20200314_0413)"},
		{"different start", []ManifestRow{row("SRPatient", true, from, to), row("SRCode", true, from.Add(-time.Hour), to)}, "Different start dates in SRManifest for SRPatient"},
		{"bulk rows have no start", []ManifestRow{row("SRPatient", true, from, to), row("SRCode", false, time.Time{}, to)}, ""},
		{"unreliable tables skipped", []ManifestRow{row("SRAppointmentAttendees", true, to, to.AddDate(0, 0, 3)), row("SRPatient", true, from, to), row("SRReferralContactEvent", true, from.AddDate(-1, 0, 0), to.AddDate(-1, 0, 0))}, ""},
		{"empty", nil, "lists no files"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manifest{Rows: tc.rows}
			err := m.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !m.Cutoff().Equal(to) {
					t.Errorf("cutoff %v", m.Cutoff())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIsFull(t *testing.T) {
	cases := []struct {
		name string
		rows []ManifestRow
		want bool
	}{
		{"both bulk", []ManifestRow{{FileName: "SRPatient"}, {FileName: "SRCode"}, {FileName: "SREvent", IsDelta: true}}, true},
		{"SRCode delta", []ManifestRow{{FileName: "SRPatient"}, {FileName: "SRCode", IsDelta: true}}, false},
		{"SRCode-only re-bulk", []ManifestRow{{FileName: "SRPatient", IsDelta: true}, {FileName: "SRCode"}}, false},
		{"neither listed, all bulk", []ManifestRow{{FileName: "SREvent"}}, true},
		{"neither listed, a delta", []ManifestRow{{FileName: "SREvent", IsDelta: true}}, false},
		{"empty", nil, false},
	}
	for _, tc := range cases {
		if got := (&Manifest{Rows: tc.rows}).IsFull(); got != tc.want {
			t.Errorf("%s: IsFull = %v", tc.name, got)
		}
	}
}

func TestCheckContinuity(t *testing.T) {
	prev := at("20200314_0412")
	cases := []struct {
		name    string
		prev    time.Time
		from    time.Time
		overlap bool
		wantErr string
	}{
		{"contiguous", prev, prev, false, ""},
		{"gap", prev, prev.Add(time.Minute), false, "Start date of new batch (20200314_0413) does not match end date of last batch (20200314_0412)"},
		{"overlap", prev, prev.Add(-6 * time.Hour), true, ""},
		{"no previous end", time.Time{}, prev, false, "End date of last batch is null"},
		{"bulk", prev, time.Time{}, false, ""},
	}
	for _, tc := range cases {
		overlap, err := CheckContinuity(tc.prev, tc.from)
		if overlap != tc.overlap {
			t.Errorf("%s: overlap = %v", tc.name, overlap)
		}
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// Names are decoded from Windows-1252, not read as UTF-8.
func TestParseManifestDecodes1252(t *testing.T) {
	m, err := ParseManifest(strings.NewReader("FileName,IsDelta,DateExtractTo\nSRCaf\xe9,N,20200314_0412\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Tables()[0]; got != "SRCafé" {
		t.Fatalf("FileName %q", got)
	}
}
