package main

import (
	"os"
	"testing"

	"github.com/im1dev/im1/providers/emis/emisfile"
)

func TestRunWritesNamedBatchOfRequestedSize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sizeMiB float64
		tables  string
		files   int
	}{
		{"all tables", 2, "", len(emisfile.FileTypes())},
		{"subset", 1, "CareRecord_Observation,Admin_Patient", 4}, // + the two organisation files
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := run(dir, tc.sizeMiB, 0, tc.tables, "20261121021500", 1); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != tc.files {
				t.Fatalf("%d files, want %d", len(entries), tc.files)
			}
			var total int64
			for _, e := range entries {
				n, err := emisfile.ParseName(e.Name())
				if err != nil || n.Encrypted() || n.BatchID() != "2026-11-21T02.15.00" {
					t.Errorf("%s: %v (encrypted %v)", e.Name(), err, n.Encrypted())
				}
				info, _ := e.Info()
				total += info.Size()
			}
			want := tc.sizeMiB * (1 << 20)
			if f := float64(total) / want; f < 0.8 || f > 1.2 {
				t.Errorf("total %d bytes, want about %.0f", total, want)
			}
		})
	}
}
