package emisfile

import (
	"strings"
	"testing"
)

func TestParseSharingOrganisations(t *testing.T) {
	tests := []struct {
		name, in string
		want     []SharingOrg
		wantErr  string
	}{
		{name: "reordered header, mixed-case booleans, BOM",
			in:   "\ufeff\"Deleted\",\"Disabled\",\"IsActivated\",\"OrganisationGuid\",\"LastModifiedDate\"\r\n\"FALSE\",\"True\",\"true\",\"G1\",\"2026-11-20\"\r\n\"\",\"false\",\"false\",\"G2\",\"\"\r\n",
			want: []SharingOrg{{OrganisationGuid: "G1", IsActivated: true, Disabled: true, LastModified: "2026-11-20"}, {OrganisationGuid: "G2"}}},
		{name: "no LastModifiedDate", in: "OrganisationGuid,IsActivated,Disabled,Deleted\nG1,true,false,false\n",
			want: []SharingOrg{{OrganisationGuid: "G1", IsActivated: true}}},
		{name: "bad boolean", in: "OrganisationGuid,IsActivated,Disabled,Deleted\nG1,yes,false,false\n", wantErr: `line 2: IsActivated is "yes"`},
		{name: "missing column", in: "OrganisationGuid,IsActivated,Deleted\nG1,true,false\n", wantErr: "no Disabled column"},
		{name: "empty", in: "", wantErr: "empty file"},
		{name: "ragged", in: "OrganisationGuid,IsActivated,Disabled,Deleted\nG1,true\n", wantErr: "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSharingOrganisations(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v", got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("row %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseOrganisationsMissingODS(t *testing.T) {
	_, err := ParseOrganisations(strings.NewReader("OrganisationGuid,OrganisationName\nG1,X\n"))
	if err == nil || !strings.Contains(err.Error(), "no ODSCode column") {
		t.Fatalf("error %v", err)
	}
}
