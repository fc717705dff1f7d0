package srfile

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestCatalogue(t *testing.T) {
	want := []string{"SRCode", "SREvent", "SRMapping", "SRMappingGroup", "SROrganisation", "SRPatient", "SRPatientRegistration"}
	if got := Tables(); !slices.Equal(got, want) {
		t.Fatalf("Tables() = %v", got)
	}
	cases := []struct {
		table, version string
		has, lacks     []string
		last           string
	}{
		{"SRCode", "93", []string{"SNOMEDCode", "IDQuestionnaire"}, nil, RemovedData},
		{"SRCode", "92", []string{"SNOMEDCode", "IDQuestionnaire"}, []string{RemovedData}, "IDOrganisationRegisteredAt"},
		{"SRCode", "91", []string{"SNOMEDCode"}, []string{"IDQuestionnaire", RemovedData}, "IDOrganisationRegisteredAt"},
		{"SRCode", "90", []string{"SNOMEDCode"}, []string{"IDQuestionnaire"}, RemovedData},
		{"SRCode", "89", nil, []string{"SNOMEDCode", "SNOMEDText", "IDQuestionnaire"}, RemovedData},
		{"SRCode", "87", nil, []string{"SNOMEDCode", RemovedData}, "IDOrganisationRegisteredAt"},
		{"SRPatient", "93", []string{"NHSNumber", "SpineMatched"}, nil, RemovedData},
		{"SRPatient", TestPack, nil, []string{"SpineMatched", RemovedData}, "SSRef"},
		{"SROrganisation", "88", []string{"ID", "Name"}, []string{"IDOrganisationVisibleTo", RemovedData}, "IDCcg"},
		{"SRMapping", "93", []string{"IdMappingGroup"}, []string{RemovedData}, "Mapping"},
	}
	for _, tc := range cases {
		tab, ok := Lookup(tc.table)
		if !ok {
			t.Fatalf("no %s", tc.table)
		}
		v, ok := tab.Version(tc.version)
		if !ok {
			t.Fatalf("%s has no version %s", tc.table, tc.version)
		}
		for _, c := range tc.has {
			if !slices.Contains(v.Columns, c) {
				t.Errorf("%s %s lacks %s", tc.table, tc.version, c)
			}
		}
		for _, c := range tc.lacks {
			if slices.Contains(v.Columns, c) {
				t.Errorf("%s %s has %s", tc.table, tc.version, c)
			}
		}
		if got := v.Columns[len(v.Columns)-1]; got != tc.last {
			t.Errorf("%s %s ends with %s, want %s", tc.table, tc.version, got, tc.last)
		}
		if m, ok := tab.MatchHeader(v.Columns); !ok || !slices.Equal(m.Columns, v.Columns) {
			t.Errorf("%s %s does not match its own header", tc.table, tc.version)
		}
	}
	for name, want := range map[string][3]any{
		"SRPatient": {"IDOrganisationVisibleTo", "NHSNumber", false}, "SRCode": {"IDOrganisationVisibleTo", "", false},
		"SROrganisation": {"", "", true}, "SRMapping": {"", "", true}, "SRMappingGroup": {"", "", true},
	} {
		tab, _ := Lookup(name)
		if tab.OrgColumn != want[0] || tab.NHSColumn != want[1] || tab.Reference != want[2] {
			t.Errorf("%s: org %q nhs %q reference %v", name, tab.OrgColumn, tab.NHSColumn, tab.Reference)
		}
	}
	if _, ok := Lookup("SRNope"); ok {
		t.Error("SRNope found")
	}
}

func testReport() ReportConfig {
	return ReportConfig{
		Report: "core", ReportingUnit: "X24", Organisations: []string{"A81001", "B82005"},
		Tables: []ReportTable{
			{Name: "SRPatient", Fields: []string{"RowIdentifier", "IDOrganisationVisibleTo", "NHSNumber"}},
			{Name: "SRCode"},
		},
		Delimiter: "|", TextQualifier: `"`, Frequency: "daily", Start: "2026-11-01",
		RootDirectory: `D:\SystmOne\Reports\core`, TechnicalContact: "data@example.invalid",
	}
}

func TestMarkdownGolden(t *testing.T) {
	cases := map[string]ReportConfig{"report.md": testReport(), "report_empty.md": {}}
	for file, c := range cases {
		got := []byte(c.Markdown())
		path := filepath.Join("testdata", "golden", file)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (run with -update):\n%s", file, got)
		}
	}
}

func TestReportValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*ReportConfig)
		want string
	}{
		{"good", func(*ReportConfig) {}, ""},
		{"unknown table", func(c *ReportConfig) { c.Tables = append(c.Tables, ReportTable{Name: "SRX"}) }, "unknown SystmOne table"},
		{"table twice", func(c *ReportConfig) { c.Tables = append(c.Tables, ReportTable{Name: "SRCode"}) }, "listed twice"},
		{"unknown field", func(c *ReportConfig) { c.Tables[0].Fields = []string{"Shoe"} }, `no field "Shoe"`},
		{"field twice", func(c *ReportConfig) { c.Tables[0].Fields = []string{"NHSNumber", "NHSNumber"} }, "listed twice"},
		{"delimiter", func(c *ReportConfig) { c.Delimiter = "::" }, "delimiter"},
		{"qualifier", func(c *ReportConfig) { c.TextQualifier = "'" }, "text qualifier"},
	}
	for _, tc := range cases {
		c := testReport()
		c.Tables = slices.Clone(c.Tables)
		tc.edit(&c)
		err := c.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseOrganisations(t *testing.T) {
	cases := []struct {
		name         string
		in           string
		delim, quote byte
		want         map[string]string
		err          string
	}{
		{name: "quoted", delim: ',', quote: '"', in: "\"RowIdentifier\",\"Name\",\"ID\",\"RemovedData\"\r\n\"1\",\"Brontë Surgery, Haworth\",\"A81001\",\"0\"\r\n\"2\",\"Gone\",\"B82005\",\"1\"\r\n",
			want: map[string]string{"A81001": "Brontë Surgery, Haworth"}},
		{name: "pipe unquoted", delim: '|', in: "ID|Name\nA81001|Densham \"Old\" Surgery\nB82005|Mill Lane\n",
			want: map[string]string{"A81001": `Densham "Old" Surgery`, "B82005": "Mill Lane"}},
		{name: "tab with BOM", delim: '\t', quote: '"', in: "\ufeffID\tName\nA81001\tX\n", want: map[string]string{"A81001": "X"}},
		{name: "no ID column", delim: ',', quote: '"', in: "Name\nX\n", err: "no ID and Name"},
		{name: "short row", delim: ',', quote: '"', in: "Name,ID\nX\n", err: "fields"},
		{name: "empty", delim: ',', quote: '"', in: "", err: "no header"},
		{name: "bad qualifier", delim: ',', quote: '\'', in: "ID,Name\n", err: "text qualifier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOrganisations(strings.NewReader(tc.in), tc.delim, tc.quote)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v", got)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
