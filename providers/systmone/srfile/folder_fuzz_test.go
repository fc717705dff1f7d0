package srfile

import "testing"

// FuzzParseFolder: the extract-folder name parser never panics, and what
// it accepts round-trips through FolderName.
func FuzzParseFolder(f *testing.F) {
	for _, s := range []string{"20261121_0215", "20261121_0215.tmp", "~20261121_0215", "2026112_0215", "20261321_0215", "../20261121_0215", "", "20261121_2460"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tm, ok := ParseFolder(name)
		if ok && FolderName(tm) != name {
			t.Fatalf("%q parsed to %s, which names %q", name, tm, FolderName(tm))
		}
	})
}
